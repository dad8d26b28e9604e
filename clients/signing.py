"""Signing keys on disk, and signing statements about artifacts (DSSE over in-toto v1).

Invariants:
- A private key file is created, never overwritten, as unencrypted PKCS8 PEM with
  mode 0600 from its first byte; its public half is written beside it as
  ``<name>.pub.pem`` (``k.pem`` -> ``k.pub.pem``).
- A statement is made about exact manifest bytes the caller pushed or fetched and
  verified: its subject carries both digests of those bytes (``intoto.statement_for``).
- ``attest`` returns only once the registry's answer names the envelope we sent.
"""

from __future__ import annotations

import errno
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from clients.client import RegistryClient
from clients.errors import InvalidRequestError
from registry.core import intoto
from registry.core.digest import digest_bytes
from registry.core.dsse import sign_envelope
from registry.core.errors import CoreError
from registry.core.keys import PublicKey, SigningKey
from registry.core.manifest import ParsedManifest, parse_manifest
from registry.core.predicates import (
    ApprovalPredicate,
    EvaluationPredicate,
    Predicate,
    PublishPredicate,
    Source,
    predicate_from_json,
)


def public_key_path(private_path: Path) -> Path:
    """Where the public half of ``private_path`` goes: ``k.pem`` -> ``k.pub.pem``."""
    stem = private_path.name.removesuffix(".pem")
    return private_path.with_name(f"{stem}.pub.pem")


def generate_key_files(out: Path) -> tuple[SigningKey, Path]:
    """Create a new Ed25519 key at ``out`` (0600) and its public PEM; (key, public path).

    Raises:
        FileExistsError: ``out`` or its public path exists (nothing is overwritten).
    """
    key = SigningKey.generate()
    public_path = public_key_path(out)
    if public_path.exists():
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(public_path))
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.to_pem())
    public_path.write_bytes(key.public.to_pem())
    return key, public_path


def load_signing_key(path: Path) -> SigningKey:
    """The Ed25519 private key in PEM file ``path``.

    Raises:
        InvalidRequestError: not an (unencrypted) PKCS8 Ed25519 private key.
        OSError: the file cannot be read.
    """
    try:
        return SigningKey.from_pem(path.read_bytes())
    except CoreError as exc:
        raise InvalidRequestError(f"{path}: {exc}") from exc


def load_public_key(path: Path) -> PublicKey:
    """The Ed25519 public key in PEM file ``path``.

    Raises:
        InvalidRequestError: not a SubjectPublicKeyInfo Ed25519 key (a private key
            file is refused too: give its ``.pub.pem``).
    """
    try:
        return PublicKey.from_pem(path.read_bytes())
    except CoreError as exc:
        raise InvalidRequestError(
            f"{path}: {exc}; give the public key file (`keys generate` writes <name>.pub.pem)"
        ) from exc


def publish_predicate(
    publisher: str,
    source_repository: str | None = None,
    source_commit: str | None = None,
    training_run: str | None = None,
) -> PublishPredicate:
    """A ``publish/v1`` predicate.

    Raises:
        InvalidRequestError: only half of the source given.
        InvalidStatementError: a field is empty.
    """
    if source_repository is None or source_commit is None:
        if (source_repository is None) != (source_commit is None):
            raise InvalidRequestError(
                "give both --source-repository and --source-commit, or neither"
            )
        source = None
    else:
        source = Source(source_repository, source_commit)
    return PublishPredicate(publisher, source, training_run)


def evaluation_predicate(metrics: Iterable[str]) -> EvaluationPredicate:
    """An ``evaluation/v1`` predicate from ``name=value`` pairs (``r2=0.91``).

    Raises:
        InvalidRequestError: a pair is not ``name=<finite number>``.
        InvalidStatementError: no pairs.
    """
    parsed: dict[str, float | int] = {}
    for pair in metrics:
        name, sep, text = pair.partition("=")
        try:
            value: float | int = int(text) if text.lstrip("-").isdigit() else float(text)
        except ValueError:
            value = math.nan
        if not sep or not name or not math.isfinite(value):
            raise InvalidRequestError(f"metric {pair!r} is not name=<finite number>")
        parsed[name] = value
    return EvaluationPredicate(metrics=parsed)


