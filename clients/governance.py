"""Governance tooling and auditors' queries over channels (ARCHITECTURE §1, §6, §8).

Invariants:
- Every artifact named here was fetched by digest and verified first
  (``clients.pull.fetch_parsed_manifest``): a proposal's digests, sizes and blob
  URLs come from the manifest bytes that hash to its digest, never from what the
  server says about them.
- ``walk_history`` follows ``next_cursor`` through every page and stops with a
  ``VerificationError`` when the log indexes do not strictly decrease across
  pages (a server that repeats or reorders history cannot loop us or slip in
  an older entry twice).
- A proposal is deterministic given the registry's answers and ``created_at``:
  keys sorted, blobs in manifest order without repeats.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from clients.client import RegistryClient
from clients.errors import VerificationError
from registry.core.digest import Algorithm, Digest
from registry.core.errors import CoreError
from registry.core.manifest import ParsedManifest

PROPOSAL_SCHEMA = "reliquary.proposal.v1"


def walk_history(
    client: RegistryClient, name: str, channel: str | None = None, page_size: int = 100
) -> Iterator[dict[str, Any]]:
    """Every move of ``name`` (in ``channel``, or all of its channels), newest first.

    Raises:
        VerificationError: log indexes that do not strictly decrease, or a page
            that promises more but holds nothing. Others: see ``RegistryClient.history``.
    """
    cursor: str | None = None
    last: int | None = None
    while True:
        page = client.history(name, channel, cursor, page_size)
        for event in page["events"]:
            index = event.get("log_index")
            if not isinstance(index, int) or (last is not None and index >= last):
                raise VerificationError(
                    f"the history of {name} went from log index {last} to {index!r}; "
                    "it must strictly decrease"
                )
            last = index
            yield event
        cursor = page["next_cursor"]
        if cursor is None:
            return
        if not page["events"]:
            raise VerificationError(f"the history of {name} sent an empty page with a cursor")


def actor_of(event: dict[str, Any]) -> str:
    """Who did it, for people: the token's description (its id beside it) and, where a
    signed statement caused it, the key; a bare token id only for events logged before
    descriptions were recorded."""
    token, actor, keyid = event.get("by"), event.get("actor"), event.get("keyid")
    who = f"{actor} (token {token})" if actor else (f"token {token}" if token else "anonymous")
    return f"{who}, key {keyid}" if keyid else who


def history_record(event: dict[str, Any]) -> dict[str, Any]:
    """One event as an auditor's JSON Lines record: who (``by``: the token id; ``actor``:
    its description and any key), when (``at``), what, why."""
    return {
        "actor": actor_of(event),
        "keyid": event.get("keyid"),
        "log_index": event.get("log_index"),
        "name": event.get("name"),
        "channel": event.get("channel"),
        "action": event.get("action"),
        "from": event.get("from_digest"),
        "to": event.get("to_digest"),
        "reason": event.get("reason"),
        "by": event.get("by"),
        "at": event.get("at"),
    }


def current_digest(client: RegistryClient, name: str, channel: str) -> str | None:
    """The digest ``name``'s ``channel`` points at now, or None when it has none."""
    for pointer in client.channels(name):
        if pointer.get("channel") == channel:
            digest = pointer.get("digest")
            return None if digest is None else str(digest)
    return None


def build_proposal(
    client: RegistryClient,
    parsed: ParsedManifest,
    channel: str,
    *,
    created_at: datetime | None = None,
) -> dict[str, Any]:
    """A governance proposal to move ``channel`` to the verified artifact ``parsed``.

    Holds the artifact's identity (from the verified manifest), what the channel
    holds now, where to download every byte, the attestations the registry
    accepted, the policy status, and what workers measured on the policy's dataset
    (the status answer's ``evaluation`` section as the registry sent it: dataset digest,
    metrics beside thresholds, drift; null where there is none); see the README.

    Raises:
        VerificationError: the status answer is about another digest or contradicts itself.
        NotFoundError, AuthError, TransportError, ServerError.
    """
    manifest = parsed.manifest
    digest = parsed.digests.blake3
    base = client.base_url.rstrip("/")
    status = client.status(digest, channel)
    blobs = dict.fromkeys(f"{base}/v1/blobs/blake3:{f.blake3}" for f in manifest.files)
    attestations = [
        {
            "predicate_type": a.get("predicate_type"),
            "keyid": a.get("keyid"),
            "envelope_sha256": a.get("envelope_sha256"),
            "log_index": a.get("log_index"),
        }
        for a in client.attestations(digest)
    ]
    when = created_at or datetime.now(UTC)
    return {
        "schema": PROPOSAL_SCHEMA,
        "artifact": {
            "name": manifest.name,
            "version": manifest.version,
            "kind": manifest.kind,
            "digest": str(digest),
            "sha256": str(parsed.digests.sha256),
            "size_bytes": manifest.total_size_bytes,
            "files": len(manifest.files),
        },
        "channel": channel,
        "current": current_digest(client, manifest.name, channel),
        "download": {"manifest": f"{base}/v1/artifacts/{digest}", "blobs": list(blobs)},
        "attestations": attestations,
        "policy": {
            "version": status.get("policy_version"),
            "promotable": status["promotable"],
            "requirements": status["requirements"],
        },
        "evaluation": status.get("evaluation"),
        "created_at": when.isoformat().replace("+00:00", "Z"),
    }


def channel_digest(client: RegistryClient, name: str, channel: str) -> Digest:
    """The blake3 manifest digest ``name``'s ``channel`` points at, as the registry says;
    pull it by that digest and check the manifest carries ``name``.

    Raises:
        NotFoundError: no such name or channel.
        VerificationError: the answer names no blake3 digest.
    """
    said = client.resolve_channel(name, channel).get("digest")
    try:
        digest = Digest.parse(str(said))
    except CoreError:
        digest = None
    if digest is None or digest.algorithm is not Algorithm.BLAKE3:
        raise VerificationError(f"{name}:{channel} resolved to {said!r}, not a blake3 digest")
    return digest
