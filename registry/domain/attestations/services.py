"""Accepting signed statements about artifacts (DSSE envelopes carrying in-toto v1).

An envelope is stored only after every check passed, in this order:
1. it parses as a DSSE envelope of type ``application/vnd.in-toto+json``;
2. its payload is an in-toto Statement v1 with a known predicate type whose
   predicate is well formed;
3. a subject carries both digests of the artifact it is posted to (a statement
   about another artifact cannot be replayed here);
4. exactly one signature comes from a registered, unrevoked key whose role may make
   this predicate, and it verifies over the PAE of the payload (signatures by other
   keys ride along, ignored); a reproducibility/v1 statement is signed by the worker
   key it names.
A statement is what one key signed (``dsse.statement_sha256``: payload type, payload,
keyid), not the envelope's bytes: the same statement posted again, in any encoding or
beside other signatures, is a no-op that answers the first acceptance and its log
index, so a replay can never make an old statement newer than one that superseded it.
Acceptance appends ``attestation.accepted`` to the log in the same transaction, and
runs each ``AcceptHook`` in it (a hook may append its own entries, or refuse).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from registry.core import intoto
from registry.core.digest import Digest
from registry.core.dsse import PAYLOAD_TYPE, Envelope, statement_sha256, verify_envelope
from registry.core.errors import CoreError, InvalidSignatureError
from registry.core.keys import PublicKey
from registry.core.manifest import parse_manifest
from registry.core.predicates import (
    EVALUATION,
    REPRODUCIBILITY,
    SIGNING_ROLES,
    EvaluationPredicate,
    ReproducibilityPredicate,
)
from registry.core.profiles import runs
from registry.core.roles import Role
from registry.db.models import AttestationRow
from registry.domain.artifacts.schemas import StoredManifest
from registry.domain.artifacts.services import ArtifactService
from registry.domain.attestations.repositories import AttestationRepository
from registry.domain.attestations.schemas import Attestation
from registry.domain.keys.services import KeyService
from registry.domain.log.services import TransparencyLog
from registry.errors import AttestationRejectedError, LogIntegrityError

log = logging.getLogger("reliquary.attestations")


@dataclass(frozen=True, slots=True)
class Accepted:
    """An attestation being accepted, as hooks see it inside the accepting transaction."""

    stored: StoredManifest
    row: AttestationRow
    statement: intoto.Statement
    earlier: tuple[tuple[str, ReproducibilityPredicate], ...]
    """For a reproducibility statement, (keyid, predicate) of the artifact's
    reproducibility attestations stored before it that still parse (read and parsed
    once, in this transaction, for every hook that compares); empty for other types."""
    earlier_measured: tuple[tuple[str, EvaluationPredicate], ...] = ()
    """For a measured evaluation/v1 statement by a worker key, (keyid, predicate) of the
    artifact's measured evaluation statements by worker keys stored before it, in log
    order; empty otherwise."""
    by_worker: bool = False  # the signing key is a worker key


@dataclass(frozen=True, slots=True)
class Proven:
    """A stored statement its log entry proves was accepted (``AttestationService.proven``)."""

    log_index: int
    keyid: str
    predicate_type: str
    envelope: bytes
    envelope_sha256: str  # of ``envelope``, as its log entry names it
    statement_sha256: str | None


AcceptHook = Callable[[Session, Accepted], None]
"""Called in the accepting transaction, after the row is added."""


def _predicate_of(envelope_json: bytes) -> object:
    try:
        statement = intoto.Statement.from_payload(Envelope.from_json(envelope_json).payload)
    except CoreError:
        log.warning("skipping a stored attestation that no longer parses")
        return None
    return statement.predicate


def reproducibility_of(envelope_json: bytes) -> ReproducibilityPredicate | None:
    """The reproducibility predicate of a stored envelope (verified when it was accepted),
    or None for a row stored under older rules that no longer parses (it counts for
    nothing: the gate stays closed through ``min_workers``) or of another type."""
    predicate = _predicate_of(envelope_json)
    return predicate if isinstance(predicate, ReproducibilityPredicate) else None


def measured_of(envelope_json: bytes) -> EvaluationPredicate | None:
    """The measured evaluation predicate of a stored envelope, else None (as
    ``reproducibility_of``)."""
    predicate = _predicate_of(envelope_json)
    measured = isinstance(predicate, EvaluationPredicate) and predicate.measured
    return predicate if measured and isinstance(predicate, EvaluationPredicate) else None


def _check_reproducibility(stored: StoredManifest, predicate: ReproducibilityPredicate) -> None:
    """A reproducibility statement is about this artifact's own engine and inputs."""
    manifest = parse_manifest(stored.raw).manifest
    engine = (manifest.runtime or {}).get("engine")
    profile = predicate.profile
    if not runs(profile, engine if isinstance(engine, str) else None):
        raise AttestationRejectedError(
            f"profile {profile!r} does not run this artifact's engine {engine!r}"
        )
    expected = None if manifest.reference is None else manifest.reference.inputs
    if str(predicate.inputs) != expected:
        raise AttestationRejectedError(
            f"the runs used reference inputs {predicate.inputs}, but "
            f"{stored.name}@{stored.version} names {expected or 'none'}"
        )


