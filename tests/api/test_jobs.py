"""Verification jobs: leases that survive dead workers, distinct workers, bounded attempts."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import update

from registry.core.keys import SigningKey
from registry.core.predicates import REPRODUCIBILITY
from registry.core.roles import Role
from registry.db.models import JobRow
from tests.conftest import Api, Deployment, api_with_policy
from tests.support.api import (
    TWO_WORKERS_POLICY,
    inputs_of,
    log_size,
    new_key,
    new_worker,
    nondeterministic_total,
    push_reproducible,
    status,
)
from tests.support.clock import FakeClock
from tests.support.content import NAME, digests
from tests.support.trust import reproducibility, signed, statement_about

OUT = "blake3:" + "0f" * 32


def completion(raw: bytes, signer: SigningKey, job_id: str, output: str = OUT) -> bytes:
    """The signed reproducibility/v1 statement completing ``job_id`` of ``raw``'s v1."""
    predicate = reproducibility(
        signer.public.keyid, [output] * 3, inputs=inputs_of(raw), job=job_id
    )
    statement = statement_about(raw, NAME, "v1", predicate)
    return signed(statement, signer).to_json()


def claim(api: Api, headers: dict[str, str]) -> Any:
    return api.client.post(
        "/v1/jobs/claim", json={"profiles": ["cpu-tensorflow"], "worker": "w"}, headers=headers
    )


def test_push_enqueues_what_the_policy_requires_for_distinct_workers(
    deployment: Deployment, tmp_path: Path
) -> None:
    api = api_with_policy(deployment, tmp_path, TWO_WORKERS_POLICY)
    try:
        raw = push_reproducible(api, "v1")
        push_reproducible(api, "v2", engine=None)  # nothing can run it: no jobs
        jobs = api.client.get(
            f"/v1/artifacts/{digests(raw).blake3}/jobs", headers=api.auth()
        ).json()
        assert [(j["profile"], j["state"]) for j in jobs] == [("cpu-tensorflow", "queued")] * 2
        a, b, c = new_worker(deployment), new_worker(deployment), new_worker(deployment)
        first = claim(api, a)
        assert first.status_code == 200
        assert first.json()["state"] == "running" and first.json()["attempts"] == 1
        assert claim(api, a).status_code == 204  # the same worker never takes the second one
        second = claim(api, b)
        assert second.status_code == 200 and second.json()["id"] != first.json()["id"]
        assert claim(api, c).status_code == 204
        job = first.json()["id"]
        assert api.client.post(f"/v1/jobs/{job}/heartbeat", headers=b).status_code == 409
        beat = api.client.post(f"/v1/jobs/{job}/heartbeat", headers=a)
        assert beat.status_code == 200

        signer = new_key(api, "worker")
        envelope = completion(raw, signer, job)
        stolen = api.client.post(f"/v1/jobs/{job}/complete", content=envelope, headers=b)
        assert stolen.status_code == 409  # only the lease holder completes
        other_job = api.client.post(
            f"/v1/jobs/{job}/complete", content=completion(raw, signer, "0" * 32), headers=a
        )
        assert other_job.status_code == 422 and "this is job" in other_job.json()["detail"]
        done = api.client.post(f"/v1/jobs/{job}/complete", content=envelope, headers=a)
        assert done.status_code == 200, done.text
        assert done.json()["state"] == "attested"
        second_id = second.json()["id"]
        replayed = api.client.post(f"/v1/jobs/{second_id}/complete", content=envelope, headers=b)
        assert replayed.status_code == 422 and "accepted before" in replayed.json()["detail"]
        same_key = api.client.post(
            f"/v1/jobs/{second_id}/complete", content=completion(raw, signer, second_id), headers=b
        )
        assert same_key.status_code == 422 and "another worker key" in same_key.json()["detail"]
        listed = api.client.get(
            f"/v1/artifacts/{digests(raw).blake3}/attestations", headers=api.auth()
        ).json()["attestations"]
        assert [x["predicate_type"] for x in listed] == [REPRODUCIBILITY]
    finally:
        api.client.__exit__(None, None, None)


