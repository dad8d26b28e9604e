"""Evaluation datasets: the description a ``kind: dataset`` manifest carries (ARCHITECTURE §13).

```jsonc
"dataset": {
  "samples": 10000,                       // rows; every file's first dimension
  "split": "test",                         // which split of the source this is
  "source": "veid golden set, 2026-11",   // where it came from (people read it)
  "features": {                            // model input name -> file
    "features": {"path": "features.npy", "dtype": "float32", "shape": [10000, 768]}
  },
  "labels": {                              // model output name -> expected values
    "trust_score": {"path": "labels.npy", "dtype": "float32", "shape": [10000]}
  }
}
```

A tensor file is a NumPy ``.npy`` (version 1 or 2 header, little-endian, C order) of
``dtype`` and ``shape``; a ``text`` file is a JSON array of ``shape[0]`` strings (LLM
prompts as features, expected completions as labels).

Invariants (checked on push, ``dataset_problems``): a manifest has a description exactly
when its kind is ``dataset``; it names at least one features file and one labels file,
each a file of the manifest, none twice; every shape starts with ``samples`` (>= 1);
a tensor file's size is its data (``prod(shape) * itemsize``) plus an ``.npy`` header
(a positive multiple of 16 bytes, at most ``MAX_NPY_HEADER``), so a file cut short or
described with the wrong shape or dtype is refused before any worker pulls it. Workers
check the header itself again before running (``workers.datasets``).
"""

from __future__ import annotations

import math
import re
from collections import Counter

import msgspec

TEXT = "text"  # a JSON array of strings
ITEMSIZE: dict[str, int] = {
    "float16": 2,
    "float32": 4,
    "float64": 8,
    "int8": 1,
    "int16": 2,
    "int32": 4,
    "int64": 8,
    "uint8": 1,
    "uint16": 2,
    "uint32": 4,
    "uint64": 8,
    "bool": 1,
}
DATA_DTYPES = frozenset(ITEMSIZE) | {TEXT}
MAX_NPY_HEADER = 65536 + 12  # magic + version + length + a version-2 header's limit we accept
MAX_TEXT = 1024  # at most so many name/split/source characters
MAX_FILES = 64  # features and labels files: one per model input or output
MAX_DIMS = 8  # dimensions of one file's shape
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./:-]{0,127}")


class DataFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One file of a dataset: its path in the manifest, dtype and shape."""

    path: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def data_bytes(self) -> int | None:
        """Bytes of the values after the ``.npy`` header (None for text)."""
        size = ITEMSIZE.get(self.dtype)
        return None if size is None else math.prod(self.shape) * size


class Dataset(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    samples: int
    split: str
    source: str
    features: dict[str, DataFile]
    labels: dict[str, DataFile]

    def files(self) -> list[tuple[str, str, DataFile]]:
        """("features" | "labels", name, file), sorted by role then name."""
        return [("features", n, f) for n, f in sorted(self.features.items())] + [
            ("labels", n, f) for n, f in sorted(self.labels.items())
        ]


def _file_problems(
    dataset: Dataset, role: str, name: str, spec: DataFile, sizes: dict[str, int]
) -> list[str]:
    where = f"dataset.{role}.{name}"
    problems = []
    if not _NAME.fullmatch(name):
        problems.append(f"{where}: names are 1..128 of [A-Za-z0-9_./:-], not starting with ./:-")
    if spec.path not in sizes:
        problems.append(
            f"{where}: {spec.path!r} is not a file of this artifact (its files: "
            f"{', '.join(sorted(sizes)[:8]) or 'none'}); add the file or fix the path"
        )
    if len(spec.shape) > MAX_DIMS:
        problems.append(
            f"{where}: shape {list(spec.shape)[:12]}… has more than {MAX_DIMS} dimensions"
        )
        return problems
    if spec.dtype not in DATA_DTYPES:
        problems.append(f"{where}: dtype {spec.dtype!r} is not one of {sorted(DATA_DTYPES)}")
        return problems
    if not spec.shape or any(d < 0 for d in spec.shape) or spec.shape[0] != dataset.samples:
        problems.append(
            f"{where}: shape {list(spec.shape)} must start with the sample count "
            f"{dataset.samples} (one row per sample)"
        )
        return problems
    if spec.dtype == TEXT:
        if len(spec.shape) != 1:
            problems.append(f"{where}: a text file is a JSON array of strings, shape [samples]")
        return problems
    data = spec.data_bytes or 0
    size = sizes.get(spec.path)
    if size is not None and not (16 <= size - data <= MAX_NPY_HEADER and (size - data) % 16 == 0):
        problems.append(
            f"{where}: {spec.path!r} is {size} bytes, but a .npy of {spec.dtype}"
            f"{list(spec.shape)} holds {data} bytes of values after its header: the file is "
            "cut short, or its dtype or shape is not what the description says"
        )
    return problems


def dataset_problems(kind: str, dataset: Dataset | None, sizes: dict[str, int]) -> list[str]:
    """Why a manifest's ``dataset`` description does not hold (empty when it does).
    ``sizes``: the manifest's files, path -> size."""
    if kind != "dataset":
        return [] if dataset is None else [f"a {kind} artifact carries no dataset description"]
    if dataset is None:
        return [
            "a dataset artifact needs a 'dataset' description (samples, split, source, "
            "features, labels); `reliquary push --kind dataset` writes it"
        ]
    problems = []
    if dataset.samples < 1:
        problems.append("dataset.samples must be at least 1")
    for key, text in (("split", dataset.split), ("source", dataset.source)):
        if not text.strip() or len(text) > MAX_TEXT:
            problems.append(f"dataset.{key} must be 1..{MAX_TEXT} characters")
    if not dataset.features:
        problems.append("dataset.features must name at least one features file")
    if not dataset.labels:
        problems.append(
            "dataset.labels must name at least one labels file: without labels nothing can "
            "be measured"
        )
    files = dataset.files()
    if len(files) > MAX_FILES:
        return [
            f"dataset: {len(files)} features and labels files; at most {MAX_FILES} (one per "
            "model input or output)"
        ]
    counted = Counter(f.path for _, _, f in files)
    twice = sorted(p for p, n in counted.items() if n > 1)
    if twice:
        problems.append(f"dataset: each file serves once; named twice: {twice}")
    if problems:
        return problems
    for role, name, spec in files:
        problems += _file_problems(dataset, role, name, spec, sizes)
    return problems


