"""``reliquary audit verify``: prove the registry's transparency log only ever grew.

Trust model: the first run pins the log's note verifier key and checkpoint (trust on
first use); every later run trusts only the state file. Each answer of the registry
(key, checkpoint, entries, proofs) is checked, never believed:
1. the served key must equal the pinned one (a changed key is a failure, not a
   rotation), and the checkpoint note must carry a valid signature by it over the
   pinned origin;
2. the new tree must extend the pinned one: the same size must have the same root,
   a larger one needs an RFC 9162 consistency proof that verifies, a smaller one
   means history was rewritten;
3. each asked entry, as served now, hashes (``merkle.leaf_hash``) to a leaf whose
   inclusion proof leads to the new root;
4. with ``check_all``, every entry is fetched and the tree built from them must have
   the checkpoint's root (a rewritten entry is then located with O(log n) proofs);
5. with ``check_state`` (implies 4), the channel moves in those verified entries are
   replayed, and every channel the registry serves (``GET /v1/channels`` and
   ``/v1/resolve``) for each name the log moved must be exactly the replayed one: a
   pointer the log never put there, or a channel the log moved that is not served,
   fails (a channel moved after the checkpoint asks for a re-run).
Only when every check passed is the new checkpoint written to the state file
(atomically, via rename); any failure raises ``VerificationError`` and leaves the
file as it was.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from clients.client import RegistryClient
from clients.config import config_path
from clients.errors import InvalidRequestError, ReliquaryError, VerificationError
from registry.core import merkle
from registry.core.canonical import loads_strict
from registry.core.checkpoint import Checkpoint, NoteVerifier, open_checkpoint
from registry.core.errors import CoreError, InvalidJSONError

ENTRIES_PER_PAGE = 1000
CHANNEL_MOVES = ("channel.promote", "channel.rollback")
REWRITTEN = "history was rewritten: "


def default_state_path(url: str, env: Mapping[str, str] | None = None) -> Path:
    """``audit-<sha256(url)[:16]>.json`` beside the CLI config (``~/.config/reliquary``)."""
    name = hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]
    return config_path(env).parent / f"audit-{name}.json"


@dataclass(frozen=True, slots=True)
class AuditState:
    """The last checkpoint this auditor verified, and the key it pinned."""

    url: str
    log_key: str
    origin: str
    size: int
    root: str  # base64, as in the note
    note: str

    @classmethod
    def load(cls, path: Path) -> AuditState | None:
        """The state in ``path``, or None when there is none yet.

        Raises:
            InvalidRequestError: the file is not a state file this version wrote.
        """
        if not path.exists():
            return None
        try:
            doc = json.loads(path.read_bytes())
            state = cls(**{k: doc[k] for k in cls.__slots__})
            NoteVerifier.parse(state.log_key)
            Checkpoint(state.origin, state.size, base64.b64decode(state.root, validate=True))
        except (ValueError, TypeError, KeyError, binascii.Error) as exc:
            raise InvalidRequestError(
                f"{path} is not a usable audit state file ({type(exc).__name__}: {exc}); "
                "move it away to start over (the next run pins the log again)"
            ) from exc
        return state

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        os.replace(partial, path)

    @property
    def root_bytes(self) -> bytes:
        return base64.b64decode(self.root)


@dataclass(frozen=True, slots=True)
class AuditReport:
    origin: str
    size: int
    root: str
    log_key: str
    previous_size: int | None  # None: first run, the key and checkpoint were pinned now
    entries: tuple[int, ...]
    all_entries: bool
    state_file: str
    channels: dict[str, str] | None = None  # "name:channel" -> digest, as replayed and served


def audit_verify(
    client: RegistryClient,
    state_path: Path,
    *,
    entries: Iterable[int] = (),
    check_all: bool = False,
    check_state: bool = False,
) -> AuditReport:
    """Run the checks of the module docstring; on success pin the new checkpoint.

    Raises:
        VerificationError: any check failed (nothing is written).
        InvalidRequestError: an unusable state file, or an entry beyond the checkpoint.
    """
    state = AuditState.load(state_path)
    verifier, note, checkpoint = _verified_checkpoint(client, state)
    if state is not None:
        _check_extends(client, state, checkpoint)
    asked = tuple(sorted(set(entries)))
    for index in asked:
        _check_entry(client, checkpoint, index)
    channels = None
    if check_all or check_state:
        served_entries = _check_all(client, checkpoint)
        if check_state:
            channels = _check_channels(client, checkpoint, served_entries)
    root = base64.b64encode(checkpoint.root).decode()
    key = verifier.verifier_key()
    AuditState(client.base_url, key, checkpoint.origin, checkpoint.size, root, note).save(
        state_path
    )
    return AuditReport(
        origin=checkpoint.origin,
        size=checkpoint.size,
        root=root,
        log_key=key,
        previous_size=None if state is None else state.size,
        entries=asked,
        all_entries=check_all or check_state,
        state_file=str(state_path),
        channels=channels,
    )


def _verified_checkpoint(
    client: RegistryClient, state: AuditState | None
) -> tuple[NoteVerifier, str, Checkpoint]:
    served = client.log_key()
    if state is not None and served != state.log_key:
        raise VerificationError(
            f"the log key changed: pinned {state.log_key}, the registry now serves {served}; "
            "if the operator really rotated it, check the new key out of band and start a "
            "new state file"
        )
    try:
        verifier = NoteVerifier.parse(served)
    except CoreError as exc:
        raise VerificationError(f"the registry serves an unusable log key: {exc}") from exc
    note = client.log_checkpoint()
    try:
        checkpoint = open_checkpoint(note, verifier)
    except CoreError as exc:
        raise VerificationError(
            f"the checkpoint is not signed by the log key {served}: {exc}"
        ) from exc
    origin = verifier.name if state is None else state.origin
    if checkpoint.origin != origin:
        raise VerificationError(f"the checkpoint is for log {checkpoint.origin!r}, not {origin!r}")
    return verifier, note.decode(), checkpoint


def _check_extends(client: RegistryClient, state: AuditState, new: Checkpoint) -> None:
    """The pinned tree is a prefix of ``new``."""
    if new.size < state.size:
        raise VerificationError(
            f"{REWRITTEN}the log shrank from {state.size} entries (pinned) to {new.size}"
        )
    if new.size == state.size and new.root != state.root_bytes:
        raise VerificationError(
            f"{REWRITTEN}the registry now signs another root for the same size {new.size}: "
            f"pinned {state.root}, now {base64.b64encode(new.root).decode()}"
        )
    proof: list[bytes] = []
    if 0 < state.size < new.size:
        proof = client.consistency_proof(state.size, new.size)
    try:
        merkle.verify_consistency(state.size, new.size, state.root_bytes, new.root, proof)
    except CoreError as exc:
        raise VerificationError(
            f"{REWRITTEN}the checkpoint of size {new.size} does not extend the pinned one "
            f"of size {state.size} ({exc})"
        ) from exc


def _entry_of(served: dict[str, Any], index: int) -> bytes:
    """The bytes of a served entry, which must be entry ``index``."""
    try:
        entry = base64.b64decode(str(served.get("entry")), validate=True)
    except binascii.Error as exc:
        raise VerificationError(f"entry {index} as served is not base64: {exc}") from exc
    if served.get("index") != index:
        raise VerificationError(f"asked for entry {index}, got {served.get('index')!r}")
    return entry


def _leaf_of(served: dict[str, Any], index: int) -> bytes:
    """The leaf hash of a served entry, which must be entry ``index``."""
    return merkle.leaf_hash(_entry_of(served, index))


def _check_entry(client: RegistryClient, checkpoint: Checkpoint, index: int) -> None:
    if not 0 <= index < checkpoint.size:
        raise InvalidRequestError(
            f"entry {index} is not in the checkpoint (size {checkpoint.size})"
        )
    served = client.log_entries(index, index + 1)
    if len(served) != 1:
        raise VerificationError(f"asked for entry {index}, the registry sent {len(served)}")
    proof = client.inclusion_proof(index, checkpoint.size)
    try:
        merkle.verify_inclusion(
            index, checkpoint.size, _leaf_of(served[0], index), proof, checkpoint.root
        )
    except CoreError as exc:
        raise VerificationError(
            f"{REWRITTEN}entry {index} as served now is not the entry the log committed to ({exc})"
        ) from exc


def _check_all(client: RegistryClient, checkpoint: Checkpoint) -> list[bytes]:
    """Every entry of the checkpoint's tree, proven to hash to its root."""
    entries: list[bytes] = []
    for start in range(0, checkpoint.size, ENTRIES_PER_PAGE):
        end = min(start + ENTRIES_PER_PAGE, checkpoint.size)
        page = client.log_entries(start, end)
        if len(page) != end - start:
            raise VerificationError(
                f"asked for entries [{start}, {end}), the registry sent {len(page)}"
            )
        entries += [_entry_of(served, start + i) for i, served in enumerate(page)]
    leaves = [merkle.leaf_hash(e) for e in entries]
    if merkle.root_from_leaves(leaves) == checkpoint.root:
        return entries
    culprit = _locate_rewrite(client, leaves, checkpoint)
    where = f"; entry {culprit} fails its inclusion proof" if culprit is not None else ""
    raise VerificationError(
        f"{REWRITTEN}the {checkpoint.size} entries served do not hash to the checkpoint root{where}"
    )


