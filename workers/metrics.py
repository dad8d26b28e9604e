"""The metrics a worker measures (names: ``registry.core.evaluation``), and drift.

Invariants: every figure is computed in float64 with NumPy from the canonical
predictions bytes (``decode``) and the dataset's labels, in a fixed order, so two
workers with the same predictions digest compute the same metrics bit for bit; every
figure is finite (non-finite predictions are refused before anything is measured).

Tensor models compare each predicted value with its label (a sample with several
values counts each): ``r2`` (1 - SS_res / SS_tot; 1.0 for a perfect fit and 0.0
otherwise when every label is the same), ``mae``, ``rmse``, ``p95_abs_error`` (NumPy's
linear percentile), ``mean_bias`` (mean of prediction - label), ``accuracy_<k>`` (share
of values within k points), ``samples``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

from registry.core.evaluation import accuracy_points
from registry.core.outputs import MAGIC
from workers.errors import Refusal

ACCURACY_POINTS = (5, 10, 20)  # always measured; thresholds may name more
Floats: TypeAlias = npt.NDArray[np.float64]


def decode(encoded: bytes) -> dict[str, npt.NDArray[np.generic]]:
    """The tensors of a canonical outputs encoding (``registry.core.outputs``), by name.

    Raises:
        ValueError: the bytes are not such an encoding.
    """
    if not encoded.startswith(MAGIC):
        raise ValueError("not a reliquary.outputs.v1 encoding")
    out: dict[str, npt.NDArray[np.generic]] = {}
    at = len(MAGIC)
    while at < len(encoded):
        end = encoded.index(b"\n", at)
        header = json.loads(encoded[at:end])
        start, at = end + 1, end + 1 + int(header["nbytes"])
        if at > len(encoded):
            raise ValueError(f"tensor {header['name']!r} is cut short")
        dtype = np.dtype(header["dtype"]).newbyteorder("<")
        out[header["name"]] = np.frombuffer(encoded[start:at], dtype=dtype).reshape(header["shape"])
    return out


def per_sample(array: npt.NDArray[np.generic], samples: int) -> Floats:
    """``array`` as float64 rows, one per sample: shape (samples, values per sample)."""
    return np.asarray(array, dtype=np.float64).reshape(samples, -1)


def accuracy_names(thresholds: Iterable[str]) -> dict[str, float]:
    """``accuracy_<k>`` metric name -> k: 5, 10, 20 and any the thresholds name."""
    names = {f"accuracy_{k}": float(k) for k in ACCURACY_POINTS}
    for metric in thresholds:
        points = accuracy_points(metric)
        if points is not None:
            names[metric] = points
    return names


def regression(
    predicted: Floats, labels: Floats, thresholds: Iterable[str] = ()
) -> dict[str, float]:
    """Metrics of ``predicted`` against ``labels`` (same shape: samples x values).

    Raises:
        Refusal: (no retry) a prediction is not finite.
    """
    if predicted.size == 0 or labels.size == 0:
        raise Refusal("the predictions or the labels hold no values: nothing to measure")
    bad = int(np.count_nonzero(~np.isfinite(predicted).all(axis=1)))
    if bad:
        raise Refusal(f"the model predicted non-finite values (NaN or inf) for {bad} sample(s)")
    bad = int(np.count_nonzero(~np.isfinite(labels).all(axis=1)))
    if bad:
        raise Refusal(f"the dataset's labels hold non-finite values for {bad} sample(s)")
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused below
        return _regression(predicted, labels, thresholds)


def _regression(predicted: Floats, labels: Floats, thresholds: Iterable[str]) -> dict[str, float]:
    error = predicted - labels
    absolute = np.abs(error)
    ss_res = float(np.sum(error * error))
    ss_tot = float(np.sum((labels - labels.mean()) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else (1.0 if ss_res == 0 else 0.0)
    metrics = {
        "r2": r2,
        "mae": float(absolute.mean()),
        "rmse": float(np.sqrt(np.mean(error * error))),
        "p95_abs_error": float(np.percentile(absolute, 95, method="linear")),
        "mean_bias": float(error.mean()),
    }
    for name, points in sorted(accuracy_names(thresholds).items()):
        metrics[name] = float(np.mean(absolute <= points))
    _finite("metrics", metrics)
    metrics["samples"] = predicted.shape[0]
    return metrics


_TOKENS = re.compile(r"tokens/([0-9]{5,})")


def token_ids(tensors: Mapping[str, npt.NDArray[np.generic]]) -> list[list[int]]:
    """An LLM's token ids per prompt, in prompt order, from its decoded predictions
    (``registry.core.outputs.token_tensors``: ``tokens/<i>``, ``i`` zero-padded to five
    digits). Ordered by the index ``i``, not by name: "tokens/100000" sorts before
    "tokens/10001" as a string.

    Raises:
        Refusal: (no retry) a name is not ``tokens/<i>`` in that form, or the indices are
            not 0 .. count - 1.
    """
    by_index: dict[int, list[int]] = {}
    for name, array in tensors.items():
        match = _TOKENS.fullmatch(name)
        if match is None or name != f"tokens/{int(match.group(1)):05d}":
            raise Refusal(
                f"the LLM's predictions hold a tensor {name!r}; every one must be "
                "tokens/<prompt index> (five digits at least, zero-padded)"
            )
        by_index[int(match.group(1))] = [int(t) for t in array.reshape(-1)]
    if sorted(by_index) != list(range(len(by_index))):
        gaps = sorted(set(range(len(by_index))) - set(by_index))[:5]
        raise Refusal(
            f"the LLM's predictions name {len(by_index)} prompts but not prompt(s) {gaps}: "
            "they must be tokens/00000 .. one per prompt, in order"
        )
    return [by_index[i] for i in range(len(by_index))]


def token_agreement(generated: Sequence[Sequence[int]], expected: Sequence[Sequence[int]]) -> float:
    """Share of the expected tokens generated at the same position (1.0 when none expected)."""
    total = sum(len(e) for e in expected)
    matched = sum(
        sum(1 for a, b in zip(g, e, strict=False) if a == b)
        for g, e in zip(generated, expected, strict=True)
    )
    return matched / total if total else 1.0


def llm(
    texts: Sequence[str],
    expected_texts: Sequence[str],
    generated: Sequence[Sequence[int]],
    expected: Sequence[Sequence[int]],
) -> dict[str, float]:
    """``exact_match``, ``token_agreement`` and ``samples`` of an LLM over a prompt set."""
    same = sum(1 for t, e in zip(texts, expected_texts, strict=True) if t == e)
    return {
        "exact_match": same / len(texts),
        "token_agreement": token_agreement(generated, expected),
        "samples": len(texts),
    }


def tensor_drift(new: Floats, old: Floats, tolerance: float) -> dict[str, float]:
    """How far predictions moved from the baseline's (both samples x values):
    mean and max absolute difference over every value, and the share of samples with a
    value that moved by more than ``tolerance``."""
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused below
        diff = np.abs(new - old)
    return _finite(
        "drift",
        {
            "mean_abs_diff": float(diff.mean()),
            "max_abs_diff": float(diff.max()),
            "moved": float(np.mean((diff > tolerance).any(axis=1))),
        },
    )


def _finite(what: str, figures: dict[str, float]) -> dict[str, float]:
    """``figures`` if every one is finite. Raises Refusal (no retry): predictions so
    large that a figure overflows measure nothing a threshold can judge."""
    bad = sorted(k for k, v in figures.items() if not np.isfinite(v))
    if bad:
        raise Refusal(
            f"the {what} {', '.join(bad)} overflow (the predictions or labels are too large "
            "to measure in float64)"
        )
    return figures


def token_drift(new: Sequence[Sequence[int]], old: Sequence[Sequence[int]]) -> dict[str, float]:
    """LLM drift: per prompt, the share of differing token positions over the longer
    sequence; their mean and max, and the share of prompts whose tokens changed (a
    prompt moves when any token changes: the tolerance of LLM drift is always 0)."""
    shares = []
    for a, b in zip(new, old, strict=True):
        longer = max(len(a), len(b))
        same = sum(1 for x, y in zip(a, b, strict=False) if x == y)
        shares.append((longer - same) / longer if longer else 0.0)
    return {
        "mean_abs_diff": sum(shares) / len(shares),
        "max_abs_diff": max(shares),
        "moved": sum(1 for a, b in zip(new, old, strict=True) if list(a) != list(b)) / len(shares),
    }