NPY_MAGIC = b"\x93NUMPY"
_NPY_TYPES = {
    "f2": "float16",
    "f4": "float32",
    "f8": "float64",
    "i1": "int8",
    "i2": "int16",
    "i4": "int32",
    "i8": "int64",
    "u1": "uint8",
    "u2": "uint16",
    "u4": "uint32",
    "u8": "uint64",
    "b1": "bool",
}


class NpyHeader(msgspec.Struct, frozen=True):
    dtype: str  # a DATA_DTYPES name
    shape: tuple[int, ...]
    offset: int  # where the values start


def npy_header(prefix: bytes) -> NpyHeader:
    """The header of a ``.npy`` file from its first bytes (at least the whole header).

    Only what a dataset may hold: format version 1 or 2, a little-endian (or byte-order
    free) numeric or bool dtype of ``ITEMSIZE``, C order. Parsed with ``ast.literal_eval``
    (never ``eval``, never pickle).

    Raises:
        ValueError: not such a file, with what is wrong.
    """
    import ast

    if not prefix.startswith(NPY_MAGIC) or len(prefix) < 10:
        raise ValueError("not a .npy file (no \\x93NUMPY magic)")
    major = prefix[6]
    if major == 1:
        length, start = int.from_bytes(prefix[8:10], "little"), 10
    elif major in (2, 3):
        length, start = int.from_bytes(prefix[8:12], "little"), 12
    else:
        raise ValueError(f".npy format version {major} is not 1, 2 or 3")
    if len(prefix) < start + length:
        raise ValueError(f"the .npy header is {length} bytes; only {len(prefix) - start} read")
    try:
        header = ast.literal_eval(prefix[start : start + length].decode("latin-1"))
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f"the .npy header is not a Python literal: {exc}") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise ValueError("the .npy header must hold exactly descr, fortran_order and shape")
    descr, fortran, shape = header["descr"], header["fortran_order"], header["shape"]
    if not isinstance(descr, str) or descr[:1] not in "<|" or descr[1:] not in _NPY_TYPES:
        raise ValueError(
            f"dtype {descr!r} is not a little-endian {', '.join(sorted(ITEMSIZE))} (pickled "
            "objects, strings and big-endian data are not dataset tensors)"
        )
    if fortran is not False:
        raise ValueError("the array is in Fortran order; save it in C order")
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ValueError(f"shape {shape!r} is not a tuple of sizes")
    return NpyHeader(_NPY_TYPES[descr[1:]], shape, start + length)