def test_a_job_claimed_through_one_server_process_completes_through_another(
    deployment: Deployment, tmp_path: Path
) -> None:
    """``serve --workers N``: the process that answers the claim need not answer the rest."""
    api, other = (api_with_policy(deployment, tmp_path, TWO_WORKERS_POLICY) for _ in range(2))
    try:
        raw = push_reproducible(api, "v1")
        a, b = new_worker(deployment), new_worker(deployment)
        job = claim(api, a).json()["id"]
        signer = new_key(api, "worker")
        envelope = completion(raw, signer, job)
        stolen = other.client.post(f"/v1/jobs/{job}/complete", content=envelope, headers=b)
        assert stolen.status_code == 409 and "not yours" in stolen.json()["detail"]
        missing = other.client.post(f"/v1/jobs/{'e' * 32}/complete", content=envelope, headers=a)
        assert missing.status_code == 404
        done = other.client.post(f"/v1/jobs/{job}/complete", content=envelope, headers=a)
        assert done.status_code == 200, done.text
        assert done.json()["state"] == "attested"
        for retry in (api, other):  # an answer lost on the way: sending it again is safe
            again = retry.client.post(f"/v1/jobs/{job}/complete", content=envelope, headers=a)
            assert again.status_code == 200 and again.json() == done.json()
        late = other.client.post(f"/v1/jobs/{job}/complete", content=envelope, headers=b)
        assert late.status_code == 409
    finally:
        api.client.__exit__(None, None, None)
        other.client.__exit__(None, None, None)


def test_a_lost_lease_is_refused_before_the_statement_is_read(
    deployment: Deployment, tmp_path: Path
) -> None:
    clock = FakeClock()
    api = api_with_policy(
        deployment, tmp_path, TWO_WORKERS_POLICY, clock.now, RELIQUARY_JOB_LEASE="1m"
    )
    try:
        push_reproducible(api, "v1")
        a = new_worker(deployment)
        expired = claim(api, a).json()["id"]
        claim(api, new_worker(deployment))  # a second job, its lease also expiring
        clock.advance(61)
        garbage = b"not even an envelope"
        late = api.client.post(f"/v1/jobs/{expired}/complete", content=garbage, headers=a)
        assert late.status_code == 409 and "not yours" in late.json()["detail"]
        b = new_worker(deployment)
        again = claim(api, b).json()
        assert again["attempts"] == 2  # an expired lease, taken again
        given_up = api.client.post(
            f"/v1/jobs/{again['id']}/fail", json={"error": "no GPU", "retry": True}, headers=b
        )
        assert given_up.status_code == 200
        after = api.client.post(f"/v1/jobs/{again['id']}/complete", content=garbage, headers=b)
        assert after.status_code == 409  # given back: no longer this worker's
    finally:
        api.client.__exit__(None, None, None)


def test_a_refused_completion_records_and_counts_nothing(
    deployment: Deployment, tmp_path: Path
) -> None:
    """The disagreeing output is a finding only if its statement is accepted: this one
    is refused (its key attested the artifact already), so the whole transaction goes."""
    api = api_with_policy(deployment, tmp_path, TWO_WORKERS_POLICY)
    try:
        raw = push_reproducible(api, "v1")
        a, b = new_worker(deployment), new_worker(deployment)
        first, second = claim(api, a).json()["id"], claim(api, b).json()["id"]
        signer = new_key(api, "worker")

        done = api.client.post(
            f"/v1/jobs/{first}/complete", content=completion(raw, signer, first), headers=a
        )
        assert done.status_code == 200
        size = log_size(api)
        other = "blake3:" + "1f" * 32
        refused = api.client.post(
            f"/v1/jobs/{second}/complete", content=completion(raw, signer, second, other), headers=b
        )
        assert refused.status_code == 422 and "another worker key" in refused.json()["detail"]
        assert nondeterministic_total(api) == 0
        assert log_size(api) == size
        history = api.client.get("/v1/channels/history", params={"name": NAME}, headers=api.auth())
        assert history.status_code == 200
        assert "nondeterministic" not in history.text
    finally:
        api.client.__exit__(None, None, None)


