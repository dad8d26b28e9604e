"""Signing the way publishers, workers and governors do: real keys, real envelopes."""

from __future__ import annotations

from registry.core import intoto
from registry.core.digest import Digest, digest_bytes
from registry.core.dsse import Envelope, sign_envelope
from registry.core.keys import SigningKey
from registry.core.predicates import (
    Engine,
    Host,
    Predicate,
    PublishPredicate,
    ReproducibilityPredicate,
    Run,
)


def statement_about(
    manifest_raw: bytes, name: str, version: str, predicate: Predicate
) -> intoto.Statement:
    return intoto.statement_for(name, version, digest_bytes(manifest_raw), predicate)


def signed(statement: intoto.Statement, key: SigningKey) -> Envelope:
    return sign_envelope(statement.to_payload(), key)


PUBLISH = PublishPredicate("ci@veid")


def reproducibility(
    keyid: str,
    outputs: list[str],
    profile: str = "cpu-tensorflow",
    inputs: str = "blake3:" + "cd" * 32,
    job: str | None = None,
) -> ReproducibilityPredicate:
    """A well-formed reproducibility/v1 predicate whose runs produced ``outputs``."""
    runs = tuple(Run(Digest.parse(o), 0.1) for o in outputs)
    return ReproducibilityPredicate(
        profile=profile,
        engine=Engine("tensorflow", "2.21.0"),
        device="cpu",
        host=Host(cpu="test cpu", os="Linux", python="3.11.7", libraries={}),
        determinism={"op_determinism": True},
        inputs=Digest.parse(inputs),
        runs=runs,
        output=runs[0].output,
        agree=len(set(outputs)) == 1,
        timings={"total_seconds": 0.3},
        worker=keyid,
        job=job,
    )