def _dto(row: AttestationRow) -> Attestation:
    return Attestation(
        envelope_sha256=row.envelope_sha256,
        artifact=f"blake3:{row.artifact_digest}",
        predicate_type=row.predicate_type,
        keyid=row.keyid,
        log_index=row.log_index,
        created_at=row.created_at,
        envelope=json.loads(row.envelope),
        statement_sha256=row.statement_sha256,
    )


class AttestationService:
    def __init__(
        self,
        artifacts: ArtifactService,
        keys: KeyService,
        writes: sessionmaker[Session],
        reads: sessionmaker[Session],
        log: TransparencyLog,
        hooks: Sequence[AcceptHook] = (),
    ) -> None:
        self._artifacts = artifacts
        self._keys = keys
        self._writes = writes
        self._reads = reads
        self._log = log
        self._hooks = tuple(hooks)

    def post(
        self, ref: Digest, raw: bytes, token_id: str | None, also: AcceptHook | None = None
    ) -> tuple[Attestation, bool]:
        """Verify and store an envelope about artifact ``ref``; (attestation, created).

        ``also`` runs in the accepting transaction (after the hooks), so what the caller
        records with it commits together with the attestation or not at all; it does not
        run when the envelope was stored before.

        Raises:
            ArtifactNotFoundError; InvalidEnvelopeError, InvalidStatementError (400);
            AttestationRejectedError (422): wrong subject, no acceptable key, bad signature.
        """
        stored = self._artifacts.manifest(ref)
        envelope = Envelope.from_json(raw)  # 1
        if envelope.payload_type != PAYLOAD_TYPE:
            raise AttestationRejectedError(
                f"payloadType must be {PAYLOAD_TYPE!r}, not {envelope.payload_type!r}"
            )
        statement = intoto.Statement.from_payload(envelope.payload)  # 2 (predicate checked)
        if not statement.names(stored.digest.hex, stored.sha256.hex):  # 3
            named = ", ".join(f"{s.name} blake3:{s.blake3}" for s in statement.subjects)
            raise AttestationRejectedError(
                f"the statement is about {named}, not this artifact ({stored.digest}); "
                "sign a statement whose subject carries both digests of this manifest",
                artifact=str(stored.digest),
            )
        if isinstance(statement.predicate, ReproducibilityPredicate):
            _check_reproducibility(stored, statement.predicate)
        envelope_sha256 = hashlib.sha256(raw).hexdigest()
        statements: dict[str, str] = {}  # verified keyid -> the statement it signed
        try:
            with self._writes.begin() as session:  # one transaction: checks and writes
                repo = AttestationRepository(session)
                found = repo.get(envelope_sha256)
                if found is not None:  # the same envelope again: answer the first
                    return _dto(found), False
                # hold the log head before reading keys: a revocation (logged, so it takes
                # the head too) commits wholly before this check or after this acceptance
                self._log.lock_head(session)
                keyids = self._verify(session, envelope, statement.predicate_type)  # 4
                statements = {
                    k: statement_sha256(envelope.payload_type, envelope.payload, k) for k in keyids
                }
                found = repo.of_statements(list(statements.values()))
                if found is not None:  # a statement accepted before, re-encoded: the first
                    return _dto(found), False
                if len(keyids) > 1:  # one signer per statement: else a signature could be
                    # stripped later and the rest replayed as a statement never recorded
                    raise AttestationRejectedError(
                        f"the envelope carries valid signatures by {len(keyids)} keys that "
                        f"may make this statement ({', '.join(k[:16] + '…' for k in keyids)}); "
                        "post one envelope per signer: each key's statement counts on its own"
                    )
                (keyid,) = keyids
                predicate = statement.predicate
                if isinstance(predicate, ReproducibilityPredicate) and predicate.worker != keyid:
                    raise AttestationRejectedError(
                        f"the statement names worker {predicate.worker[:64]} but is signed by "
                        f"{keyid}; a worker attests only its own runs"
                    )
                index = self._log.append(
                    session,
                    "attestation.accepted",
                    {
                        "artifact": str(stored.digest),
                        "predicate_type": statement.predicate_type,
                        "keyid": keyid,
                        "envelope_sha256": envelope_sha256,
                        "statement_sha256": statements[keyid],
                    },
                )
                row = AttestationRow(
                    envelope_sha256=envelope_sha256,
                    artifact_digest=stored.digest.hex,
                    predicate_type=statement.predicate_type,
                    keyid=keyid,
                    envelope=raw,
                    log_index=index,
                    created_at=datetime.now(UTC),
                    token_id=token_id,
                    statement_sha256=statements[keyid],
                )
                earlier = (
                    tuple(
                        (other.keyid, p)
                        for other in repo.of_artifact(stored.digest.hex, REPRODUCIBILITY)
                        if other.statement_sha256 is not None
                        and (p := reproducibility_of(other.envelope)) is not None
                    )
                    if isinstance(predicate, ReproducibilityPredicate)
                    else ()
                )
                by_worker = self._is_worker(session, keyid)
                measured = (
                    self._earlier_measured(session, repo, stored)
                    if by_worker
                    and isinstance(predicate, EvaluationPredicate)
                    and predicate.measured
                    else ()
                )
                repo.add(row)
                accepted = Accepted(stored, row, statement, earlier, measured, by_worker)
                for hook in self._hooks:
                    hook(session, accepted)
                if also is not None:
                    also(session, accepted)
        except IntegrityError:  # the same envelope or statement, posted concurrently
            existing = self._find(envelope_sha256, list(statements.values()))
            if existing is None:
                raise
            return existing, False
        return _dto(row), True

    def _is_worker(self, session: Session, keyid: str) -> bool:
        key = self._keys.find_in(session, keyid)
        return key is not None and key.role == Role.WORKER.value

    def _earlier_measured(
        self, session: Session, repo: AttestationRepository, stored: StoredManifest
    ) -> tuple[tuple[str, EvaluationPredicate], ...]:
        """The artifact's measured evaluation statements by worker keys, in log order."""
        out = []
        for other in repo.of_artifact(stored.digest.hex, EVALUATION):
            if other.statement_sha256 is None or not self._is_worker(session, other.keyid):
                continue
            predicate = measured_of(other.envelope)
            if predicate is not None:
                out.append((other.keyid, predicate))
        return tuple(out)

    def _verify(self, session: Session, envelope: Envelope, predicate_type: str) -> list[str]:
        """The keyids (sorted) of registered, unrevoked, allowed keys whose signatures
        verify; at least one."""
        allowed = SIGNING_ROLES[predicate_type]
        trusted: dict[str, PublicKey] = {}
        refused: list[str] = []
        for signature in envelope.signatures:
            key = self._keys.find_in(session, signature.keyid)
            if key is None:
                refused.append(f"{signature.keyid[:16]}… is not registered")
            elif key.revoked_at is not None:
                refused.append(f"{key.keyid[:16]}… was revoked at {key.revoked_at.isoformat()}")
            elif key.role not in allowed:
                refused.append(
                    f"{key.keyid[:16]}… is a {key.role} key; {predicate_type} needs "
                    + " or ".join(sorted(r.value for r in allowed))
                )
            else:
                trusted[key.keyid] = PublicKey.from_pem(key.public_key.encode())
        if not trusted:
            raise AttestationRejectedError(
                "no signature is from a key that may make this statement: " + "; ".join(refused),
                refused=refused,
            )
        try:
            verified = verify_envelope(envelope, trusted)
        except InvalidSignatureError as exc:
            raise AttestationRejectedError(f"signature check failed: {exc}") from exc
        return sorted(verified.keyids)

    def _find(self, envelope_sha256: str, statements: list[str]) -> Attestation | None:
        with self._reads() as session:
            repo = AttestationRepository(session)
            row = repo.get(envelope_sha256) or repo.of_statements(statements)
            return None if row is None else _dto(row)

    def proven(self, ref: Digest) -> list[Proven]:
        """The statements stored about ``ref``, in log order, each proven to be what its
        ``attestation.accepted`` log entry accepted: same index, artifact, key, type,
        envelope bytes (sha256) and statement. What policy counts comes from here.

        Raises:
            ArtifactNotFoundError; LogIntegrityError: a row the log does not prove (edited,
                moved to another index, or inserted): refused, since skipping it could
                make a superseded statement count again.
        """
        stored = self._artifacts.manifest(ref)
        with self._reads() as session:
            rows = AttestationRepository(session).of_artifact(stored.digest.hex, None)
            logged = self._log.bound_at(session, [r.log_index for r in rows])
        out = []
        for row in rows:
            entry = logged.get(row.log_index)
            doc = entry.document() if entry is not None else {}
            envelope_sha256 = hashlib.sha256(row.envelope).hexdigest()
            expected = {
                "kind": "attestation.accepted",
                "artifact": str(stored.digest),
                "keyid": row.keyid,
                "predicate_type": row.predicate_type,
                "envelope_sha256": envelope_sha256,
            }
            if "statement_sha256" in doc:  # logged since revision 0007
                expected["statement_sha256"] = row.statement_sha256 or ""
            wrong = sorted(k for k, v in expected.items() if doc.get(k) != v)
            if wrong or envelope_sha256 != row.envelope_sha256:
                raise LogIntegrityError(
                    f"the attestation stored at log index {row.log_index} for {stored.digest} "
                    f"is not what that log entry accepted ({', '.join(wrong) or 'envelope'} "
                    "differ): the database was edited. Run `reliquary-server fsck` and restore "
                    "a good backup",
                    artifact=str(stored.digest),
                    log_index=row.log_index,
                )
            out.append(
                Proven(
                    row.log_index,
                    row.keyid,
                    row.predicate_type,
                    row.envelope,
                    envelope_sha256,
                    row.statement_sha256,
                )
            )
        return out

    def list(self, ref: Digest, predicate_type: str | None = None) -> list[Attestation]:
        """Raises ArtifactNotFoundError."""
        stored = self._artifacts.manifest(ref)
        with self._reads() as session:
            rows = AttestationRepository(session).of_artifact(stored.digest.hex, predicate_type)
            return [_dto(r) for r in rows]
