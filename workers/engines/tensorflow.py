"""cpu-tensorflow: a SavedModel signature over ``.npy`` reference tensors.

Determinism controls, applied before TensorFlow runs anything:
``CUDA_VISIBLE_DEVICES=""`` (set by the parent; no GPU may be visible),
``PYTHONHASHSEED=0``, ``MKL_NUM_THREADS=1`` and ``OPENBLAS_NUM_THREADS=1`` (set by the
parent, checked here: a run where one is not in force refuses), oneDNN off,
one inter-op and one intra-op thread, ``enable_op_determinism`` (which makes
TensorFlow refuse ops it cannot run deterministically, unseeded random ops among
them), Python and NumPy seeded. TensorFlow's global seed stays unset on purpose: an
unseeded random op in a model is a defect to report, not to paper over.

Reference inputs: one ``<input name>.npy`` per input of the signature, run as one batch.
Evaluation (``evaluate``): a dataset's features files, one per input of the signature,
predicted in fixed batches of ``EVALUATION_BATCH`` samples.
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

from registry.core.outputs import Tensor
from workers.engines import PINNED, pinned_controls
from workers.errors import Refusal, transient

ENV = {
    "CUDA_VISIBLE_DEVICES": "",
    "TF_DETERMINISTIC_OPS": "1",
    "TF_CUDNN_DETERMINISTIC": "1",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "OMP_NUM_THREADS": "1",
    **PINNED,
}
EVALUATION_BATCH = 1024  # samples per call when predicting a dataset (recorded)
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


def _controls() -> tuple[Any, dict[str, Any]]:
    """Apply the determinism controls; (the signature-loading ``tf`` module, what was applied).

    Raises:
        Refusal: a control is not in force in this process.
    """
    import numpy as np
    import tensorflow as tf

    if os.environ.get("CUDA_VISIBLE_DEVICES") != "" or tf.config.list_physical_devices("GPU"):
        raise Refusal("a GPU is visible to the cpu-tensorflow profile; refusing to run")
    pinned = pinned_controls()
    random.seed(SEED)
    np.random.seed(SEED)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.experimental.enable_op_determinism()
    return tf, {
        "op_determinism": True,
        "inter_op_threads": 1,
        "intra_op_threads": 1,
        "onednn": False,
        "cuda_visible_devices": "",
        "python_seed": SEED,
        "numpy_seed": SEED,
        "tf_global_seed": None,
        **pinned,
    }


def _signature(tf: Any, model: Path, runtime: dict[str, Any]) -> tuple[str, Any]:
    signature_name = str(runtime.get("signature") or "serving_default")
    loaded = tf.saved_model.load(str(model))
    if signature_name not in loaded.signatures:
        raise Refusal(
            f"the SavedModel has no signature {signature_name!r}; it has "
            f"{sorted(loaded.signatures)}; set runtime.signature in the manifest"
        )
    return signature_name, loaded.signatures[signature_name]


def _call(tf: Any, function: Any, feeds: dict[str, Any], what: str) -> dict[str, Any]:
    try:
        return dict(function(**feeds))
    except tf.errors.OpError as exc:
        if "determinism" in exc.message.lower():  # op determinism refusing an op
            raise Refusal(
                f"TensorFlow cannot run it deterministically: {explain(exc.message)}",
                nondeterministic=True,
            ) from exc
        raise Refusal(  # retried only when the host ran short (OOM when allocating, …)
            f"the model failed on {what}: {explain(exc.message)}",
            retry=transient(f"{type(exc).__name__}: {exc.message}"),
        ) from exc


def _tensor(name: str, value: Any) -> Tensor:
    import numpy as np

    array = np.ascontiguousarray(value)
    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return Tensor(name, array.dtype.name, tuple(array.shape), little.tobytes())


def run(model: Path, inputs: Path, runtime: dict[str, Any]) -> tuple[list[Tensor], dict[str, Any]]:
    """Outputs of the signature on the reference inputs, and what the run was.

    Raises:
        Refusal: a control cannot be applied, the inputs do not fit the signature, or
            TensorFlow refused an op it cannot make deterministic (named in the reason).
    """
    import numpy as np

    tf, determinism = _controls()
    signature_name, function = _signature(tf, model, runtime)
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
    outputs = _call(tf, function, feeds, "its reference inputs")
    tensors = [_tensor(name, value.numpy()) for name, value in sorted(outputs.items())]
    about = {
        "engine": {"name": "tensorflow", "version": tf.__version__},
        "device": "cpu",
        "determinism": {
            **determinism,
            "signature": signature_name,
            "batch": "whole reference set",
        },
    }
    return tensors, about


def evaluate(
    model: Path,
    features: dict[str, Path],
    outputs: list[str],
    samples: int,
    runtime: dict[str, Any],
) -> tuple[list[Tensor], dict[str, Any]]:
    """The signature's ``outputs`` over every sample of the ``features`` files (input name
    -> ``.npy``, already checked against the dataset's description), predicted in fixed
    batches of ``EVALUATION_BATCH``; each output's first dimension is ``samples``.

    Raises:
        Refusal: a control cannot be applied, the features do not fit the signature, an
            output is missing, or the model predicts a different number of rows than it
            was given (no retry: the model is at fault).
    """
    import numpy as np

    tf, determinism = _controls()
    signature_name, function = _signature(tf, model, runtime)
    _, wanted = function.structured_input_signature
    if set(wanted) != set(features):
        raise Refusal(
            f"the dataset's features {sorted(features)} are not the inputs {sorted(wanted)} of "
            f"{signature_name!r}: a dataset names one features file per input of the signature"
        )
    arrays = {}
    for name, spec in sorted(wanted.items()):
        array = np.load(features[name], mmap_mode="r", allow_pickle=False)
        if array.dtype != spec.dtype.as_numpy_dtype or not spec.shape.is_compatible_with(
            (None, *array.shape[1:])
        ):
            raise Refusal(
                f"features {name!r} are {array.dtype}{list(array.shape)}; {signature_name!r} "
                f"wants {spec.dtype.name}{spec.shape.as_list()}"
            )
        arrays[name] = array
    parts: dict[str, list[Any]] = {name: [] for name in outputs}
    for start in range(0, samples, EVALUATION_BATCH):
        stop = min(start + EVALUATION_BATCH, samples)
        feeds = {n: tf.constant(np.ascontiguousarray(a[start:stop])) for n, a in arrays.items()}
        got = _call(tf, function, feeds, f"samples {start}..{stop - 1}")
        missing = [n for n in outputs if n not in got]
        if missing:
            raise Refusal(
                f"the model has no output {', '.join(map(repr, missing))} that the dataset's "
                f"labels name; its outputs: {sorted(got)} (the labels' names must be the "
                f"outputs of {signature_name!r})"
            )
        for name in outputs:
            value = got[name].numpy()
            rows = value.shape[0] if value.ndim else 1
            if rows != stop - start:
                raise Refusal(
                    f"the prediction count differs from the sample count: output {name!r} "
                    f"gave {rows} prediction(s) for the {stop - start} samples {start}..{stop - 1} "
                    f"of {samples}; a model whose output count differs from its input count "
                    "is refused"
                )
            parts[name].append(value)
    tensors = [_tensor(name, np.concatenate(parts[name])) for name in sorted(outputs)]
    about = {
        "engine": {"name": "tensorflow", "version": tf.__version__},
        "device": "cpu",
        "determinism": {**determinism, "signature": signature_name, "batch": EVALUATION_BATCH},
    }
    return tensors, about
