"""A pulled dataset's files checked against its description before anything runs.

The registry checked the description and the file sizes on push, and the pull checked
every byte's hash; this checks what the bytes are: each ``.npy`` header
(``registry.core.datasets.npy_header``: dtype, shape, C order) is the described one and
the file holds exactly its values after it; each text file is a JSON array of
``samples`` strings (``clients.datasets.file_holds``: the push reads files the same way). A file missing from the directory is refused too (a model is never
run on part of a dataset). Before any of that, ``check_profile`` refuses a dataset whose
files are not the kind the profile's models take (text for an LLM, ``.npy`` for a tensor
model): such a job would fail the same way on every worker.
"""

from __future__ import annotations

from pathlib import Path

from clients.datasets import file_holds
from registry.core.datasets import TEXT, DataFile, Dataset
from workers.errors import Refusal


def _check_file(where: str, path: Path, spec: DataFile, samples: int) -> None:
    try:
        held = file_holds(path)
    except ValueError as exc:
        raise Refusal(f"{where}: {spec.path}: {exc}") from None
    if held.dtype == TEXT and spec.dtype == TEXT and held.shape != (samples,):
        raise Refusal(f"{where}: {spec.path} holds {held.shape[0]} strings for {samples} samples")
    if held.dtype != spec.dtype or held.shape != spec.shape:
        raise Refusal(
            f"{where}: {spec.path} holds {held.dtype}{list(held.shape)}; the description "
            f"says {spec.dtype}{list(spec.shape)}"
        )
    size = path.stat().st_size
    if held.size is not None and size != held.size:
        raise Refusal(
            f"{where}: {spec.path} is {size} bytes; its header and {spec.dtype}"
            f"{list(spec.shape)} values make {held.size}"
        )


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
        _check_file(where, path, spec, dataset.samples)


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