def test_a_dead_workers_job_is_redone_and_attempts_are_bounded(
    deployment: Deployment, tmp_path: Path
) -> None:
    api = api_with_policy(deployment, tmp_path, TWO_WORKERS_POLICY)
    try:
        raw = push_reproducible(api, "v1")
        extra = api.client.post(
            f"/v1/artifacts/{digests(raw).blake3}/verify",
            json={"profile": "cpu-tensorflow", "count": 1},
            headers=api.auth(Role.PUBLISHER),
        )
        assert extra.status_code == 201
        dead, alive = new_worker(deployment), new_worker(deployment)
        job = claim(api, dead).json()["id"]

        def expire() -> None:
            with deployment.engine.begin() as conn:
                conn.execute(
                    update(JobRow)
                    .where(JobRow.id == job)
                    .values(lease_expires_at=datetime.now(UTC) - timedelta(seconds=1))
                )

        expire()  # the worker died: its lease runs out
        assert api.client.post(f"/v1/jobs/{job}/heartbeat", headers=dead).status_code == 409
        for attempt in (2, 3):
            again = api.client.post(
                "/v1/jobs/claim",
                json={"profiles": ["cpu-tensorflow"]},
                headers=alive if attempt == 2 else new_worker(deployment),
            )
            taken = again.json()
            while taken["id"] != job:  # other queued jobs come first; let them go
                api.client.post(
                    f"/v1/jobs/{taken['id']}/fail",
                    json={"error": "skip", "retry": False},
                    headers=alive,
                )
                taken = api.client.post(
                    "/v1/jobs/claim", json={"profiles": ["cpu-tensorflow"]}, headers=alive
                ).json()
            assert taken["attempts"] == attempt
            expire()
        for _ in range(5):  # claiming sweeps the exhausted job into failed
            api.client.post(
                "/v1/jobs/claim",
                json={"profiles": ["cpu-tensorflow"]},
                headers=new_worker(deployment),
            )
        jobs = api.client.get(
            f"/v1/artifacts/{digests(raw).blake3}/jobs", headers=api.auth()
        ).json()
        final = next(j for j in jobs if j["id"] == job)
        assert final["state"] == "failed"
        assert "lease expired" in final["last_error"]
    finally:
        api.client.__exit__(None, None, None)


def test_a_long_error_still_fits_when_the_last_lease_expires(
    deployment: Deployment, tmp_path: Path
) -> None:
    """A worker's error is kept at its full 2048 characters; the note that the last
    lease expired must still fit beside it (PostgreSQL refused the longer text)."""
    clock = FakeClock()
    one = TWO_WORKERS_POLICY.replace(b"min_workers = 2", b"min_workers = 1")
    api = api_with_policy(
        deployment,
        tmp_path,
        one,
        clock.now,
        RELIQUARY_JOB_LEASE="1m",
        RELIQUARY_JOB_MAX_ATTEMPTS="2",
    )
    try:
        raw = push_reproducible(api, "v1")
        a, b = new_worker(deployment), new_worker(deployment)
        job = claim(api, a).json()["id"]
        failed = api.client.post(
            f"/v1/jobs/{job}/fail", json={"error": "x" * 3000, "retry": True}, headers=a
        )
        assert failed.status_code == 200 and len(failed.json()["last_error"]) == 2048
        assert claim(api, b).json()["attempts"] == 2
        clock.advance(61)  # the last lease runs out
        assert claim(api, new_worker(deployment)).status_code == 204
        [final] = api.client.get(
            f"/v1/artifacts/{digests(raw).blake3}/jobs", headers=api.auth()
        ).json()
        assert final["state"] == "failed"
        assert final["last_error"].endswith("[lease expired on the last attempt]")
        assert len(final["last_error"]) == 2048
    finally:
        api.client.__exit__(None, None, None)


