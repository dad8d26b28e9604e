"""Attestation DTOs."""

from __future__ import annotations

from datetime import datetime

import msgspec


class Attestation(msgspec.Struct):
    envelope_sha256: str
    artifact: str  # blake3:<hex> of the manifest
    predicate_type: str
    keyid: str
    log_index: int
    created_at: datetime
    envelope: dict[str, object]  # the DSSE envelope as first posted
    statement_sha256: str | None  # what was signed (dsse.statement_sha256); None: a legacy replay


class AttestationPage(msgspec.Struct):
    attestations: list[Attestation]