def approval_predicate(channel: str, comment: str | None = None) -> ApprovalPredicate:
    """An ``approval/v1`` predicate for ``channel``.

    Raises InvalidStatementError: ``channel`` is not one name segment."""
    return ApprovalPredicate(channel, comment)


def load_predicate_file(path: Path, predicate_type: str) -> Predicate:
    """The predicate of type ``predicate_type`` in ``path`` (a JSON object).

    Raises:
        InvalidRequestError: not a JSON object.
        InvalidStatementError: not of that type's shape.
    """
    try:
        predicate = json.loads(path.read_bytes())
    except ValueError as exc:
        raise InvalidRequestError(f"{path} is not JSON: {exc}") from exc
    if not isinstance(predicate, dict):
        raise InvalidRequestError(f"{path} must hold a JSON object (the predicate)")
    return predicate_from_json(predicate_type, predicate)


@dataclass(frozen=True, slots=True)
class SignedAttestation:
    """What the registry accepted: the envelope's identity and its log index."""

    artifact: str
    subject: str
    predicate_type: str
    keyid: str
    envelope_sha256: str
    log_index: int
    created: bool


def attest(
    client: RegistryClient,
    manifest: ParsedManifest,
    predicate: Predicate,
    key: SigningKey,
) -> SignedAttestation:
    """Sign a statement about ``manifest`` with ``key`` and post it to the registry.

    Signing is deterministic (Ed25519, canonical JSON), so signing the same
    statement again posts the same envelope and gets the same log index back.

    Raises:
        InvalidRequestError: the manifest's name or version cannot name a subject.
        RefusedError: the registry refused the key (unregistered, revoked, wrong role).
        VerificationError: the registry's answer names another envelope.
    """
    name, version = manifest.manifest.name, manifest.manifest.version
    digests = digest_bytes(manifest.raw)
    try:
        statement = intoto.statement_for(name, version, digests, predicate)
    except CoreError as exc:
        raise InvalidRequestError(f"cannot make this statement: {exc}") from exc
    envelope = sign_envelope(statement.to_payload(), key)
    answer, created = client.post_attestation(digests.blake3, envelope.to_json())
    return SignedAttestation(
        artifact=str(digests.blake3),
        subject=f"{name}@{version}",
        predicate_type=predicate.TYPE,
        keyid=key.public.keyid,
        envelope_sha256=envelope.digest_sha256,
        log_index=int(answer["log_index"]),
        created=created,
    )


@dataclass(frozen=True, slots=True)
class PublishSigner:
    """``push --sign-key``: the key and ``publish/v1`` predicate, checked before any upload."""

    key: SigningKey
    predicate: PublishPredicate

    @classmethod
    def prepare(
        cls,
        key_path: Path,
        publisher: str | None = None,
        source_repository: str | None = None,
        source_commit: str | None = None,
        training_run: str | None = None,
    ) -> PublishSigner:
        """Load the key and build the predicate (``publisher`` defaults to the keyid).

        Raises:
            InvalidRequestError: a bad key file or predicate. OSError: unreadable file.
        """
        key = load_signing_key(key_path)
        try:
            predicate = publish_predicate(
                publisher or key.public.keyid, source_repository, source_commit, training_run
            )
        except CoreError as exc:
            raise InvalidRequestError(str(exc)) from exc
        return cls(key, predicate)

    def sign(self, client: RegistryClient, manifest_raw: bytes) -> SignedAttestation:
        """Sign and post the publish statement about the manifest just pushed (see ``attest``)."""
        try:
            manifest = parse_manifest(manifest_raw)
        except CoreError as exc:
            raise InvalidRequestError(f"cannot sign an invalid manifest: {exc}") from exc
        return attest(client, manifest, self.predicate, self.key)