def test_failures_retry_until_the_attempts_run_out(deployment: Deployment, tmp_path: Path) -> None:
    api = api_with_policy(deployment, tmp_path, TWO_WORKERS_POLICY)
    try:
        raw = push_reproducible(api, "v1")
        seen = []
        for attempt in (1, 2, 3):  # the oldest job comes back after each retryable failure
            h = new_worker(deployment)
            job = claim(api, h).json()
            seen.append(job["id"])
            assert job["attempts"] == attempt
            r = api.client.post(
                f"/v1/jobs/{job['id']}/fail",
                json={"error": f"engine crashed #{attempt}"},
                headers=h,
            )
            assert r.status_code == 200
            assert r.json()["state"] == ("queued" if attempt < 3 else "failed")
        assert len(set(seen)) == 1
        states = {
            j["id"]: j
            for j in api.client.get(
                f"/v1/artifacts/{digests(raw).blake3}/jobs", headers=api.auth()
            ).json()
        }
        assert states[seen[0]]["last_error"] == "engine crashed #3"
        assert [j["state"] for i, j in states.items() if i != seen[0]] == ["queued"]
        bad = api.client.post(
            f"/v1/artifacts/{digests(raw).blake3}/verify",
            json={"profile": "tpu-magic"},
            headers=api.auth(),
        )
        assert bad.status_code == 400
    finally:
        api.client.__exit__(None, None, None)


def test_eight_workers_claiming_at_once_never_share_a_job(
    deployment: Deployment, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_bytes(TWO_WORKERS_POLICY)
    services = deployment.services(RELIQUARY_POLICY_FILE=str(policy))
    api = api_with_policy(deployment, tmp_path, TWO_WORKERS_POLICY)
    try:
        raws = [push_reproducible(api, f"v{i}") for i in range(3)]  # 6 jobs
        for raw in raws:
            services.jobs.request(digests(raw).blake3, "cpu-tensorflow", 2)  # 12 jobs
        tokens = [services.tokens.issue(Role.WORKER).id for _ in range(8)]

        def work(token_id: str) -> list[str]:
            taken = []
            for _ in range(10):
                job = services.jobs.claim(["cpu-tensorflow"], token_id, token_id)
                if job is None:
                    break
                taken.append(job.id)
            return taken

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(work, tokens))
        claimed = [j for r in results for j in r]
        assert len(claimed) == len(set(claimed)) == 12
        for raw in raws:  # and each artifact's jobs went to distinct workers
            jobs = services.jobs.of_artifact(digests(raw).blake3)
            assert len(jobs) == 4 and all(j.state == "running" for j in jobs)
    finally:
        api.client.__exit__(None, None, None)


def test_a_refusal_is_what_the_worker_flags_and_reads_as_before(
    deployment: Deployment, tmp_path: Path
) -> None:
    """A failure is an engine's refusal (a finding) because the worker flagged it
    ``nondeterministic``, never because its words look like one; users read a refusal's
    error after ``nondeterministic: `` as they always have."""
    api = api_with_policy(deployment, tmp_path, TWO_WORKERS_POLICY)
    try:
        raw = push_reproducible(api, "v1")
        words = "nondeterministic: the worker's own words, no refusal"
        a, b = new_worker(deployment), new_worker(deployment)
        lookalike = api.client.post(
            f"/v1/jobs/{claim(api, a).json()['id']}/fail",
            json={"error": words, "retry": False},
            headers=a,
        ).json()
        assert (lookalike["state"], lookalike["last_error"]) == ("failed", words)
        [profile] = status(api, raw)["verification"]
        assert profile["finding"] is None and profile["failed"] == [words]

        refused = api.client.post(
            f"/v1/jobs/{claim(api, b).json()['id']}/fail",
            json={"error": "op RandomUniform needs a seed", "nondeterministic": True},
            headers=b,
        ).json()
        shown = "nondeterministic: op RandomUniform needs a seed"
        assert (refused["state"], refused["last_error"]) == ("failed", shown)
        [profile] = status(api, raw)["verification"]
        assert profile["finding"] == f"an engine refused to run it deterministically: {shown}"
        assert sorted(profile["failed"]) == sorted([words, shown])
        assert nondeterministic_total(api) == 1
    finally:
        api.client.__exit__(None, None, None)
