"""Gathering the verified facts a channel policy is evaluated against.

Only attestations the registry accepted count, and only while their signing
key stays unrevoked: revoking a key withdraws its evidence (fail-closed).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

from registry.core import intoto
from registry.core.digest import Digest
from registry.core.manifest import parse_manifest
from registry.core.policy import Facts
from registry.core.reproducibility import ProfileVerdict
from registry.domain.artifacts.services import ArtifactService
from registry.domain.attestations.schemas import Attestation
from registry.domain.attestations.services import AttestationService
from registry.domain.channels.verification import readable, verdicts
from registry.domain.keys.services import KeyService


def _predicate(attestation: Attestation) -> dict[str, object]:
    return readable(json.dumps(attestation.envelope).encode()) or {}


def _numbers(raw: object) -> dict[str, float]:
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

    def _trusted(self, ref: Digest) -> list[Attestation]:
        out = []
        for attestation in self._attestations.list(ref):
            key = self._keys.find(attestation.keyid)
            if key is not None and key.revoked_at is None:
                out.append(attestation)
        return out

    def metrics(self, ref: Digest) -> tuple[dict[str, float] | None, dict[str, float]]:
        """(metrics of the latest trusted evaluation/v1, the manifest's metrics)."""
        evaluations = [a for a in self._trusted(ref) if a.predicate_type == intoto.EVALUATION]
        attested = _numbers(_predicate(evaluations[-1]).get("metrics")) if evaluations else None
        manifest = parse_manifest(self._artifacts.manifest(ref).raw).manifest
        return attested, _numbers(manifest.metrics)

    def reproducibility(
        self, ref: Digest, refusals: Mapping[str, list[str]] | None = None
    ) -> dict[str, ProfileVerdict]:
        """A verdict per profile over the trusted reproducibility/v1 attestations and the
        engines' refusals to run the artifact deterministically (failed jobs)."""
        return verdicts(
            (
                (a.keyid, p)
                for a in self._trusted(ref)
                if a.predicate_type == intoto.REPRODUCIBILITY and (p := _predicate(a))
            ),
            refusals,
        )

    def facts(
        self,
        ref: Digest,
        channel: str,
        current: Digest | None,
        revoked_reason: str | None,
        refusals: Mapping[str, list[str]] | None = None,
    ) -> Facts:
        trusted = self._trusted(ref)
        attested, manifest_metrics = self.metrics(ref)
        current_metrics = None
        if current is not None:
            current_attested, current_manifest = self.metrics(current)
            current_metrics = current_attested if current_attested is not None else current_manifest
        return Facts(
            publisher_keys=frozenset(
                a.keyid for a in trusted if a.predicate_type == intoto.PUBLISH
            ),
            attested_metrics=attested,
            manifest_metrics=manifest_metrics,
            approval_keys=frozenset(
                a.keyid
                for a in trusted
                if a.predicate_type == intoto.APPROVAL and _predicate(a).get("channel") == channel
            ),
            current_metrics=current_metrics,
            reproducibility=self.reproducibility(ref, refusals),
            revoked_reason=revoked_reason,
        )
