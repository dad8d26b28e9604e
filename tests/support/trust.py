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


def reproducibility(
    keyid: str, outputs: list[str], profile: str = "cpu-tensorflow", **extra: Any
) -> dict[str, Any]:
    """A well-formed reproducibility/v1 predicate whose runs produced ``outputs``."""
    return {
        "profile": profile,
        "engine": {"name": "tensorflow", "version": "2.21.0"},
        "device": "cpu",
        "host": {"cpu": "test cpu", "os": "Linux", "python": "3.11.7", "libraries": {}},
        "determinism": {"op_determinism": True},
        "inputs": "blake3:" + "cd" * 32,
        "runs": [{"output": o, "seconds": 0.1} for o in outputs],
        "output": outputs[0],
        "agree": len(set(outputs)) == 1,
        "timings": {"total_seconds": 0.3},
        "worker": keyid,
        **extra,
    }
