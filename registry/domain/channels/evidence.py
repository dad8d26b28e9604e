"""Gathering the verified facts a channel policy is evaluated against.

Only attestations the registry accepted count, and only while their signing key
stays registered and unrevoked *as the log records it* (``KeyLedger``): revoking a
key withdraws its evidence (fail-closed). Each stored statement must be what its
``attestation.accepted`` log entry accepted, at that index (``AttestationService.
proven``; otherwise the whole evaluation is refused, since dropping a row could let a
superseded statement count), and each counted one is verified again from its stored
envelope: signed by that logged key, of a type its logged role may make, about this
artifact. A row edited, moved or inserted in the database counts for nothing.

A model's runtime image (``runtime.image``) is looked up through the artifacts
context's ``ImageLookup`` (this context never imports ``oci``). Its image artifacts are
the artifacts ``NAME@TAG`` for each tag of the pinned manifest, counted only when the
manifest stored under that version is of kind ``image`` and wraps that manifest
(``runtime.manifest``); their publisher signatures count as above.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cachetools import LRUCache

from registry.core import intoto
from registry.core.digest import Digest
from registry.core.dsse import Envelope, statement_sha256, verify_envelope
from registry.core.errors import CoreError
from registry.core.evaluation import EvaluationVerdict, Measurement, judge
from registry.core.evaluation_rules import Evaluation
from registry.core.images import ImagePin
from registry.core.manifest import Manifest, parse_manifest
from registry.core.policy import DatasetFacts, Facts, ImageArtifact, RuntimeImage
from registry.core.predicates import (
    SIGNING_ROLES,
    ApprovalPredicate,
    EvaluationPredicate,
    Predicate,
    PublishPredicate,
    ReproducibilityPredicate,
)
from registry.core.roles import Role
from registry.domain.artifacts.schemas import StoredManifest
from registry.domain.artifacts.services import ArtifactService
from registry.domain.attestations.services import AttestationService, Proven
from registry.domain.channels.findings import verdicts
from registry.domain.keys.ledger import LoggedKey
from registry.domain.keys.services import KeyService
from registry.errors import ArtifactNotFoundError

log = logging.getLogger("reliquary.evidence")

ChannelHolder = Callable[[str], Digest | None]
"""The digest a channel of image repository NAME holds now (None: it has none), proven
against the log by the caller (``ChannelService``)."""


@dataclass(frozen=True, slots=True)
class Counted:
    """A statement that counts: verified again, by a key the log trusts."""

    keyid: str
    predicate: Predicate
    role: str = ""  # the signing key's role, as the log records it


@dataclass(frozen=True, slots=True)
class Measuring:
    """What a channel's measured evaluation (``source = "worker"``) is judged on: the
    policy's rules, its dataset as this registry holds it, and why evaluate jobs failed
    for good (``JobService.evaluation_refusals``)."""

    rules: Evaluation
    dataset: DatasetFacts
    refusals: tuple[str, ...] = ()


def _verified(attestation: Proven, key: LoggedKey, stored: StoredManifest) -> Predicate | None:
    """The predicate of a stored statement if it still proves itself, else None."""
    try:
        envelope = Envelope.from_json(attestation.envelope)
        statement = intoto.Statement.from_payload(envelope.payload)
        verify_envelope(envelope, {key.keyid: key.public})
    except CoreError as exc:
        log.warning("not counting attestation %s: %s", attestation.log_index, exc)
        return None
    if (
        statement.predicate_type != attestation.predicate_type
        or not statement.names(stored.digest.hex, stored.sha256.hex)
        or statement_sha256(envelope.payload_type, envelope.payload, key.keyid)
        != attestation.statement_sha256
    ):
        log.warning("not counting attestation %s: its row disagrees with it", attestation.log_index)
        return None
    return statement.predicate


def _numbers(raw: object) -> dict[str, float]:
    """The finite numbers of a manifest's ``metrics`` (other values are not metrics)."""
    if not isinstance(raw, Mapping):
        return {}
    return {
        k: float(v)
        for k, v in raw.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


class Evidence:
    def __init__(
        self, artifacts: ArtifactService, attestations: AttestationService, keys: KeyService
    ) -> None:
        self._artifacts = artifacts
        self._attestations = attestations
        self._keys = keys
        # (envelope sha256, keyid, artifact) -> its verified predicate (None: does not count)
        self._checked: LRUCache[tuple[str, str, str], Predicate | None] = LRUCache(maxsize=100_000)
        self._lock = threading.Lock()

    def _counted(self, ref: Digest) -> list[Counted]:
        """The accepted statements that count, in log order (a statement sits at its
        first acceptance: replays are not new rows; a replay stored before that rule,
        without a statement id, counts for nothing)."""
        stored = self._artifacts.manifest(ref)
        keys = self._keys.logged()
        out = []
        for attestation in self._attestations.proven(ref):
            key = keys.get(attestation.keyid)
            if (
                attestation.statement_sha256 is None
                or key is None
                or key.role not in SIGNING_ROLES.get(attestation.predicate_type, ())
            ):
                continue
            # envelope bytes the log proved, a logged key: the verdict never changes
            memo = (attestation.envelope_sha256, key.keyid, stored.digest.hex)
            with self._lock:
                seen = memo in self._checked
                hit = self._checked.get(memo)
            if not seen:
                hit = _verified(attestation, key, stored)
                with self._lock:
                    self._checked[memo] = hit
            if hit is not None:
                out.append(Counted(key.keyid, hit, str(key.role)))
        return out

    def _manifest(self, ref: Digest) -> Manifest:
        return parse_manifest(self._artifacts.manifest(ref).raw).manifest

    @staticmethod
    def _metrics(
        manifest: Manifest, counted: list[Counted]
    ) -> tuple[dict[str, float] | None, dict[str, float]]:
        """(metrics of the latest counted evaluation/v1 the trainer's side made, the
        manifest's metrics). A worker's measured statement is never the trainer's word: it
        counts only where workers measure (``_judged``)."""
        evaluations = [
            c.predicate
            for c in counted
            if isinstance(c.predicate, EvaluationPredicate) and not c.predicate.measured
        ]
        attested = (
            {k: float(v) for k, v in evaluations[-1].metrics.items()} if evaluations else None
        )
        return attested, _numbers(manifest.metrics)

    @staticmethod
    def _publishers(counted: list[Counted]) -> frozenset[str]:
        return frozenset(c.keyid for c in counted if isinstance(c.predicate, PublishPredicate))

    @staticmethod
    def _judged(
        counted: list[Counted], profile: str, dataset: str, refusals: tuple[str, ...] = ()
    ) -> EvaluationVerdict:
        """The verdict over the measured ``evaluation/v1`` statements of worker keys of
        ``profile`` on ``dataset`` (first per key and baseline, in log order)."""
        return judge(
            profile,
            dataset,
            (
                (c.keyid, c.predicate)
                for c in counted
                if c.role == Role.WORKER and isinstance(c.predicate, EvaluationPredicate)
            ),
            refusals,
        )

    def agreed_measurement(self, ref: Digest, profile: str, dataset: str) -> Measurement | None:
        """What the workers of ``profile`` agreed ``ref`` predicts on ``dataset`` (the
        first counted measurement, when no two disagree), or None."""
        return self._judged(self._counted(ref), profile, dataset).agreed

    def measured_by(
        self, ref: Digest, profile: str, dataset: str, baseline: str | None
    ) -> frozenset[str]:
        """The worker keys whose counted measurement of ``ref`` on ``dataset`` compared
        with ``baseline`` (None: with nothing)."""
        verdict = self._judged(self._counted(ref), profile, dataset)
        return frozenset(m.keyid for m in verdict.measurements if m.baseline == baseline)

    def _image_artifact(self, pin: ImagePin, tag: str) -> ImageArtifact | None:
        """The artifact ``NAME@TAG`` if it is an image artifact of ``pin``, else None (no
        such artifact yet, or a version that is not this image)."""
        try:
            artifact = self._artifacts.resolve(pin.name, tag)
        except ArtifactNotFoundError:
            return None
        digest = Digest.parse(artifact.digest)
        manifest = self._manifest(digest)
        wrapped = None if manifest.runtime is None else manifest.runtime.get("manifest")
        if manifest.kind != "image" or wrapped != str(pin.digest):
            log.warning("%s@%s is not an image artifact of %s: not counted", pin.name, tag, pin)
            return None
        return ImageArtifact(
            tag=tag,
            digest=artifact.digest,
            publisher_keys=self._publishers(self._counted(digest)),
            revoked=artifact.revoked_at is not None,
        )

    def _runtime_image(self, pin: ImagePin, holder: ChannelHolder | None) -> RuntimeImage:
        """What this registry verifies about the image ``pin`` names."""
        images = self._artifacts.images
        if not images.holds_image(pin.name, pin.digest.hex):
            return RuntimeImage(pin)
        found = (self._image_artifact(pin, tag) for tag in images.tags_of(pin.name, pin.digest.hex))
        holds = None if holder is None else holder(pin.name)
        return RuntimeImage(
            pin,
            present=True,
            artifacts=tuple(a for a in found if a is not None),
            channel_holds=None if holds is None else str(holds),
        )

    def facts(
        self,
        ref: Digest,
        channel: str,
        current: Digest | None,
        revoked_reason: str | None,
        refusals: Mapping[str, list[str]] | None = None,
        *,
        runtime_image: bool = False,
        image_channel: ChannelHolder | None = None,
        measuring: Measuring | None = None,
    ) -> Facts:
        """What the policy is evaluated against; ``refusals``: per profile, the engines'
        refusals to run ``ref`` deterministically (failed jobs). Each statement is read
        once. ``runtime_image``: gather the facts of the image the manifest pins (the
        policy asks for them), and with ``image_channel`` what the named channel of the
        image's repository holds. ``measuring``: the channel's evaluation is measured by
        workers: judge their statements on its dataset, and take the channel holder's
        metrics from its own agreed measurement there."""
        counted = self._counted(ref)
        manifest = self._manifest(ref)
        attested, manifest_metrics = self._metrics(manifest, counted)
        current_metrics = None
        verdict = None
        digest = None if measuring is None else measuring.dataset.digest
        profile = "" if measuring is None else str(measuring.rules.profile)
        if measuring is not None and digest is not None:
            verdict = self._judged(counted, profile, digest, measuring.refusals)
        if current is not None and measuring is not None:
            held = None if digest is None else self.agreed_measurement(current, profile, digest)
            current_metrics = None if held is None else dict(held.metrics)
        elif current is not None:
            current_attested, current_manifest = self._metrics(
                self._manifest(current), self._counted(current)
            )
            current_metrics = current_attested if current_attested is not None else current_manifest
        pin = manifest.runtime_image if runtime_image else None
        reproducibility = verdicts(
            (
                (c.keyid, c.predicate)
                for c in counted
                if isinstance(c.predicate, ReproducibilityPredicate)
            ),
            refusals,
        )
        return Facts(
            publisher_keys=self._publishers(counted),
            attested_metrics=attested,
            manifest_metrics=manifest_metrics,
            approval_keys=frozenset(
                c.keyid
                for c in counted
                if isinstance(c.predicate, ApprovalPredicate) and c.predicate.channel == channel
            ),
            current_metrics=current_metrics,
            reproducibility=reproducibility,
            revoked_reason=revoked_reason,
            kind=manifest.kind,
            runtime_image=None if pin is None else self._runtime_image(pin, image_channel),
            subject=str(ref),
            current=None if current is None else str(current),
            dataset=None if measuring is None else measuring.dataset,
            evaluation=verdict,
        )
