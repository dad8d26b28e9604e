"""Independent evaluation as the registry sees it (ARCHITECTURE §13): a dataset artifact
with real ``.npy`` files, a model a ``cpu-tensorflow`` worker can run, and the measured
``evaluation/v1`` statements workers sign (built here: the registry's contract; the real
worker is tested in tests/workers)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from registry.core.digest import Digest
from registry.core.predicates import Drift, Engine, EvaluationPredicate, Host, Predictions
from tests.conftest import Api
from tests.support.api import publish
from tests.support.content import NAME, digests

DATASET = "veid/golden"
SAMPLES = 8
EVALUATION_POLICY = b"""
[channels.production]
max_regression = { r2 = 0.02 }

[channels.production.evaluation]
source = "worker"
dataset = "veid/golden@v3"
profile = "cpu-tensorflow"
min_workers = 2
min_samples = 8
thresholds = { r2 = ">=0.85", mae = "<=8.0", mean_bias = "-2..2" }
drift = { tolerance = 1.0, max_moved = 0.25, max_mean_abs_diff = 2.0 }
"""
"""Production takes a model two cpu-tensorflow workers measured on veid/golden@v3."""

GOOD = {"r2": 0.91, "mae": 5.2, "rmse": 7.0, "mean_bias": 0.4, "samples": float(SAMPLES)}


def npy(array: Any) -> bytes:
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


def dataset_files(samples: int = SAMPLES) -> dict[str, bytes]:
    return {
        "features.npy": npy(np.arange(samples * 3, dtype=np.float32).reshape(samples, 3)),
        "labels.npy": npy(np.linspace(0, 100, samples, dtype=np.float32)),
    }


def description(samples: int = SAMPLES, **changes: Any) -> dict[str, Any]:
    """The ``dataset`` field describing ``dataset_files(samples)`` (``changes`` replace
    top-level keys)."""
    doc: dict[str, Any] = {
        "samples": samples,
        "split": "test",
        "source": "veid golden set, 2026-11",
        "features": {
            "features": {"path": "features.npy", "dtype": "float32", "shape": [samples, 3]}
        },
        "labels": {"trust_score": {"path": "labels.npy", "dtype": "float32", "shape": [samples]}},
    }
    doc.update(changes)
    return doc


def push_dataset(api: Api, version: str = "v3", samples: int = SAMPLES) -> str:
    """Push ``veid/golden@version`` (201); its digest."""
    raw = publish(
        api,
        DATASET,
        version,
        dataset_files(samples),
        kind="dataset",
        dataset=description(samples),
    )
    return str(digests(raw).blake3)


def push_evaluable(api: Api, version: str) -> bytes:
    """A ``NAME`` TensorFlow model at ``version`` (201); its manifest."""
    files = {"saved_model.pb": f"graph {version}".encode()}
    return publish(api, NAME, version, files, runtime={"engine": "tensorflow-savedmodel"})


def measured(
    keyid: str,
    dataset: str,
    predictions: str,
    metrics: dict[str, float] | None = None,
    *,
    job: str | None = None,
    channel: str | None = "production",
    samples: int = SAMPLES,
    drift: Drift | None = None,
) -> EvaluationPredicate:
    """A worker's measured evaluation/v1 on ``dataset`` whose predictions digest is
    ``predictions``."""
    return EvaluationPredicate(
        metrics=dict(metrics or GOOD),
        dataset=Digest.parse(dataset),
        thresholds={"r2": ">=0.85"},
        samples=samples,
        predictions=Predictions(samples, Digest.parse(predictions)),
        profile="cpu-tensorflow",
        engine=Engine("tensorflow", "2.21.0"),
        device="cpu",
        host=Host(cpu="test cpu", os="Linux", python="3.11.7", libraries={}),
        determinism={"PYTHONHASHSEED": "0"},
        worker=keyid,
        job=job,
        channel=channel,
        timings={"predict_seconds": 0.1},
        drift=drift,
    )


def drift(
    against: bytes, predictions: str, *, moved: float, mean: float, metrics: dict[str, float]
) -> Drift:
    """The comparison with the model ``against`` (a manifest) whose predictions were
    ``predictions``."""
    return Drift(
        against=digests(against).blake3,
        predictions=Digest.parse(predictions),
        metrics=metrics,
        mean_abs_diff=mean,
        max_abs_diff=mean * 3,
        moved=moved,
        tolerance=1.0,
    )
