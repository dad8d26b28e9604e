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
    Source,
)
from tests.support.content import manifest_bytes


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


# RFC 8032 section 7.1, TEST 1: the key the DSSE project's test vectors sign with.
RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")

EXAMPLE_MANIFEST = manifest_bytes(
    "veid/trust-score", "v20261122_093000", {"saved_model.pb": b"graph"}
)


def example_statement() -> intoto.Statement:
    """A publish/v1 statement (with a source) about ``EXAMPLE_MANIFEST``."""
    return intoto.statement_for(
        "veid/trust-score",
        "v20261122_093000",
        digest_bytes(EXAMPLE_MANIFEST),
        PublishPredicate("ci@veid", Source("git@x:veid", "abc123")),
    )
