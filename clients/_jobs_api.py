"""The verification half of ``RegistryClient``: the job lease protocol workers speak,
and verification requests and job listings for everyone else.

Invariants:
- ``claim`` is a POST that may lease a job: it is sent again only when nothing
  reached the server (``Retry.CONNECT_ONLY``); a lost answer costs one lease that
  expires, never two workers on one job.
- Heartbeat, complete and fail act on a lease the caller holds; the server decides
  (409 ``RefusedError`` once the lease is gone). Completing posts the signed
  envelope; the registry checks it like any attestation.
- A job answer must name the job asked about; anything else is a ``VerificationError``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from clients._answers import json_list, json_object
from clients._http import HttpSession, Retry
from clients.errors import VerificationError
from registry.core.digest import Algorithm, Digest
from registry.core.errors import CoreError

JSON = "application/json"


JOB_ID = re.compile(r"[0-9a-f]{32}")


def _job(
    answer: dict[str, Any], job_id: str | None = None, profiles: list[str] | None = None
) -> dict[str, Any]:
    """``answer`` once it is a job we can act on: its id is 32 lowercase hex (it names a
    directory on the worker), the one asked about, for a profile asked for, about a
    blake3 artifact digest."""
    found = answer.get("id")
    if not isinstance(found, str) or not JOB_ID.fullmatch(found):
        raise VerificationError(f"the registry answered with a malformed job id {found!r}")
    if job_id is not None and found != job_id:
        raise VerificationError(f"asked about job {job_id!r} but the registry answered {found!r}")
    if profiles is not None and answer.get("profile") not in profiles:
        raise VerificationError(
            f"asked for a job of {profiles} but got one of {answer.get('profile')!r}"
        )
    try:
        artifact = Digest.parse(str(answer.get("artifact")))
    except CoreError as exc:
        raise VerificationError(f"job {found}: artifact is not a digest: {exc}") from exc
    if artifact.algorithm is not Algorithm.BLAKE3:
        raise VerificationError(f"job {found}: artifact must be a blake3 digest")
    return answer


class JobsApi:
    """Mixed into ``RegistryClient``; every method raises the ``clients.errors`` classes."""

    _http: HttpSession

    def _post(self, path: str, body: dict[str, Any] | bytes | None, retry: Retry) -> Any:
        content = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        return self._http.request(
            "POST", path, retry=retry, headers={"content-type": JSON}, body=content
        )

    def claim_job(
        self, profiles: list[str], worker: str, *, wait_seconds: float = 0.0
    ) -> dict[str, Any] | None:
        """Lease the oldest queued job of ``profiles``; None when there is none. Worker role.

        ``wait_seconds`` (at most 30, and below the client's timeout) long-polls: the
        registry holds the request until a job is claimable or that time has passed.
        The job carries ``id``, ``artifact`` (blake3 digest), ``profile``, ``attempts``
        and ``lease_expires_at``.

        Raises:
            InvalidRequestError: also from registries older than ``wait_seconds``.
        """
        body: dict[str, Any] = {"profiles": profiles, "worker": worker}
        if wait_seconds:
            body["wait_seconds"] = wait_seconds
        response = self._post("/v1/jobs/claim", body, Retry.CONNECT_ONLY)
        if response.status_code == 204:
            return None
        return _job(json_object(response), profiles=profiles)

    def heartbeat_job(self, job_id: str) -> dict[str, Any]:
        """Extend the lease. Raises RefusedError (409) once the lease is not ours."""
        return _job(
            json_object(self._post(f"/v1/jobs/{job_id}/heartbeat", None, Retry.IDEMPOTENT)), job_id
        )

    def complete_job(self, job_id: str, envelope_json: bytes) -> dict[str, Any]:
        """Finish the job with our signed statement (checked like any attestation)."""
        response = self._post(f"/v1/jobs/{job_id}/complete", envelope_json, Retry.IDEMPOTENT)
        return _job(json_object(response), job_id)

    def fail_job(
        self, job_id: str, error: str, *, retry: bool, nondeterministic: bool = False
    ) -> dict[str, Any]:
        """Give the job up with a reason: queued again while attempts remain and ``retry``;
        ``nondeterministic`` (final) when the engine refused a nondeterministic op."""
        body = {"error": error, "retry": retry, "nondeterministic": nondeterministic}
        return _job(
            json_object(self._post(f"/v1/jobs/{job_id}/fail", body, Retry.IDEMPOTENT)), job_id
        )

    def request_verification(
        self,
        digest: Digest,
        profile: str,
        count: int = 1,
        *,
        task: str | None = None,
        channel: str | None = None,
    ) -> list[dict[str, Any]]:
        """Queue ``count`` more jobs of ``profile`` for ``digest`` (publisher or governor).
        ``task="evaluate"`` with ``channel``: measure it on that channel's policy dataset
        (``task`` and ``channel`` are sent only when given, so older registries still
        answer a plain request)."""
        body: dict[str, Any] = {"profile": profile, "count": count}
        if task is not None:
            body["task"] = task
        if channel is not None:
            body["channel"] = channel
        response = self._post(f"/v1/artifacts/{digest}/verify", body, Retry.CONNECT_ONLY)
        return json_list(response)

    def jobs(self, digest: Digest) -> list[dict[str, Any]]:
        """Every verification job of ``digest``, oldest first."""
        return json_list(
            self._http.request("GET", f"/v1/artifacts/{digest}/jobs", retry=Retry.IDEMPOTENT)
        )