def _sibling_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The leaf ranges whose hashes make up leaf ``index``'s inclusion proof, bottom-up."""
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        mid = lo + (1 << ((hi - lo - 1).bit_length() - 1))
        if index < mid:
            ranges.append((mid, hi))
            hi = mid
        else:
            ranges.append((lo, mid))
            lo = mid
    ranges.reverse()
    return ranges


def _locate_rewrite(client: RegistryClient, leaves: list[bytes], cp: Checkpoint) -> int | None:
    """An entry whose served bytes fail their inclusion proof, found in O(log n) proofs.

    Each proof's sibling hashes are compared with the same subtrees built from the
    served leaves; the smallest subtree that differs holds a rewritten entry. The
    answer is only reported once that entry's own proof fails, so a lying proof can
    misdirect the search but never blame an entry wrongly.
    """
    index = 0
    for _ in range(cp.size.bit_length() + 1):
        ranges = _sibling_ranges(index, cp.size)
        proof = client.inclusion_proof(index, cp.size)
        if len(proof) != len(ranges):
            return None
        differs = [
            r
            for r, h in zip(ranges, proof, strict=True)
            if merkle.root_from_leaves(leaves[r[0] : r[1]]) != h
        ]
        if differs:
            index = differs[0][0]
            continue
        try:
            merkle.verify_inclusion(index, cp.size, leaves[index], proof, cp.root)
        except merkle.InvalidProofError:
            return index
        return None
    return None


