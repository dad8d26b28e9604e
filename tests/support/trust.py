"""Signing the way publishers, workers and governors do: real keys, real envelopes."""

from __future__ import annotations

from typing import Any

from registry.core import intoto
from registry.core.digest import digest_bytes
from registry.core.dsse import Envelope, sign_envelope
from registry.core.keys import SigningKey


def statement_about(
    manifest_raw: bytes, name: str, version: str, predicate_type: str, predicate: dict[str, Any]
) -> intoto.Statement:
    return intoto.statement_for(
        name, version, digest_bytes(manifest_raw), predicate_type, predicate
    )


def signed(statement: intoto.Statement, key: SigningKey) -> Envelope:
    return sign_envelope(statement.to_payload(), key)


PUBLISH = {"publisher": "ci@veid"}
