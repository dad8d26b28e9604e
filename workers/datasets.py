"""A pulled dataset's files checked against its description before anything runs.

The registry checked the description and the file sizes on push, and the pull checked
every byte's hash; this checks what the bytes are: each ``.npy`` header
(``registry.core.datasets.npy_header``: dtype, shape, C order) is the described one and
the file holds exactly its values after it; each text file is a JSON array of
``samples`` strings. A file missing from the directory is refused too (a model is never
run on part of a dataset). Before any of that, ``check_profile`` refuses a dataset whose
files are not the kind the profile's models take (text for an LLM, ``.npy`` for a tensor
model): such a job would fail the same way on every worker.
"""

from __future__ import annotations

import json
from pathlib import Path

from registry.core.datasets import MAX_NPY_HEADER, TEXT, DataFile, Dataset, npy_header
from workers.errors import Refusal


def _check_npy(where: str, path: Path, spec: DataFile) -> None:
    with path.open("rb") as f:
        prefix = f.read(MAX_NPY_HEADER)
    try:
        header = npy_header(prefix)
    except ValueError as exc:
        raise Refusal(f"{where}: {spec.path}: {exc}") from None
    if header.dtype != spec.dtype or header.shape != spec.shape:
        raise Refusal(
            f"{where}: {spec.path} holds {header.dtype}{list(header.shape)}; the description "
            f"says {spec.dtype}{list(spec.shape)}"
        )
    size = path.stat().st_size
    if size != header.offset + (spec.data_bytes or 0):
        raise Refusal(
            f"{where}: {spec.path} is {size} bytes; its header and {spec.dtype}"
            f"{list(spec.shape)} values make {header.offset + (spec.data_bytes or 0)}"
        )


def _check_text(where: str, path: Path, spec: DataFile, samples: int) -> None:
    try:
        texts = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Refusal(f"{where}: {spec.path} is not JSON: {exc}") from None
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise Refusal(f"{where}: {spec.path} must be a JSON array of strings")
    if len(texts) != samples:
        raise Refusal(f"{where}: {spec.path} holds {len(texts)} strings for {samples} samples")


def check_files(dataset: Dataset, root: Path) -> None:
    """Every features and labels file under ``root`` is what ``dataset`` describes.

    Raises:
        Refusal: (no retry) a file is missing or is not what the description says; the
            reason names the file and both the description and what the file holds.
    """
    for role, name, spec in dataset.files():
        where = f"dataset.{role}.{name}"
        path = root / spec.path
        if not path.is_file():
            raise Refusal(
                f"{where}: {spec.path} is missing from the dataset; refusing before any run "
                f"(a {role[:-1]} file is needed for every sample)"
            )
        if spec.dtype == TEXT:
            _check_text(where, path, spec, dataset.samples)
        else:
            _check_npy(where, path, spec)


def check_profile(dataset: Dataset, profile: str, *, llm: bool) -> None:
    """``dataset``'s files are what ``profile``'s models take: for an LLM profile
    (``llm``), features ``{prompts}`` and labels ``{expected}``, both text; for a tensor
    profile, every features and labels file a ``.npy`` of a numpy dtype (never text).
    Checked from the description alone, before anything is pulled or run.

    Raises:
        Refusal: (no retry) the first file of the wrong kind, naming it and what the
            profile needs; every worker of the profile would fail on it the same way.
    """
    if llm:
        names = (sorted(dataset.features), sorted(dataset.labels))
        if names != (["prompts"], ["expected"]):
            raise Refusal(
                f"an LLM dataset ({profile}) has features {{prompts}} and labels "
                f"{{expected}}, text files; this one has features {names[0]}, labels "
                f"{names[1]}: push a dataset of that form for this channel"
            )
    for role, name, spec in dataset.files():
        if (spec.dtype == TEXT) != llm:
            raise Refusal(
                f"dataset.{role}.{name}: {spec.path} is "
                + (
                    f"{spec.dtype} data; an LLM ({profile}) needs text features and labels "
                    "(JSON arrays of strings)"
                    if llm
                    else f"text; a tensor model ({profile}) needs .npy features and labels "
                    "of a numpy dtype"
                )
                + "; refused before any run: point the channel's policy at a dataset of "
                "that kind"
            )