def replay_channels(entries: Iterable[bytes]) -> dict[tuple[str, str], tuple[str, int]]:
    """(name, channel) -> (digest, log index) of each channel's latest logged move.

    Raises:
        VerificationError: a move entry without a name, channel or target.
    """
    latest: dict[tuple[str, str], tuple[str, int]] = {}
    for index, raw in enumerate(entries):
        try:
            doc = loads_strict(raw)  # the server wrote it: bounded depth, no duplicates
        except InvalidJSONError as exc:
            raise VerificationError(f"entry {index} is not JSON: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("kind") not in CHANNEL_MOVES:
            continue
        name, channel, to = doc.get("name"), doc.get("channel"), doc.get("to")
        if not all(isinstance(v, str) for v in (name, channel, to)):
            raise VerificationError(f"entry {index} is a channel move without name/channel/to")
        latest[(str(name), str(channel))] = (str(to), index)
    return latest


def _check_channels(
    client: RegistryClient, checkpoint: Checkpoint, entries: list[bytes]
) -> dict[str, str]:
    """Every channel the log moved is served exactly as replayed; nothing else is."""
    replayed = replay_channels(entries)
    problems: list[str] = []
    for name in sorted({n for n, _ in replayed}):
        try:
            served = {str(p.get("channel")): p for p in client.channels(name)}
        except ReliquaryError as exc:
            problems.append(f"{name}: the registry refuses to list its channels: {exc}")
            continue
        logged = {c for n, c in replayed if n == name}
        for channel in sorted(logged | served.keys()):
            where = f"{name}:{channel}"
            pointer = served.get(channel)
            if (name, channel) not in replayed:
                problems.append(f"{where} is served but the log never moved it")
                continue
            digest, index = replayed[(name, channel)]
            if pointer is None:
                problems.append(f"{where} was moved to {digest} (entry {index}) but is not served")
                continue
            at = pointer.get("log_index")
            if isinstance(at, int) and at >= checkpoint.size:
                raise VerificationError(
                    f"{where} moved after checkpoint {checkpoint.size} (entry {at}); run again"
                )
            try:
                resolved = client.resolve_channel(name, channel).get("digest")
            except ReliquaryError as exc:
                resolved = f"a refusal ({exc})"
            for what, value in (("lists", pointer.get("digest")), ("resolves to", resolved)):
                if value != digest:
                    problems.append(
                        f"{where}: the registry {what} {value}, but the log's latest move of "
                        f"it (entry {index}) is to {digest}"
                    )
    if problems:
        raise VerificationError(
            "the served channel state disagrees with the log: " + "; ".join(problems)
        )
    return {f"{n}:{c}": d for (n, c), (d, _) in sorted(replayed.items())}
