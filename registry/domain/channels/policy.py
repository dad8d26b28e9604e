"""The policy in force: the parsed file, and the datasets its evaluations name, resolved.

Invariants:
- A dataset ref ``NAME@VERSION`` binds one digest forever (``ArtifactService``), so a
  ref once resolved stays resolved: it is remembered; a ref not yet resolved is looked
  up again each time it is needed (another replica may have pushed it).
- The version in force is the sha256 of the policy file when the policy names no
  dataset (as before datasets existed), else the sha256 of the canonical JSON
  ``{"datasets": {ref: digest | null}, "source": <file sha256>}``: pushing a dataset
  the policy names changes the version in force, and nothing else does.
- Every version in force is logged (``policy.changed`` with ``version``, ``source``
  and ``datasets``): at start when it differs from the last one logged, and in the
  push transaction of a dataset the policy names (under the log head's lock, so two
  replicas cannot log versions out of order).
- What a dataset can serve (``DatasetFacts``): a ``kind: dataset`` artifact, not
  revoked; its description's sample count.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

from sqlalchemy.orm import Session

from registry.core.canonical import canonical_bytes
from registry.core.digest import Digest
from registry.core.errors import CoreError
from registry.core.evaluation_rules import DatasetRef
from registry.core.manifest import ParsedManifest, parse_manifest
from registry.core.policy import DatasetFacts, Policy
from registry.domain.artifacts.services import ArtifactService
from registry.domain.log.services import TransparencyLog

POLICY_CHANGED = "policy.changed"


def version_of(policy: Policy, datasets: dict[str, str | None]) -> str:
    """The version in force for ``policy`` with its datasets resolved to ``datasets``."""
    if not datasets:
        return policy.version
    doc = {"datasets": datasets, "source": policy.version}
    return hashlib.sha256(canonical_bytes(doc)).hexdigest()


class PolicyInForce:
    """``policy`` with its dataset refs resolved through ``artifacts``, logged in ``log``."""

    def __init__(self, policy: Policy, artifacts: ArtifactService, log: TransparencyLog) -> None:
        self.policy = policy
        self._artifacts = artifacts
        self._log = log
        self._refs = {str(r): r for r in policy.datasets}
        self._bound: dict[str, str] = {}  # ref -> blake3 digest, once resolved (forever)
        self._lock = threading.Lock()

    def _resolve(self, ref: str, session: Session | None = None) -> str | None:
        with self._lock:
            known = self._bound.get(ref)
        if known is not None:
            return known
        dataset = self._refs[ref]
        found = self._artifacts.find_version(dataset.name, dataset.version, session)
        if found is None:
            return None
        if session is None:  # committed: remembered (a push transaction may yet roll back)
            with self._lock:
                self._bound[ref] = found.digest
        return found.digest

    def datasets(self, session: Session | None = None) -> dict[str, str | None]:
        """Each dataset ref the policy names -> its digest (None: not in this registry)."""
        return {ref: self._resolve(ref, session) for ref in self._refs}

    @property
    def version(self) -> str:
        """The version in force now (see the module's invariants)."""
        return version_of(self.policy, self.datasets())

    def dataset(self, ref: DatasetRef, pinned: str | None = None) -> DatasetFacts:
        """What the registry holds for ``ref`` (a ref the policy names); with ``pinned``
        (the policy's ``dataset_digest``), only that artifact may serve as ``ref``."""
        digest = self._resolve(str(ref)) if str(ref) in self._refs else None
        if digest is None:
            return DatasetFacts(ref)
        if pinned is not None and digest != pinned:
            return DatasetFacts(
                ref,
                digest,
                problem=f"{ref} is {digest}, but the policy pins dataset_digest = {pinned}: "
                "someone pushed another dataset under that name; name the pinned one",
            )
        artifact = self._artifacts.describe(Digest.parse(digest))
        if artifact.kind != "dataset":
            return DatasetFacts(
                ref,
                digest,
                problem=f"{ref} is a {artifact.kind} artifact, not a dataset: the policy must "
                "name an artifact pushed with `reliquary push --kind dataset`",
            )
        if artifact.revoked_reason is not None:
            return DatasetFacts(
                ref,
                digest,
                problem=f"{ref} was revoked ({artifact.revoked_reason}): name another dataset "
                "version in the policy",
            )
        try:
            described = parse_manifest(self._artifacts.manifest(Digest.parse(digest)).raw)
        except CoreError:  # stored manifests were valid when pushed
            return DatasetFacts(ref, digest, problem=f"{ref}'s manifest no longer parses")
        description = described.manifest.dataset
        samples = None if description is None else description.samples
        return DatasetFacts(ref, digest, samples=samples)

    def _entry(self, datasets: dict[str, str | None]) -> dict[str, Any]:
        return {
            "version": version_of(self.policy, datasets),
            "source": self.policy.version,
            "datasets": datasets,
        }

    def _log_if_new(self, session: Session, datasets: dict[str, str | None]) -> int | None:
        """Append ``policy.changed`` unless the last one logged has this version (the
        caller holds the log head)."""
        fields = self._entry(datasets)
        last = self._log.last_of_kind(session, POLICY_CHANGED)
        if last is not None and last.document().get("version") == fields["version"]:
            return None
        return self._log.append(session, POLICY_CHANGED, fields)

    def record(self, session: Session) -> int | None:
        """Log the version in force in ``session`` (a write transaction) if it differs
        from the last one logged; the index of the new entry."""
        self._log.lock_head(session)
        return self._log_if_new(session, self.datasets(session))

    def on_push(self, session: Session, parsed: ParsedManifest) -> None:
        """A push hook: an artifact bound to a dataset ref the policy names changes the
        version in force; log it in the push transaction."""
        m = parsed.manifest
        ref = f"{m.name}@{m.version}"
        if ref not in self._refs:
            return
        self._log.lock_head(session)
        datasets = self.datasets(session)  # reads this transaction: the new row included
        datasets[ref] = str(parsed.digests.blake3)
        self._log_if_new(session, datasets)
