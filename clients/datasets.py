"""The ``dataset`` description of ``reliquary push --kind dataset``, read from the files.

Invariants:
- Only the first bytes of a ``.npy`` are read (its header: ``registry.core.datasets.
  npy_header``), never its values; a ``.json`` file is a JSON array of strings (dtype
  ``text``, shape ``[N]``), parsed whole.
- Every problem is found before anything is hashed or sent: a named file missing or
  outside DIR, a file of another format, files that disagree on the sample count, no
  labels. The manifest's own rules (``core.datasets.dataset_problems``, which the
  registry applies again and answers 400 with) then check sizes against the headers.
- Without ``--features``, ``features.npy`` (input ``features``) or ``prompts.json``
  (``prompts``) in DIR is the features file; without ``--labels``, ``labels.npy`` (named
  ``label_name``, default ``DEFAULT_LABEL_NAME``) or ``expected.json`` (``expected``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clients.errors import InvalidRequestError
from registry.core.canonical import loads_strict
from registry.core.datasets import ITEMSIZE, MAX_NPY_HEADER, NPY_MAGIC, TEXT, npy_header
from registry.core.errors import CoreError

DEFAULT_LABEL_NAME = "output_0"
"""The model output a bare ``labels.npy`` holds expected values of: what Keras's
``model.export`` names a single output. Name yours with ``--label-name`` (the tour's
trust-score model: ``trust_score``)."""
DEFAULT_SPLIT = "test"
DEFAULT_SOURCE = "unspecified"
_DEFAULT_FEATURES = (("features", "features.npy"), ("prompts", "prompts.json"))
_DEFAULT_LABELS = (("", "labels.npy"), ("expected", "expected.json"))


def _defaults(root: Path, candidates: tuple[tuple[str, str], ...], label: str) -> dict[str, str]:
    for name, path in candidates:
        if (root / path).is_file():
            return {name or label: path}
    return {}


def _file(root: Path, option: str, name: str, path: str) -> dict[str, Any]:
    """``{path, dtype, shape}`` of one named file. Raises InvalidRequestError."""
    where = f"{option} {name}={path}"
    local = root / path
    if not local.resolve().is_relative_to(root.resolve()):
        raise InvalidRequestError(f"{where}: the path must be inside {root} (relative to it)")
    if not local.is_file():
        raise InvalidRequestError(
            f"{where}: {local} is not a file (paths are relative to the pushed directory)"
        )
    manifest_path = local.relative_to(root).as_posix()
    if local.suffix not in (".npy", ".json"):
        raise InvalidRequestError(
            f"{where}: a dataset file is a .npy (tensors) or a .json array of strings (text)"
        )
    try:
        held = file_holds(local)
    except ValueError as exc:
        raise InvalidRequestError(f"{where}: {exc}") from None
    if not held.shape:
        raise InvalidRequestError(f"{where}: a 0-d array holds no samples; one row each")
    return {"path": manifest_path, "dtype": held.dtype, "shape": list(held.shape)}


@dataclass(frozen=True, slots=True)
class FileHolds:
    """What one dataset file holds: a dtype (``text`` for strings) and a shape, and for a
    ``.npy`` the size its header and values make (None for text)."""

    dtype: str
    shape: tuple[int, ...]
    size: int | None


def file_holds(path: Path) -> FileHolds:
    """Read ``path`` as a dataset file: a ``.npy`` (only its header, by its magic) or a
    JSON array of strings. The push and the worker read files with this one rule.

    Raises:
        ValueError: neither, with what is wrong.
    """
    with path.open("rb") as f:
        prefix = f.read(MAX_NPY_HEADER)
        if prefix.startswith(NPY_MAGIC):
            header = npy_header(prefix)
            size = header.offset + math.prod(header.shape) * ITEMSIZE[header.dtype]
            return FileHolds(header.dtype, header.shape, size)
        raw = prefix + f.read()
    try:
        values = loads_strict(raw)  # bounded nesting, no NaN, no duplicate keys
    except CoreError as exc:
        raise ValueError(f"neither a .npy nor strict JSON ({exc})") from None
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError("a text file is a JSON array of strings, one per sample")
    return FileHolds(TEXT, (len(values),), None)


def describe_dataset(
    root: Path,
    *,
    features: dict[str, str],
    labels: dict[str, str],
    split: str = DEFAULT_SPLIT,
    source: str = DEFAULT_SOURCE,
    label_name: str = DEFAULT_LABEL_NAME,
) -> dict[str, Any]:
    """The manifest's ``dataset`` object for directory ``root``.

    ``features``/``labels``: name -> path relative to ``root`` (empty: the defaults).

    Raises:
        InvalidRequestError: no features or labels, a file missing or unreadable as a
            dataset file, or files that disagree on the number of samples.
    """
    if not root.is_dir():
        raise InvalidRequestError(f"{root} is not a directory")
    features = features or _defaults(root, _DEFAULT_FEATURES, label_name)
    labels = labels or _defaults(root, _DEFAULT_LABELS, label_name)
    if not labels:
        raise InvalidRequestError(
            "a dataset needs --labels NAME=PATH (NAME: the model output the values are "
            f"expected of), or a labels.npy or expected.json in {root}"
        )
    if not features:
        raise InvalidRequestError(
            "a dataset needs --features NAME=PATH (NAME: the model input), or a "
            f"features.npy or prompts.json in {root}"
        )
    described = {
        role: {name: _file(root, f"--{role}", name, path) for name, path in sorted(files.items())}
        for role, files in (("features", features), ("labels", labels))
    }
    rows = {
        spec["path"]: spec["shape"][0] for files in described.values() for spec in files.values()
    }
    if len(set(rows.values())) != 1:
        counts = ", ".join(f"{path} has {n}" for path, n in sorted(rows.items()))
        raise InvalidRequestError(
            f"the files disagree on the number of samples ({counts}); every file holds one "
            "row per sample"
        )
    return {
        "samples": next(iter(rows.values())),
        "split": split,
        "source": source,
        **described,
    }
