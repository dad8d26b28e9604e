"""``reliquary push``: publish a directory as an artifact, sending only what is missing.

Steps, each failing before anything is sent when it can:
1. walk the directory in a stable order (regular files; a symlink must stay
   inside the tree and point at a file); refuse paths that some filesystem
   cannot hold (``path_set_problems``: the manifest's own rules, so the message
   is the one the registry and every pull would give), then hash every file
   (blake3 + sha256) in parallel;
2. build and validate the canonical manifest (bad names stop here);
3. ask the registry which blobs it lacks, upload only those, several at once;
   files from ``resumable_from_bytes`` up go through resumable sessions whose
   state sits in the cache, so a re-run resumes from the server's offset;
4. push the manifest. Re-running an identical push sends no blob bytes.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from clients.cache import BlobCache
from clients.client import RegistryClient
from clients.errors import InvalidRequestError
from clients.files import hash_file
from clients.progress import TransferProgress
from registry.core.canonical import canonical_bytes
from registry.core.digest import BlobDigests
from registry.core.errors import CoreError
from registry.core.manifest import SCHEMA_V1, Manifest, Scalar, path_set_problems
from registry.core.quantity import parse_size

RESUMABLE_FROM = "1GiB"
RESUMABLE_FROM_BYTES = parse_size(RESUMABLE_FROM)
"""Files this big or bigger go through resumable sessions (multi-GB files, where a
restart from zero hurts). A session costs the server a second write of the bytes
(parts, then the blob): a 2 GiB push of 107 MB files ran at 245 MB/s through
sessions against 320-370 MB/s as monolithic PUTs (docs/benchmarks.md)."""


@dataclass(frozen=True, slots=True)
class LocalFile:
    path: str  # relative POSIX path in the manifest
    source: Path
    digests: BlobDigests


@dataclass(frozen=True, slots=True)
class PushResult:
    """What a push did. ``uploaded_bytes`` counts the blobs the registry lacked
    (a resumed upload's earlier part included); 0 means nothing needed sending.
    ``manifest_raw`` is the canonical manifest as pushed: sign its digests."""

    digest: str
    sha256: str
    name: str
    version: str
    created: bool
    files: int
    total_bytes: int
    uploaded_bytes: int
    blobs_uploaded: int
    blobs_present: int
    manifest_raw: bytes = field(default=b"", repr=False)  # the exact bytes pushed

    def summary(self) -> dict[str, Any]:
        """Every field but the manifest bytes: what ``push --json`` prints."""
        fields = asdict(self)
        del fields["manifest_raw"]
        return fields


def walk(root: Path) -> list[tuple[str, Path]]:
    """(manifest path, file) for every file under ``root``, sorted by path.

    Raises:
        InvalidRequestError: a symlink leaving the tree or to a directory, or a
            special file (device, FIFO, socket).
    """
    if not root.is_dir():
        raise InvalidRequestError(f"{root} is not a directory")
    real_root = root.resolve()
    found: list[tuple[str, Path]] = []
    for directory, dirnames, filenames in os.walk(root):
        here = Path(directory)
        for name in dirnames:
            if (here / name).is_symlink():
                raise InvalidRequestError(f"{here / name} is a symlinked directory; copy it in")
        for name in filenames:
            source = here / name
            if source.is_symlink():
                target = source.resolve()
                if not target.is_relative_to(real_root):
                    raise InvalidRequestError(f"{source} links outside {root} (to {target})")
            mode = source.stat().st_mode
            if not stat.S_ISREG(mode):
                raise InvalidRequestError(f"{source} is not a regular file")
            found.append((source.relative_to(root).as_posix(), source))
    return sorted(found)


def build_manifest(
    files: list[LocalFile],
    *,
    name: str,
    version: str,
    kind: str,
    labels: dict[str, str],
    runtime: dict[str, Scalar] | None = None,
    reference_inputs: str | None = None,
    dataset: dict[str, Any] | None = None,
) -> bytes:
    """Canonical manifest bytes. Raises InvalidRequestError naming every problem."""
    doc: dict[str, Any] = {
        "schema": SCHEMA_V1,
        "kind": kind,
        "name": name,
        "version": version,
        "files": [
            {
                "path": f.path,
                "size": f.digests.size_bytes,
                "blake3": f.digests.blake3.hex,
                "sha256": f.digests.sha256.hex,
            }
            for f in files
        ],
        "labels": labels,
    }
    if runtime:
        doc["runtime"] = runtime
    if reference_inputs:
        doc["reference"] = {"inputs": reference_inputs}
    if dataset is not None:
        doc["dataset"] = dataset
    try:
        manifest = msgspec.convert(doc, Manifest, strict=True)
    except (CoreError, ValueError) as exc:
        raise InvalidRequestError(f"cannot build a valid manifest: {exc}") from exc
    return canonical_bytes(manifest.to_dict())


def _upload(
    client: RegistryClient,
    cache: BlobCache,
    file: LocalFile,
    resumable_from: int,
    chunk_bytes: int,
    advance: Callable[[int], None],
) -> None:
    if file.digests.size_bytes >= resumable_from:
        client.upload_resumable(
            file.digests.blake3,
            file.source,
            chunk_bytes=chunk_bytes,
            session_file=cache.upload_session(file.digests.blake3.hex),
            on_bytes=advance,
        )
    else:
        client.put_blob(file.digests.blake3, file.source, on_bytes=advance)


def push_directory(
    client: RegistryClient,
    root: Path,
    *,
    name: str,
    version: str,
    kind: str = "model",
    labels: dict[str, str] | None = None,
    runtime: dict[str, Scalar] | None = None,
    reference_inputs: str | None = None,
    dataset: dict[str, Any] | None = None,
    cache: BlobCache,
    progress: TransferProgress,
    parallel: int = 4,
    resumable_from_bytes: int = RESUMABLE_FROM_BYTES,
    chunk_bytes: int = 64 * 2**20,
) -> PushResult:
    """Publish ``root`` as ``name@version``; ``dataset``: the description a ``kind:
    dataset`` manifest carries (``clients.datasets.describe_dataset``).

    Raises:
        InvalidRequestError: the directory or the manifest is not acceptable.
        RefusedError: the version is taken by other content (409), or blobs went missing.
        VerificationError, AuthError, TransportError, ServerError: from the registry.
    """
    entries = walk(root)
    problems = path_set_problems([path for path, _ in entries])
    if problems:  # before hashing: the manifest would refuse them anyway
        raise InvalidRequestError(f"cannot build a valid manifest: {'; '.join(problems)}")
    total = sum(source.stat().st_size for _, source in entries)
    hashing = progress.task("hashing", total)
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        digests = list(pool.map(lambda e: hash_file(e[1], hashing), entries))
    files = [LocalFile(p, s, d) for (p, s), d in zip(entries, digests, strict=True)]
    raw = build_manifest(
        files,
        name=name,
        version=version,
        kind=kind,
        labels=labels or {},
        runtime=runtime,
        reference_inputs=reference_inputs,
        dataset=dataset,
    )
    unique = list({f.digests.blake3.hex: f for f in files}.values())
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        present = list(pool.map(lambda f: client.blob(f.digests.blake3) is not None, unique))
    missing = [f for f, here in zip(unique, present, strict=True) if not here]
    sent = [0]

    def advance_factory(bar: Callable[[int], None]) -> Callable[[int], None]:
        def advance(nbytes: int) -> None:
            sent[0] += nbytes
            bar(nbytes)

        return advance

    uploading = advance_factory(
        progress.task("uploading", sum(f.digests.size_bytes for f in missing))
    )
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        for future in [
            pool.submit(_upload, client, cache, f, resumable_from_bytes, chunk_bytes, uploading)
            for f in missing
        ]:
            future.result()
    artifact, created = client.put_manifest(raw)
    return PushResult(
        digest=str(artifact["digest"]),
        sha256=str(artifact["sha256"]),
        name=name,
        version=version,
        created=created,
        files=len(files),
        total_bytes=total,
        uploaded_bytes=sent[0],
        blobs_uploaded=len(missing),
        blobs_present=len(unique) - len(missing),
        manifest_raw=raw,
    )
