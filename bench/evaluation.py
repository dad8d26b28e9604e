"""What a worker's evaluation costs over the bare prediction it wraps (ARCHITECTURE §13).

Run: ``.venv/bin/python -m bench.evaluation [--samples 10000] [--rounds 5]``

The trust-score example model (768 float features -> ``trust_score``) and a dataset of
``--samples`` x 768 seeded features with labels. Each round, one after the other:

- evaluation, as the worker runs it: the dataset's files checked against the description
  (``workers.datasets``), a fresh ``python -m workers.child evaluate`` with the
  cpu-tensorflow profile's environment and determinism controls (fixed batches, one
  thread, op determinism), which writes the canonical predictions, then the predictions
  decoded and every metric computed in the parent (``workers.metrics``);
- bare: a fresh ``python -c`` that imports TensorFlow, loads the SavedModel and calls
  its signature once on the whole dataset, with no controls.

Pulling is left out of both (the bytes are local). Ratio = median evaluation / median
bare; the target is <= 1.3x.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import machine_line
from registry.core.datasets import Dataset
from workers import metrics
from workers.child import EVALUATE
from workers.datasets import check_files
from workers.profiles import PROFILES
from workers.runs import CHILD_ENV, CODE

REPO = Path(__file__).resolve().parents[1]
FEATURES = 768
TARGET = 1.3
BARE = (
    "import os,sys; os.environ['CUDA_VISIBLE_DEVICES']=''; os.environ['TF_CPP_MIN_LOG_LEVEL']='2'\n"
    "import numpy as np, tensorflow as tf\n"
    "m = tf.saved_model.load(sys.argv[1]); f = m.signatures['serving_default']\n"
    "f(features=tf.constant(np.load(sys.argv[2])))\n"
)


def build(root: Path, samples: int) -> dict[str, Any]:
    subprocess.run(
        [sys.executable, str(REPO / "examples" / "trust_score.py"), str(root / "ts")],
        check=True,
        capture_output=True,
    )
    data = root / "dataset"
    data.mkdir()
    rng = np.random.default_rng(11)
    np.save(data / "features.npy", rng.normal(0, 1, (samples, FEATURES)).astype(np.float32))
    np.save(data / "labels.npy", rng.uniform(0, 100, samples).astype(np.float32))
    return {
        "samples": samples,
        "split": "bench",
        "source": "seeded noise",
        "features": {
            "features": {"path": "features.npy", "dtype": "float32", "shape": [samples, FEATURES]}
        },
        "labels": {"trust_score": {"path": "labels.npy", "dtype": "float32", "shape": [samples]}},
    }


def evaluation(root: Path, description: dict[str, Any], out: Path) -> float:
    import msgspec

    started = time.monotonic()
    dataset = msgspec.convert(description, Dataset)
    data = root / "dataset"
    check_files(dataset, data)
    profile = PROFILES["cpu-tensorflow"]
    env = {k: v for k, v in os.environ.items() if k in CHILD_ENV} | profile.env
    env["PYTHONPATH"] = CODE
    out.mkdir()
    subprocess.run(
        [
            sys.executable,
            "-s",
            "-P",
            "-m",
            "workers.child",
            EVALUATE,
            profile.name,
            str(root / "ts" / "model"),
            str(data),
            json.dumps(description),
            "{}",
            str(out),
        ],
        env=env,
        cwd=out,
        check=True,
        capture_output=True,
    )
    tensors = metrics.decode((out / "predictions.bin").read_bytes())
    n = dataset.samples
    labels = metrics.per_sample(np.load(data / "labels.npy"), n)
    metrics.regression(metrics.per_sample(tensors["trust_score"], n), labels)
    return time.monotonic() - started


def bare(root: Path) -> float:
    started = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-c",
            BARE,
            str(root / "ts" / "model"),
            str(root / "dataset" / "features.npy"),
        ],
        check=True,
        capture_output=True,
    )
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.evaluation", description=__doc__)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="reliquary-bench-eval-") as tmp:
        root = Path(tmp)
        print(machine_line(root))
        description = build(root, args.samples)
        bare(root)  # warm the page cache for both
        evals, bares = [], []
        for i in range(args.rounds):
            evals.append(evaluation(root, description, root / f"out-{i}"))
            bares.append(bare(root))
        ev, ba = statistics.median(evals), statistics.median(bares)
        label = f"{args.samples} x {FEATURES}"
        print(
            f"{'bare predict, fresh process (s) ' + label:52} {ba:8.2f}  min-max {min(bares):.2f}-{max(bares):.2f}"
        )
        print(
            f"{'evaluation, child + metrics (s) ' + label:52} {ev:8.2f}  min-max {min(evals):.2f}-{max(evals):.2f}"
        )
        ratio = ev / ba
        print(
            f"{'evaluation / bare predict':52} {ratio:8.2f}   <= {TARGET}x "
            f"{'meets' if ratio <= TARGET else 'MISSES'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
