"""An op that fails inside the TensorFlow engine: the host running short of memory is
retried, the model's own error fails the job once. Real TensorFlow, no model loaded."""

from __future__ import annotations

from typing import Any

import pytest

from workers.engines.tensorflow import _call
from workers.errors import Refusal

tf = pytest.importorskip("tensorflow")


def failing(error: type[Exception], message: str) -> Any:
    def function(**feeds: Any) -> Any:
        raise error(None, None, message)

    return function


def test_an_op_out_of_memory_is_retried_and_a_model_error_is_not() -> None:
    oom = "OOM when allocating tensor with shape[10000,768] and type float on /cpu:0"
    with pytest.raises(Refusal) as caught:
        _call(tf, failing(tf.errors.ResourceExhaustedError, oom), {}, "the dataset")
    assert caught.value.retry is True
    assert caught.value.reason == f"the model failed on the dataset: {oom}"
    wrong = "Matrix size-incompatible: In[0]: [10,4], In[1]: [8,1]"
    with pytest.raises(Refusal) as caught:
        _call(tf, failing(tf.errors.InvalidArgumentError, wrong), {}, "the dataset")
    assert caught.value.retry is False
