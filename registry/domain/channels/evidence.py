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
from registry.domain.artifacts.services import ArtifactService
from registry.domain.attestations.schemas import Attestation
from registry.domain.attestations.services import AttestationService, readable
from registry.domain.channels.verification import verdicts
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
        """The accepted statements whose key is still registered and unrevoked, in log
        order (a statement sits at its first acceptance: replays are not new rows; a
        replay stored before that rule, without a statement id, counts for nothing)."""
        usable: dict[str, bool] = {}  # one lookup per key, however many statements it made
        out = []
        for attestation in self._attestations.list(ref):
            if attestation.statement_sha256 is None:
                continue
            if attestation.keyid not in usable:
                key = self._keys.find(attestation.keyid)
                usable[attestation.keyid] = key is not None and key.revoked_at is None
            if usable[attestation.keyid]:
                out.append(attestation)
        return out

    def _metrics(
        self, ref: Digest, trusted: list[Attestation]
    ) -> tuple[dict[str, float] | None, dict[str, float]]:
        """(metrics of the latest trusted evaluation/v1, the manifest's metrics)."""
        evaluations = [a for a in trusted if a.predicate_type == intoto.EVALUATION]
        attested = _numbers(_predicate(evaluations[-1]).get("metrics")) if evaluations else None
        manifest = parse_manifest(self._artifacts.manifest(ref).raw).manifest
        return attested, _numbers(manifest.metrics)

    def facts(
        self,
        ref: Digest,
        channel: str,
        current: Digest | None,
        revoked_reason: str | None,
        refusals: Mapping[str, list[str]] | None = None,
    ) -> Facts:
        """What the policy is evaluated against; ``refusals``: per profile, the engines'
        refusals to run ``ref`` deterministically (failed jobs). Each statement is read
        once."""
        trusted = self._trusted(ref)
        attested, manifest_metrics = self._metrics(ref, trusted)
        current_metrics = None
        if current is not None:
            current_attested, current_manifest = self._metrics(current, self._trusted(current))
            current_metrics = current_attested if current_attested is not None else current_manifest
        reproducibility = verdicts(
            (
                (a.keyid, p)
                for a in trusted
                if a.predicate_type == intoto.REPRODUCIBILITY and (p := _predicate(a))
            ),
            refusals,
        )
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
            reproducibility=reproducibility,
            revoked_reason=revoked_reason,
        )
