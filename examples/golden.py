"""Build the golden evaluation dataset of the trust-score model (examples/trust_score.py).

    python examples/golden.py OUT [--samples 2000] [--sigma 3]   # OUT/features.npy, OUT/labels.npy
    reliquary push OUT --kind dataset --name veid/golden --version v1 --label-name trust_score

Features are seeded normal rows of 768 values; the labels (``trust_score``, the model's
output, shape [N]) are what the teacher — the trust-score network with
``trust_score.py``'s default seed — says of each row, plus seeded normal noise of
``--sigma`` points, clipped to 0..100. So the default model meets the release runbook's
thresholds on it (R² >= 0.85, MAE <= 8, RMSE <= 10, accuracy within 5/10/20 points >=
60/80/95 %, P95 absolute error <= 15, mean bias within ±2), and a model serving its score
``--bias 2.5`` points higher does not (mean bias). The script prints the metrics of the
teacher's own predictions, computed with NumPy the way workers compute them
(registry/core/evaluation.py), so you can check before you push.

Only NumPy is needed: the teacher's weights are drawn here exactly as ``trust_score.py``
draws them (same generator, same order, float32).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

FEATURES = 768
HIDDEN = 64
MODEL_SEED = 20261122  # trust_score.py's default
FEATURES_SEED = 14
NOISE_SEED = 15
THRESHOLDS = {  # the runbook's table, as examples/policy.toml writes it
    "r2": ">=0.85",
    "mae": "<=8",
    "rmse": "<=10",
    "accuracy_5": ">=0.6",
    "accuracy_10": ">=0.8",
    "accuracy_20": ">=0.95",
    "p95_abs_error": "<=15",
    "mean_bias": "-2..2",
}


def teacher(features: np.ndarray, seed: int = MODEL_SEED, bias: float = 0.0) -> np.ndarray:
    """The trust-score model's output for each row, in float32 like the SavedModel."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 1 / np.sqrt(FEATURES), (FEATURES, HIDDEN)).astype(np.float32)
    w2 = rng.normal(0, 1 / np.sqrt(HIDDEN), (HIDDEN, 1)).astype(np.float32)
    hidden = np.maximum(features @ w1, 0)
    logit = (hidden @ w2)[:, 0]
    score: np.ndarray = (100.0 / (1.0 + np.exp(-logit))).astype(np.float32) + np.float32(bias)
    return score


def metrics(predicted: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The runbook's metrics of ``predicted`` against ``labels`` (float64 arithmetic)."""
    p, y = predicted.astype(np.float64).ravel(), labels.astype(np.float64).ravel()
    error = p - y
    absolute = np.abs(error)
    return {
        "r2": float(1 - np.sum(error**2) / np.sum((y - y.mean()) ** 2)),
        "mae": float(absolute.mean()),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "accuracy_5": float(np.mean(absolute <= 5)),
        "accuracy_10": float(np.mean(absolute <= 10)),
        "accuracy_20": float(np.mean(absolute <= 20)),
        "p95_abs_error": float(np.percentile(absolute, 95)),
        "mean_bias": float(error.mean()),
        "samples": float(len(y)),
    }


def holds(rule: str, value: float) -> bool:
    """Whether ``value`` meets ``rule`` as the registry judges it (its own parser)."""
    from registry.core.evaluation_rules import parse_evaluation

    evaluation = parse_evaluation(
        "golden", {"evaluation": {"source": "publisher", "thresholds": {"m": rule}}}
    )
    assert evaluation is not None
    return evaluation.thresholds[0].holds(value)


def build(out: Path, samples: int = 2000, sigma: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Write ``out/features.npy`` (float32 [samples, 768]) and ``out/labels.npy``
    (float32 [samples])."""
    features = np.random.default_rng(FEATURES_SEED).normal(0, 1, (samples, FEATURES))
    features = features.astype(np.float32)
    noise = np.random.default_rng(NOISE_SEED).normal(0, sigma, samples)
    labels = np.clip(teacher(features) + noise, 0, 100).astype(np.float32)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "features.npy", features)
    np.save(out / "labels.npy", labels)
    return features, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--sigma", type=float, default=3.0, help="label noise, in points")
    args = parser.parse_args()
    features, labels = build(args.out, args.samples, args.sigma)
    print(f"wrote {args.out / 'features.npy'} {features.shape} and {args.out / 'labels.npy'}")
    for bias in (0.0, 1.5, 2.5):
        measured = metrics(teacher(features, bias=bias), labels)
        failed = [m for m, rule in THRESHOLDS.items() if not holds(rule, measured[m])]
        figures = ", ".join(f"{k} {v:.4g}" for k, v in measured.items() if k != "samples")
        verdict = "meets the runbook" if not failed else "misses " + ", ".join(failed)
        print(f"model --bias {bias:g}: {figures}: {verdict}")


if __name__ == "__main__":
    main()
