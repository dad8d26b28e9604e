"""cpu-tensorflow: a SavedModel signature over ``.npy`` reference tensors.

Determinism controls, applied before TensorFlow runs anything:
``CUDA_VISIBLE_DEVICES=""`` (set by the parent; no GPU may be visible), oneDNN off,
one inter-op and one intra-op thread, ``enable_op_determinism`` (which makes
TensorFlow refuse ops it cannot run deterministically, unseeded random ops among
them), Python and NumPy seeded. TensorFlow's global seed stays unset on purpose: an
unseeded random op in a model is a defect to report, not to paper over.

Reference inputs: one ``<input name>.npy`` per input of the signature, run as one batch.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

from registry.core.outputs import Tensor
from workers.errors import Refusal

ENV = {
    "CUDA_VISIBLE_DEVICES": "",
    "TF_DETERMINISTIC_OPS": "1",
    "TF_CUDNN_DETERMINISTIC": "1",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "OMP_NUM_THREADS": "1",
}
SEED = 0
_NODE = re.compile(r"Detected at node '?([^' ]+?)'? defined at")


def explain(message: str) -> str:
    """TensorFlow's multi-line runtime error as one line naming the op and the reason."""
    node = _NODE.search(message)
    lines = [
        line.strip()
        for line in message.splitlines()
        if line.strip()
        and not line.strip().startswith(("[[", "Graph execution error", "Detected at node", "<"))
    ]
    reason = lines[-1] if lines else message.strip()
    reason = re.sub(r"\s*\[Op:[^]]*\]$", "", reason)
    return f"op {node.group(1)}: {reason}" if node else reason


def run(model: Path, inputs: Path, runtime: dict[str, Any]) -> tuple[list[Tensor], dict[str, Any]]:
    """Outputs of the signature on the reference inputs, and what the run was.

    Raises:
        Refusal: a control cannot be applied, the inputs do not fit the signature, or
            TensorFlow refused an op it cannot make deterministic (named in the reason).
    """
    import numpy as np
    import tensorflow as tf

    if os.environ.get("CUDA_VISIBLE_DEVICES") != "" or tf.config.list_physical_devices("GPU"):
        raise Refusal("a GPU is visible to the cpu-tensorflow profile; refusing to run")
    random.seed(SEED)
    np.random.seed(SEED)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.experimental.enable_op_determinism()

    signature_name = str(runtime.get("signature") or "serving_default")
    loaded = tf.saved_model.load(str(model))
    if signature_name not in loaded.signatures:
        raise Refusal(
            f"the SavedModel has no signature {signature_name!r}; it has "
            f"{sorted(loaded.signatures)}; set runtime.signature in the manifest"
        )
    function = loaded.signatures[signature_name]
    _, wanted = function.structured_input_signature
    feeds: dict[str, Any] = {}
    for name, spec in sorted(wanted.items()):
        path = inputs / f"{name}.npy"
        if not path.is_file():
            raise Refusal(
                f"the reference inputs have no {name}.npy for input {name!r} of "
                f"{signature_name!r} (inputs: {sorted(wanted)})"
            )
        array = np.load(path, allow_pickle=False)
        if array.dtype != spec.dtype.as_numpy_dtype or not spec.shape.is_compatible_with(
            array.shape
        ):
            raise Refusal(
                f"{name}.npy is {array.dtype}{list(array.shape)}; {signature_name!r} wants "
                f"{spec.dtype.name}{spec.shape.as_list()}"
            )
        feeds[name] = tf.constant(array)
    try:
        outputs = function(**feeds)
    except tf.errors.OpError as exc:
        if "determinism" in exc.message.lower():  # op determinism refusing an op
            raise Refusal(
                f"TensorFlow cannot run it deterministically: {explain(exc.message)}",
                nondeterministic=True,
            ) from exc
        raise Refusal(f"the model failed on its reference inputs: {explain(exc.message)}") from exc
    tensors = []
    for name, value in sorted(outputs.items()):
        array = np.ascontiguousarray(value.numpy())
        little = array.astype(array.dtype.newbyteorder("<"), copy=False)
        tensors.append(Tensor(name, array.dtype.name, tuple(array.shape), little.tobytes()))
    about = {
        "engine": {"name": "tensorflow", "version": tf.__version__},
        "device": "cpu",
        "determinism": {
            "op_determinism": True,
            "inter_op_threads": 1,
            "intra_op_threads": 1,
            "onednn": False,
            "cuda_visible_devices": "",
            "python_seed": SEED,
            "numpy_seed": SEED,
            "tf_global_seed": None,
            "signature": signature_name,
            "batch": "whole reference set",
        },
    }
    return tensors, about
