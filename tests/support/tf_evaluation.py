"""Tiny evaluation fixtures the tests build themselves: a seeded teacher model (64 float
features -> ``trust_score`` in 0..100), its variants, and a dataset labelled by the
teacher plus small seeded noise; and pushing them to a registry.

    python -m tests.support.tf_evaluation OUT [--shift 2.5] [--pooled]

builds ``OUT`` as a SavedModel: the teacher, its output shifted by ``--shift`` points
(a biased or drifting variant), or ``--pooled``: one prediction per batch (a model
whose output count differs from its input count). TensorFlow is imported only there,
never in the test process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from clients.client import RegistryClient
from registry.core.canonical import canonical_bytes
from registry.core.digest import digest_bytes
from registry.core.manifest import SCHEMA_V1, Manifest

FEATURES = 64
HIDDEN = 16
SEED = 20261122
NOISE = 0.5  # points of seeded label noise around the teacher


def _weights() -> tuple[np.ndarray[Any, Any], ...]:
    rng = np.random.default_rng(SEED)
    w1 = rng.normal(0, 1 / np.sqrt(FEATURES), (FEATURES, HIDDEN)).astype(np.float32)
    w2 = rng.normal(0, 1 / np.sqrt(HIDDEN), (HIDDEN, 1)).astype(np.float32)
    return w1, w2


def teacher(features: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The teacher's scores in NumPy (float64): what the labels are built from."""
    w1, w2 = _weights()
    hidden = np.maximum(features.astype(np.float64) @ w1, 0)
    result: np.ndarray[Any, Any] = 100 / (1 + np.exp(-(hidden @ w2)[:, 0]))
    return result


def build_dataset(out: Path, samples: int, seed: int = 7) -> dict[str, Any]:
    """``out/features.npy`` (float32 [samples, 64]) and ``out/labels.npy`` (float32
    [samples]: the teacher's scores plus seeded noise); the dataset description."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    features = rng.normal(0, 1, (samples, FEATURES)).astype(np.float32)
    labels = (teacher(features) + rng.normal(0, NOISE, samples)).astype(np.float32)
    np.save(out / "features.npy", features)
    np.save(out / "labels.npy", labels)
    return {
        "samples": samples,
        "split": "test",
        "source": f"seeded teacher {SEED} + noise {NOISE} (tests)",
        "features": {
            "features": {"path": "features.npy", "dtype": "float32", "shape": [samples, FEATURES]}
        },
        "labels": {"trust_score": {"path": "labels.npy", "dtype": "float32", "shape": [samples]}},
    }


def build_model(out: Path, *args: str) -> Path:
    """Build a model variant (see the module) in a fresh process; ``out``."""
    subprocess.run(
        [sys.executable, "-m", "tests.support.tf_evaluation", str(out), *args],
        check=True,
        capture_output=True,
        timeout=300,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    return out


def push_dataset(
    url: str, token: str, root: Path, name: str, version: str, description: dict[str, Any]
) -> str:
    """Push ``root`` as a ``kind: dataset`` artifact with ``description``; its digest."""
    files = sorted(p for p in root.iterdir() if p.is_file())
    digests = {p: digest_bytes(p.read_bytes()) for p in files}
    doc = {
        "schema": SCHEMA_V1,
        "kind": "dataset",
        "name": name,
        "version": version,
        "files": [
            {
                "path": p.name,
                "size": d.size_bytes,
                "blake3": d.blake3.hex,
                "sha256": d.sha256.hex,
            }
            for p, d in digests.items()
        ],
        "labels": {},
        "dataset": description,
    }
    import msgspec

    raw = canonical_bytes(msgspec.convert(doc, Manifest, strict=True).to_dict())
    with RegistryClient(url, token) as client:
        for path, d in digests.items():
            client.put_blob(d.blake3, path)
        artifact, _ = client.put_manifest(raw)
    return str(artifact["digest"])


def _build(out: Path, shift: float, pooled: bool) -> None:
    import tensorflow as tf

    w1, w2 = _weights()

    class Model(tf.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.w1 = tf.Variable(w1)
            self.w2 = tf.Variable(w2)

        @tf.function(input_signature=[tf.TensorSpec([None, FEATURES], tf.float32, name="features")])
        def serve(self, features: tf.Tensor) -> dict[str, tf.Tensor]:
            hidden = tf.nn.relu(tf.matmul(features, self.w1))
            score = 100.0 * tf.sigmoid(tf.matmul(hidden, self.w2)) + shift
            if pooled:
                score = tf.reduce_mean(score, axis=0)
            return {"trust_score": score}

    model = Model()
    tf.saved_model.save(model, str(out), signatures={"serving_default": model.serve})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--shift", type=float, default=0.0)
    parser.add_argument("--pooled", action="store_true")
    args = parser.parse_args()
    _build(args.out, args.shift, args.pooled)


if __name__ == "__main__":
    main()
