"""The canonical output encoding and the verdict over workers' attestations."""

from __future__ import annotations

import struct
from collections.abc import Mapping

import pytest

from registry.core.errors import CoreError
from registry.core.outputs import MAGIC, Tensor, encode_outputs, output_values, token_tensors
from registry.core.policy import Facts, evaluate, parse_policy
from registry.core.predicates import values_from_json
from registry.core.reproducibility import Tolerance, WorkerResult, compare, judge

A, B = "blake3:" + "aa" * 32, "blake3:" + "bb" * 32


def floats(name: str, *values: float) -> Tensor:
    return Tensor(name, "float32", (len(values),), struct.pack(f"<{len(values)}f", *values))


def test_encoding_is_sorted_by_name_and_carries_dtype_shape_and_bytes() -> None:
    a, b = floats("b", 1.0), floats("a", 2.0, 3.0)
    encoded = encode_outputs([a, b])
    assert encoded == encode_outputs([b, a])
    assert encoded.startswith(MAGIC)
    assert encoded.index(b'"name":"a"') < encoded.index(b'"name":"b"')
    assert encoded.endswith(struct.pack("<f", 1.0))
    # the same bytes under another dtype or shape are a different output
    as_int = Tensor("b", "int32", (1,), struct.pack("<f", 1.0))  # same bytes, other dtype
    assert encode_outputs([as_int]) != encode_outputs([a])
    reshaped = Tensor("a", "float32", (1, 2), b.data)  # same bytes, other shape
    assert encode_outputs([a, reshaped]) != encoded
    with pytest.raises(CoreError, match="unique"):
        encode_outputs([a, floats("b", 9.0)])
    with pytest.raises(CoreError, match="do not fit"):
        Tensor("x", "float32", (3,), b"\0" * 8)


def test_token_ids_become_int64_tensors_per_prompt() -> None:
    tensors = token_tensors([[5, 6, 7], [1]])
    assert [(t.name, t.shape) for t in tensors] == [("tokens/00000", (3,)), ("tokens/00001", (1,))]
    assert output_values(tensors) == {
        "tokens/00000": {"dtype": "int64", "shape": [3], "values": [5, 6, 7]},
        "tokens/00001": {"dtype": "int64", "shape": [1], "values": [1]},
    }
    assert output_values([floats("x", float("nan"))]) is None


def result(key: str, *runs: str, values: Mapping[str, object] | None = None) -> WorkerResult:
    decoded = None if values is None else values_from_json(values)
    return WorkerResult(key * 64, runs[0], runs, len(set(runs)) == 1, decoded)


def test_verdict_counts_distinct_agreeing_workers_and_names_every_disagreement() -> None:
    good = judge("cpu-tensorflow", [result("1", A, A, A), result("2", A, A, A), result("2", A)])
    assert good.finding is None and good.agreeing_workers == 2 and good.output == A
    within = judge("cpu-tensorflow", [result("1", A, A, A), result("2", A, B, A)])
    assert within.agreeing_workers == 0 and within.output is None
    assert within.finding is not None and A in within.finding and B in within.finding
    across = judge("cpu-tensorflow", [result("1", A), result("2", B)])
    assert across.finding is not None and "workers disagree" in across.finding
    assert f"{A} from {'1' * 16}" in across.finding and f"{B} from {'2' * 16}" in across.finding


POLICY = b"""
[channels.production]
reproducibility = [{ profile = "cpu-vllm", min_workers = 1 }, { profile = "cuda-vllm", min_workers = 1 }]
cross_profile = { max_abs_diff = 0.01, min_token_agreement = 0.75 }
"""


def tokens(*ids: int) -> dict[str, object]:
    return {"tokens/00000": {"dtype": "int64", "shape": [len(ids)], "values": list(ids)}}


def test_cross_profile_results_are_compared_with_the_policys_tolerance() -> None:
    rules = parse_policy(POLICY).for_channel("production")

    def met(cpu: WorkerResult, gpu: WorkerResult) -> tuple[bool, str]:
        facts = Facts(
            reproducibility={
                "cpu-vllm": judge("cpu-vllm", [cpu]),
                "cuda-vllm": judge("cuda-vllm", [gpu]),
            }
        )
        req = {r.name: r for r in evaluate(rules, facts)}["cross_profile.cpu-vllm~cuda-vllm"]
        return req.met, req.reason

    assert met(result("1", A), result("2", A))[0]
    ok, why = met(
        result("1", A, values=tokens(1, 2, 3, 4)), result("2", B, values=tokens(1, 2, 3, 9))
    )
    assert ok and "token agreement 0.7500" in why
    ok, why = met(
        result("1", A, values=tokens(1, 2, 3, 4)), result("2", B, values=tokens(1, 9, 3, 9))
    )
    assert not ok and "0.5000" in why
    ok, why = met(result("1", A), result("2", B))
    assert not ok and "too large" in why
    close = {"y": {"dtype": "float32", "shape": [2], "values": [1.0, 2.0]}}
    far = {"y": {"dtype": "float32", "shape": [2], "values": [1.0, 2.5]}}
    assert compare(
        judge("a", [result("1", A, values=close)]),
        judge("b", [result("2", B, values=far)]),
        Tolerance(0.6),
    )[0]
    assert not compare(
        judge("a", [result("1", A, values=close)]),
        judge("b", [result("2", B, values=far)]),
        Tolerance(0.1),
    )[0]
    other_shape = {"y": {"dtype": "float32", "shape": [1], "values": [1.0]}}
    ok, why = compare(
        judge("a", [result("1", A, values=close)]),
        judge("b", [result("2", B, values=other_shape)]),
        Tolerance(1.0),
    )
    assert not ok and why == "output 'y' is float32[2] vs float32[1]"
