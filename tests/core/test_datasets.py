"""Dataset descriptions on push (core.datasets): what a worker would find wrong only after
pulling is refused before anything is stored, naming the file and what to fix."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest

from registry.core.canonical import canonical_bytes
from registry.core.datasets import npy_header
from registry.core.errors import InvalidManifestError
from registry.core.manifest import parse_manifest
from tests.support.content import manifest_dict


def npy(array: np.ndarray[Any, Any]) -> bytes:
    out = io.BytesIO()
    np.save(out, array, allow_pickle=False)
    return out.getvalue()


FEATURES = npy(np.zeros((100, 8), np.float32))
LABELS = npy(np.zeros(100, np.float32))
FILES = {"features.npy": FEATURES, "labels.npy": LABELS, "README": b"golden set"}


def description(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "samples": 100,
        "split": "test",
        "source": "seeded teacher + noise",
        "features": {"features": {"path": "features.npy", "dtype": "float32", "shape": [100, 8]}},
        "labels": {"trust_score": {"path": "labels.npy", "dtype": "float32", "shape": [100]}},
    }
    doc.update(changes)
    return doc


def dataset_manifest(dataset: dict[str, Any] | None, files: dict[str, bytes] = FILES) -> bytes:
    fields: dict[str, Any] = {"kind": "dataset"}
    if dataset is not None:
        fields["dataset"] = dataset
    return canonical_bytes(manifest_dict("veid/golden", "v1", files, **fields))


def refused(raw: bytes) -> str:
    with pytest.raises(InvalidManifestError) as info:
        parse_manifest(raw)
    return str(info.value)


def test_a_described_dataset_parses_and_keeps_its_description() -> None:
    parsed = parse_manifest(dataset_manifest(description()))
    dataset = parsed.manifest.dataset
    assert dataset is not None and dataset.samples == 100
    assert dataset.labels["trust_score"].shape == (100,)
    assert parsed.manifest.canonical_bytes() == parsed.raw  # the description round-trips


def test_a_dataset_without_a_description_and_a_model_with_one_are_refused() -> None:
    assert "needs a 'dataset' description" in refused(dataset_manifest(None))
    model = manifest_dict("veid/m", "v1", FILES, dataset=description())
    assert "a model artifact carries no dataset description" in refused(canonical_bytes(model))


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"labels": {}}, "dataset.labels must name at least one labels file"),
        (
            {"labels": {"y": {"path": "missing.npy", "dtype": "float32", "shape": [100]}}},
            "'missing.npy' is not a file of this artifact",
        ),
        (
            {"labels": {"y": {"path": "labels.npy", "dtype": "float32", "shape": [99]}}},
            "must start with the sample count 100",
        ),
        (
            {"labels": {"y": {"path": "labels.npy", "dtype": "float64", "shape": [100]}}},
            "is cut short, or its dtype or shape is not what the description says",
        ),
        (
            {"labels": {"y": {"path": "labels.npy", "dtype": "object", "shape": [100]}}},
            "dtype 'object' is not one of",
        ),
        (
            {"labels": {"y": {"path": "features.npy", "dtype": "float32", "shape": [100, 8]}}},
            "each file serves once",
        ),
        ({"samples": 0}, "dataset.samples must be at least 1"),
        (
            {
                "labels": {
                    "y": {
                        "path": "labels.npy",
                        "dtype": "float32",
                        "shape": [100] + [2**53 - 1] * 300,
                    }
                }
            },
            "has more than 8 dimensions",
        ),
        ({"split": " "}, "dataset.split must be 1..1024 characters"),
    ],
)
def test_each_bad_description_is_refused_naming_it(change: dict[str, Any], why: str) -> None:
    assert why in refused(dataset_manifest(description(**change)))


def test_a_truncated_tensor_file_is_refused_by_its_size() -> None:
    files = {**FILES, "labels.npy": LABELS[:-4]}
    assert "'labels.npy' is" in refused(dataset_manifest(description(), files))


def test_text_files_are_arrays_of_one_string_per_sample() -> None:
    prompts = json.dumps(["a", "b"]).encode()
    files = {"prompts.json": prompts, "expected.json": prompts}
    text = {"dtype": "text", "shape": [2]}
    ok = description(
        samples=2,
        features={"prompts": {"path": "prompts.json", **text}},
        labels={"expected": {"path": "expected.json", **text}},
    )
    assert parse_manifest(dataset_manifest(ok, files)).manifest.dataset is not None
    flat = {"dtype": "text", "shape": [2, 1]}
    bad = {**ok, "labels": {"expected": {"path": "expected.json", **flat}}}
    assert "a text file is a JSON array of strings" in refused(dataset_manifest(bad, files))


@pytest.mark.parametrize(
    "array",
    [np.zeros((3, 4), np.float32), np.arange(5, dtype=np.int64), np.zeros(2, bool)],
)
def test_npy_headers_read_like_numpy_wrote_them(array: np.ndarray[Any, Any]) -> None:
    raw = npy(array)
    header = npy_header(raw[:256])
    assert (header.dtype, header.shape) == (array.dtype.name, array.shape)
    assert len(raw) - header.offset == array.nbytes


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"PK\x03\x04", "no \\x93NUMPY magic"),
        (npy(np.zeros(2, ">f4")), "not a little-endian"),
        (npy(np.asfortranarray(np.zeros((2, 3), np.float32))), "Fortran order"),
        (npy(np.array(["a"])), "not a little-endian"),
    ],
)
def test_npy_headers_outside_what_a_dataset_holds_are_refused(raw: bytes, why: str) -> None:
    with pytest.raises(ValueError) as info:
        npy_header(raw[:256])
    assert why in str(info.value)
