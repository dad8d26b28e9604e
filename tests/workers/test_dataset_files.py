"""A pulled dataset's files are checked against its description before any run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from registry.core.datasets import DataFile, Dataset
from workers.datasets import check_files, check_profile
from workers.errors import Refusal


def described(samples: int = 8) -> Dataset:
    return Dataset(
        samples=samples,
        split="test",
        source="tests",
        features={"features": DataFile("features.npy", "float32", (samples, 4))},
        labels={"trust_score": DataFile("labels.npy", "float32", (samples,))},
    )


def write(root: Path, samples: int = 8) -> None:
    np.save(root / "features.npy", np.zeros((samples, 4), np.float32))
    np.save(root / "labels.npy", np.zeros(samples, np.float32))


def test_files_that_match_the_description_pass(tmp_path: Path) -> None:
    write(tmp_path)
    check_files(described(), tmp_path)


def test_a_missing_label_file_is_refused_before_any_run(tmp_path: Path) -> None:
    write(tmp_path)
    (tmp_path / "labels.npy").unlink()
    with pytest.raises(
        Refusal, match=r"dataset.labels.trust_score: labels.npy is missing"
    ) as caught:
        check_files(described(), tmp_path)
    assert caught.value.retry is False


def test_a_file_of_another_shape_or_dtype_is_refused(tmp_path: Path) -> None:
    write(tmp_path)
    np.save(tmp_path / "labels.npy", np.zeros(8, np.float64))
    with pytest.raises(Refusal, match=r"holds float64\[8\]; the description says float32\[8\]"):
        check_files(described(), tmp_path)
    np.save(tmp_path / "labels.npy", np.zeros((8, 2), np.float32).T)  # Fortran order
    with pytest.raises(Refusal, match="Fortran"):
        check_files(described(), tmp_path)


def test_text_files_hold_one_string_per_sample(tmp_path: Path) -> None:
    data = Dataset(
        samples=2,
        split="test",
        source="tests",
        features={"prompts": DataFile("prompts.json", "text", (2,))},
        labels={"expected": DataFile("expected.json", "text", (2,))},
    )
    (tmp_path / "prompts.json").write_text(json.dumps(["a", "b"]))
    (tmp_path / "expected.json").write_text(json.dumps(["c"]))
    with pytest.raises(Refusal, match="holds 1 strings for 2 samples"):
        check_files(data, tmp_path)


def texts(samples: int = 2) -> Dataset:
    return Dataset(
        samples=samples,
        split="test",
        source="tests",
        features={"prompts": DataFile("prompts.json", "text", (samples,))},
        labels={"expected": DataFile("expected.json", "text", (samples,))},
    )


def test_text_labels_for_a_tensor_model_are_refused_before_any_run() -> None:
    tensors = described()
    check_profile(tensors, "cpu-tensorflow", llm=False)
    mixed = Dataset(
        samples=8,
        split="test",
        source="tests",
        features=tensors.features,
        labels={"trust_score": DataFile("labels.json", "text", (8,))},
    )
    with pytest.raises(Refusal) as caught:
        check_profile(mixed, "cpu-tensorflow", llm=False)
    assert caught.value.retry is False
    assert caught.value.reason.startswith(
        "dataset.labels.trust_score: labels.json is text; a tensor model (cpu-tensorflow) "
        "needs .npy features and labels"
    )
    with pytest.raises(Refusal, match=r"dataset.features.prompts: prompts.json is text"):
        check_profile(texts(), "cpu-tensorflow", llm=False)


def test_an_llm_is_refused_a_dataset_of_npy_files() -> None:
    check_profile(texts(), "cpu-vllm", llm=True)
    with pytest.raises(Refusal, match=r"has features \['features'\], labels \['trust_score'\]"):
        check_profile(described(), "cpu-vllm", llm=True)
    npy_expected = Dataset(
        samples=2,
        split="test",
        source="tests",
        features=texts().features,
        labels={"expected": DataFile("expected.npy", "int64", (2,))},
    )
    with pytest.raises(Refusal) as caught:
        check_profile(npy_expected, "cuda-vllm", llm=True)
    assert caught.value.retry is False
    assert caught.value.reason.startswith(
        "dataset.labels.expected: expected.npy is int64 data; an LLM (cuda-vllm) needs text"
    )
