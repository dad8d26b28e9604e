"""The metrics a worker signs, against figures worked out by hand; drift; and the
canonical predictions decoded back from the bytes whose digest is signed."""

from __future__ import annotations

import numpy as np
import pytest

from registry.core.outputs import Tensor, encode_outputs, token_tensors
from workers import metrics
from workers.errors import Refusal

# four samples: errors +1, -2, +3, -4 around labels 10, 20, 30, 40
Y = np.array([[10.0], [20.0], [30.0], [40.0]])
P = np.array([[11.0], [18.0], [33.0], [36.0]])


def test_regression_metrics_match_the_hand_computed_figures() -> None:
    got = metrics.regression(P, Y)
    # SS_res = 1 + 4 + 9 + 16 = 30; mean y = 25, SS_tot = 225 + 25 + 25 + 225 = 500
    assert got["r2"] == pytest.approx(1 - 30 / 500)
    assert got["mae"] == pytest.approx((1 + 2 + 3 + 4) / 4)
    assert got["rmse"] == pytest.approx(np.sqrt(30 / 4))
    assert got["mean_bias"] == pytest.approx((1 - 2 + 3 - 4) / 4)
    # |e| sorted 1, 2, 3, 4: the 95th percentile sits at 0.95 * 3 = 2.85 -> 3 + 0.85 * 1
    assert got["p95_abs_error"] == pytest.approx(3.85)
    assert got["accuracy_5"] == 1.0 and got["accuracy_10"] == 1.0 and got["accuracy_20"] == 1.0
    assert got["samples"] == 4


def test_accuracy_counts_the_share_within_each_number_of_points() -> None:
    labels = np.full((4, 1), 50.0)
    predicted = labels + np.array([[3.0], [-7.0], [15.0], [-25.0]])  # |e| 3, 7, 15, 25
    got = metrics.regression(predicted, labels)
    assert (got["accuracy_5"], got["accuracy_10"], got["accuracy_20"]) == (0.25, 0.5, 0.75)
    assert got["p95_abs_error"] == pytest.approx(15 + 0.85 * 10)  # rank 2.85 of 3, 7, 15, 25


def test_thresholds_may_name_more_accuracy_points() -> None:
    got = metrics.regression(P, Y, ["accuracy_2.5", "mae", "accuracy_3"])
    assert got["accuracy_2.5"] == 0.5  # |e| <= 2.5: 1 and 2
    assert got["accuracy_3"] == 0.75  # within k counts k itself
    assert "mae" in got and "accuracy_5" in got


def test_a_constant_label_set_has_a_finite_r2() -> None:
    flat = np.full((3, 1), 50.0)
    assert metrics.regression(flat, flat)["r2"] == 1.0
    assert metrics.regression(flat + 1, flat)["r2"] == 0.0


def test_non_finite_predictions_are_refused_naming_how_many() -> None:
    bad = P.copy()
    bad[1, 0] = np.nan
    bad[2, 0] = np.inf
    with pytest.raises(Refusal, match="2 sample") as caught:
        metrics.regression(bad, Y)
    assert caught.value.retry is False


def test_tensor_drift_counts_samples_that_moved_beyond_tolerance() -> None:
    new = np.array([[10.0, 1.0], [20.0, 2.0], [30.0, 3.0], [40.0, 4.0]])
    old = np.array([[10.5, 1.0], [20.0, 0.0], [30.0, 3.0], [41.5, 4.0]])
    got = metrics.tensor_drift(new, old, tolerance=1.0)
    assert got["mean_abs_diff"] == pytest.approx((0.5 + 2 + 1.5) / 8)
    assert got["max_abs_diff"] == 2.0
    assert got["moved"] == 0.5  # sample 1 (by 2 on its second value) and sample 3 (by 1.5)


def test_llm_metrics_and_token_drift() -> None:
    got = metrics.llm(
        ["a b", "c", "x"], ["a b", "c d", "y"], [[1, 2], [3], [9]], [[1, 2], [3, 4], [8]]
    )
    assert got["exact_match"] == pytest.approx(1 / 3)
    assert got["token_agreement"] == pytest.approx(3 / 5)  # 1, 2, 3 of 1, 2, 3, 4, 8
    assert got["samples"] == 3
    drift = metrics.token_drift([[1, 2], [3, 4, 5], [7]], [[1, 2], [3, 9], [7]])
    # prompt 2: positions 1 and 2 differ over the longer sequence of 3
    assert drift == {"mean_abs_diff": pytest.approx(2 / 9), "max_abs_diff": 2 / 3, "moved": 1 / 3}


def test_decode_gives_back_the_tensors_of_the_canonical_encoding() -> None:
    scores = np.array([[1.5], [2.5]], dtype=np.float32)
    encoded = encode_outputs(
        [Tensor("trust_score", "float32", (2, 1), scores.tobytes()), *token_tensors([[5, 6]])]
    )
    got = metrics.decode(encoded)
    assert got["trust_score"].tolist() == [[1.5], [2.5]] and got["trust_score"].dtype == np.float32
    assert got["tokens/00000"].tolist() == [5, 6]
    with pytest.raises(ValueError):
        metrics.decode(b"something else")


def test_token_ids_follow_the_prompt_index_past_99999_prompts() -> None:
    # "tokens/100000" sorts before "tokens/10001" as a string; prompt i's tokens are [i]
    encoded = encode_outputs(token_tensors([[i] for i in range(100_002)]))
    ids = metrics.token_ids(metrics.decode(encoded))
    assert len(ids) == 100_002
    assert ids[10_001] == [10_001] and ids[100_000] == [100_000] and ids[-1] == [100_001]
    assert ids == [[i] for i in range(100_002)]


def test_token_ids_refuse_names_not_of_the_token_tensors_form() -> None:
    one = np.array([1], dtype=np.int64)
    with pytest.raises(Refusal, match="'tokens/1'"):
        metrics.token_ids({"tokens/00000": one, "tokens/1": one})
    with pytest.raises(Refusal, match="'trust_score'"):
        metrics.token_ids({"trust_score": one})
    with pytest.raises(Refusal, match=r"not prompt\(s\) \[1\]") as caught:
        metrics.token_ids({"tokens/00000": one, "tokens/00002": one})
    assert caught.value.retry is False


def test_figures_that_cannot_be_judged_are_refused_naming_why() -> None:
    with pytest.raises(Refusal, match="labels hold non-finite values for 1 sample"):
        metrics.regression(P, np.array([[1.0], [np.nan], [3.0], [4.0]]))
    with pytest.raises(Refusal, match=r"metrics .*overflow"):
        metrics.regression(np.full((4, 1), 1e200), Y)
    with pytest.raises(Refusal, match=r"drift .*overflow"):
        metrics.tensor_drift(np.full((2, 1), 1e308), np.full((2, 1), -1e308), 1.0)
