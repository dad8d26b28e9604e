"""Independent evaluation (ARCHITECTURE §13), over HTTP on both databases: datasets are
checked on push, the policy's dataset is resolved and logged with the policy version,
pushing a model queues evaluate jobs whose claim says what to measure, and only agreeing
worker measurements on the policy's dataset open the gate."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from registry.core.canonical import canonical_bytes
from registry.core.keys import SigningKey
from registry.core.predicates import EvaluationPredicate
from registry.core.roles import Role
from tests.conftest import Api, Deployment, api_with_policy
from tests.support.api import (
    attest,
    new_key,
    new_worker,
    nondeterministic_total,
    post_attestation,
    promote,
    put_manifest,
    status,
    unmet,
    upload_blobs,
)
from tests.support.content import NAME, digests, manifest_bytes
from tests.support.evaluation import (
    DATASET,
    EVALUATION_POLICY,
    GOOD,
    dataset_files,
    description,
    drift,
    measured,
    push_dataset,
    push_evaluable,
)
from tests.support.trust import reproducibility, signed, statement_about

P1, P2, P3 = ("blake3:" + h * 32 for h in ("a1", "a2", "a3"))
REF = "veid/golden@v3"


def jobs_of(api: Api, raw: bytes) -> list[dict[str, Any]]:
    r = api.client.get(f"/v1/artifacts/{digests(raw).blake3}/jobs", headers=api.auth())
    assert r.status_code == 200, r.text
    jobs: list[dict[str, Any]] = r.json()
    return jobs


def claim(api: Api, worker: dict[str, str]) -> dict[str, Any] | None:
    r = api.client.post(
        "/v1/jobs/claim", json={"profiles": ["cpu-tensorflow"], "worker": "w"}, headers=worker
    )
    assert r.status_code in (200, 204), r.text
    return None if r.status_code == 204 else dict(r.json())


def complete(
    api: Api,
    worker: dict[str, str],
    job: dict[str, Any],
    raw: bytes,
    version: str,
    key: SigningKey,
    predicate: EvaluationPredicate,
) -> Any:
    envelope = signed(statement_about(raw, NAME, version, predicate), key).to_json()
    return api.client.post(f"/v1/jobs/{job['id']}/complete", content=envelope, headers=worker)


def measure_by_jobs(
    api: Api,
    deployment: Deployment,
    raw: bytes,
    version: str,
    predictions: list[str],
    metrics: dict[str, float] = GOOD,
    **extra: Any,
) -> list[SigningKey]:
    """Each of ``predictions`` is one new worker's measurement completing a claimed
    evaluate job of ``raw``; the workers' keys."""
    keys = []
    for digest in predictions:
        worker, key = new_worker(deployment), new_key(api, "worker")
        job = claim(api, worker)
        assert job is not None and job["task"] == "evaluate", job
        task = job["evaluation"]
        predicate = measured(
            key.public.keyid, task["dataset"], digest, metrics, job=job["id"], **extra
        )
        done = complete(api, worker, job, raw, version, key, predicate)
        assert done.status_code == 200, done.text
        keys.append(key)
    return keys


def policy_entries(deployment: Deployment) -> list[dict[str, Any]]:
    return [
        json.loads(e.entry)
        for e in deployment.services().log.entries(0, 1000)
        if e.kind == "policy.changed"
    ]


def requirement(body: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in body["requirements"] if r["requirement"] == name)


def test_a_dataset_description_that_does_not_hold_is_refused_on_push(api: Api) -> None:
    files = dataset_files()
    upload_blobs(api, files)
    for changes, files_named, why in (
        (
            {"labels": {"y": {"path": "missing.npy", "dtype": "float32", "shape": [8]}}},
            files,
            "'missing.npy' is not a file of this artifact",
        ),
        (
            {"labels": {"trust_score": {"path": "labels.npy", "dtype": "float32", "shape": [7]}}},
            files,
            "shape [7] must start with the sample count 8",
        ),
        (
            {"features": {"features": {"path": "features.npy", "dtype": "int8", "shape": [8, 3]}}},
            files,
            "holds 24 bytes of values",
        ),
        ({"labels": {}}, files, "at least one labels file"),
    ):
        raw = manifest_bytes(
            DATASET, "v1", files_named, kind="dataset", dataset=description(**changes)
        )
        r = put_manifest(api, raw)
        assert r.status_code == 400, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert why in r.text, r.text
    listed = api.client.get("/v1/artifacts", params={"name": DATASET}, headers=api.auth())
    assert listed.json()["artifacts"] == []  # nothing was stored
    undescribed = manifest_bytes(DATASET, "v1", files, kind="dataset")
    assert "needs a 'dataset' description" in put_manifest(api, undescribed).text
    digest = push_dataset(api, "v1")
    jobs = api.client.get(f"/v1/artifacts/{digest}/jobs", headers=api.auth())
    assert jobs.json() == []  # a dataset is data: nothing to reproduce or evaluate


def test_the_policy_version_names_its_dataset_once_pushed(
    deployment: Deployment, tmp_path: Path
) -> None:
    source = hashlib.sha256(EVALUATION_POLICY).hexdigest()

    def version(datasets: dict[str, str | None]) -> str:
        doc = {"datasets": datasets, "source": source}
        return hashlib.sha256(canonical_bytes(doc)).hexdigest()

    api = api_with_policy(deployment, tmp_path, EVALUATION_POLICY)
    try:
        [first] = policy_entries(deployment)
        assert first == {
            **first,
            "version": version({REF: None}),
            "source": source,
            "datasets": {REF: None},
        }
        raw = push_evaluable(api, "v1")
        before = status(api, raw)
        assert before["policy_version"] == version({REF: None})
        why = requirement(before, "evaluation.dataset")["reason"]
        assert "not in this registry" in why and "--kind dataset --name veid/golden" in why
        assert before["evaluation"]["digest"] is None and before["evaluation"]["state"] == "queued"
        digest = push_dataset(api)
        entries = policy_entries(deployment)
        assert [e["datasets"] for e in entries] == [{REF: None}, {REF: digest}]
        assert entries[1]["version"] == version({REF: digest})
        assert status(api, raw)["policy_version"] == version({REF: digest})
    finally:
        api.client.__exit__(None, None, None)
    with deployment.client(RELIQUARY_POLICY_FILE=str(tmp_path / "policy.toml")):
        pass  # started again with the dataset pushed: nothing new to log
    assert len(policy_entries(deployment)) == 2


def test_two_agreeing_workers_measure_it_and_the_next_model_is_compared(
    deployment: Deployment, tmp_path: Path
) -> None:
    api = api_with_policy(deployment, tmp_path, EVALUATION_POLICY)
    try:
        dataset = push_dataset(api)
        v1 = push_evaluable(api, "v1")
        jobs = jobs_of(api, v1)
        assert [(j["task"], j["channel"], j["state"]) for j in jobs] == [
            ("evaluate", "production", "queued")
        ] * 2
        assert unmet(status(api, v1)) >= {"evaluation.workers", "evaluation.r2"}
        assert promote(api, v1).status_code == 409

        worker, key = new_worker(deployment), new_key(api, "worker")
        job = claim(api, worker)
        assert job is not None
        assert job["evaluation"] == {
            "dataset": dataset,
            "dataset_ref": REF,
            "min_samples": 8,
            "thresholds": {"mae": "<=8", "mean_bias": "-2..2", "r2": ">=0.85"},
            "baseline": None,
            "baseline_predictions": None,
            "tolerance": 1.0,
        }
        wrong = measured(key.public.keyid, dataset, P1, job=job["id"], channel="staging")
        refused = complete(api, worker, job, v1, "v1", key, wrong)
        assert refused.status_code == 422 and "channel 'production'" in refused.json()["detail"]
        replay = reproducibility(key.public.keyid, [P1, P1], job=job["id"])
        refused = complete(api, worker, job, v1, "v1", key, replay)  # type: ignore[arg-type]
        assert refused.status_code in (400, 422)
        good = measured(key.public.keyid, dataset, P1, job=job["id"])
        assert complete(api, worker, job, v1, "v1", key, good).status_code == 200
        measure_by_jobs(api, deployment, v1, "v1", [P1])

        body = status(api, v1)
        assert body["promotable"] is True, unmet(body)
        evaluation = body["evaluation"]
        assert (evaluation["state"], evaluation["samples"], evaluation["digest"]) == (
            "measured",
            8,
            dataset,
        )
        assert evaluation["metrics"]["r2"] == {"value": 0.91, "rule": ">=0.85", "met": True}
        assert [w["predictions"] for w in evaluation["workers"]] == [P1, P1]
        assert promote(api, v1).status_code == 200

        v2 = push_evaluable(api, "v2")
        job = claim(api, new_worker(deployment))
        assert job is not None and job["artifact"] == str(digests(v2).blake3)
        assert job["evaluation"]["baseline"] == str(digests(v1).blake3)
        assert job["evaluation"]["baseline_predictions"] == P1
    finally:
        api.client.__exit__(None, None, None)


def test_a_missed_threshold_names_it(deployment: Deployment, tmp_path: Path) -> None:
    api = api_with_policy(deployment, tmp_path, EVALUATION_POLICY)
    try:
        push_dataset(api)
        v1 = push_evaluable(api, "v1")
        measure_by_jobs(api, deployment, v1, "v1", [P1, P1], {**GOOD, "mean_bias": 2.5})
        refused = promote(api, v1)
        assert refused.status_code == 409
        assert unmet(refused.json()) == {"evaluation.mean_bias"}
        assert "-2 <= mean_bias <= 2: 2.5" in refused.json()["detail"]
        metrics = status(api, v1)["evaluation"]["metrics"]
        assert metrics["mean_bias"] == {"value": 2.5, "rule": "-2..2", "met": False}
    finally:
        api.client.__exit__(None, None, None)


def test_workers_that_disagree_on_the_predictions_are_a_finding(
    deployment: Deployment, tmp_path: Path
) -> None:
    api = api_with_policy(deployment, tmp_path, EVALUATION_POLICY)
    try:
        push_dataset(api)
        v1 = push_evaluable(api, "v1")
        measure_by_jobs(api, deployment, v1, "v1", [P1, P2])
        body = status(api, v1)
        assert body["promotable"] is False and "evaluation.workers" in unmet(body)
        assert body["evaluation"]["state"] == "disagree"
        assert P1 in body["evaluation"]["finding"] and P2 in body["evaluation"]["finding"]
        assert nondeterministic_total(api) == 1
        history = api.client.get(
            "/v1/channels/history", params={"name": NAME}, headers=api.auth(Role.READER)
        ).json()["events"]
        assert [e["action"] for e in history] == ["nondeterministic"]
        assert "evaluation on" in history[0]["reason"]
        assert promote(api, v1).status_code == 409
    finally:
        api.client.__exit__(None, None, None)


def test_drift_past_the_bound_is_refused_with_the_figures(
    deployment: Deployment, tmp_path: Path
) -> None:
    api = api_with_policy(deployment, tmp_path, EVALUATION_POLICY)
    try:
        push_dataset(api)
        v1 = push_evaluable(api, "v1")
        measure_by_jobs(api, deployment, v1, "v1", [P1, P1])
        assert promote(api, v1).status_code == 200
        v2 = push_evaluable(api, "v2")
        moved = drift(v1, P1, moved=0.5, mean=1.5, metrics=GOOD)
        measure_by_jobs(api, deployment, v2, "v2", [P2, P2], drift=moved)
        refused = promote(api, v2)
        assert refused.status_code == 409
        assert unmet(refused.json()) == {"evaluation.drift"}
        assert "50.0% of samples moved by more than 1" in refused.json()["detail"]
        shown = status(api, v2)["evaluation"]["drift"]
        assert shown == {
            "against": str(digests(v1).blake3),
            "mean_abs_diff": 1.5,
            "max_abs_diff": 4.5,
            "moved": 0.5,
            "tolerance": 1.0,
            "bounds": {"tolerance": 1.0, "max_moved": 0.25, "max_mean_abs_diff": 2.0},
            "met": False,
        }

        v3 = push_evaluable(api, "v3")
        calm = drift(v1, P1, moved=0.1, mean=0.5, metrics=GOOD)
        measure_by_jobs(api, deployment, v3, "v3", [P3, P3], drift=calm)
        body = status(api, v3)
        assert body["promotable"] is True, unmet(body)
        assert body["evaluation"]["changes"]["r2"] == 0.0
    finally:
        api.client.__exit__(None, None, None)


def test_only_workers_measurements_on_the_policys_dataset_count(
    deployment: Deployment, tmp_path: Path
) -> None:
    """A publisher-signed evaluation, a worker's second statement and a replay of an
    earlier one change nothing."""
    api = api_with_policy(deployment, tmp_path, EVALUATION_POLICY)
    try:
        dataset = push_dataset(api)
        v1 = push_evaluable(api, "v1")
        publisher = new_key(api, "publisher")
        attest(api, v1, "v1", publisher, EvaluationPredicate(metrics=GOOD))
        attest(api, v1, "v1", publisher, measured(publisher.public.keyid, dataset, P1))
        one = new_key(api, "worker")
        first = signed(
            statement_about(v1, NAME, "v1", measured(one.public.keyid, dataset, P1)), one
        )
        assert post_attestation(api, v1, first.to_json(), Role.WORKER).status_code == 201
        again = measured(one.public.keyid, dataset, P1, channel=None)
        attest(api, v1, "v1", one, again, Role.WORKER)  # the same key: counts once
        assert post_attestation(api, v1, first.to_json(), Role.WORKER).status_code == 200
        body = status(api, v1)
        assert "1 of 2 cpu-tensorflow workers" in requirement(body, "evaluation.workers")["reason"]
        assert [w["keyid"] for w in body["evaluation"]["workers"]] == [one.public.keyid]
        two = new_key(api, "worker")
        other = measured(two.public.keyid, "blake3:" + "ee" * 32, P1)  # another dataset
        attest(api, v1, "v1", two, other, Role.WORKER)
        assert status(api, v1)["promotable"] is False
        attest(api, v1, "v1", two, measured(two.public.keyid, dataset, P1), Role.WORKER)
        assert status(api, v1)["promotable"] is True
        forged = measured(one.public.keyid, dataset, P1)  # signed by another worker's key
        envelope = signed(statement_about(v1, NAME, "v1", forged), two).to_json()
        r = post_attestation(api, v1, envelope, Role.WORKER)
        assert r.status_code == 422 and "its own measurement" in r.json()["detail"]
    finally:
        api.client.__exit__(None, None, None)


def test_a_dataset_below_the_minimum_sample_count_is_unmet(
    deployment: Deployment, tmp_path: Path
) -> None:
    api = api_with_policy(deployment, tmp_path, EVALUATION_POLICY)
    try:
        push_dataset(api, samples=4)
        v1 = push_evaluable(api, "v1")
        why = requirement(status(api, v1), "evaluation.dataset")
        assert why["met"] is False and "4 samples, below the policy's minimum of 8" in why["reason"]
    finally:
        api.client.__exit__(None, None, None)


def test_an_evaluate_job_without_the_dataset_fails_with_what_to_do(
    deployment: Deployment, tmp_path: Path
) -> None:
    api = api_with_policy(deployment, tmp_path, EVALUATION_POLICY)
    try:
        v1 = push_evaluable(api, "v1")
        assert claim(api, new_worker(deployment)) is None  # both failed, none leased
        failed = status(api, v1)["evaluation"]
        assert failed["state"] == "failed" and len(failed["failed"]) == 2
        assert "is not in this registry: push it" in failed["failed"][0]
        assert "--evaluate --channel production" in failed["failed"][0]
        push_dataset(api)
        verify = f"/v1/artifacts/{digests(v1).blake3}/verify"
        for body, why in (
            ({"profile": "cpu-tensorflow", "task": "evaluate"}, "names the channel"),
            (
                {"profile": "cpu-vllm", "task": "evaluate", "channel": "production"},
                "not 'cpu-vllm'",
            ),
            (
                {"profile": "cpu-tensorflow", "task": "evaluate", "channel": "staging"},
                "no evaluation",
            ),
        ):
            r = api.client.post(verify, json=body, headers=api.auth())
            assert r.status_code == 400 and why in r.json()["detail"], r.text
        r = api.client.post(
            verify,
            json={
                "profile": "cpu-tensorflow",
                "task": "evaluate",
                "channel": "production",
                "count": 2,
            },
            headers=api.auth(),
        )
        assert r.status_code == 201 and [j["task"] for j in r.json()] == ["evaluate"] * 2
        measure_by_jobs(api, deployment, v1, "v1", [P1, P1])
        assert status(api, v1)["promotable"] is True
    finally:
        api.client.__exit__(None, None, None)


def test_a_model_measured_before_the_channel_moved_is_measured_again_by_the_same_workers(
    deployment: Deployment, tmp_path: Path
) -> None:
    """v2 was measured while the channel held nothing; once v1 is promoted, drift from
    v1 is unmet until the same two workers measure v2 again against v1 (a new baseline:
    their earlier measurements do not block it, and a second measurement against the same
    baseline is refused)."""
    api = api_with_policy(deployment, tmp_path, EVALUATION_POLICY)
    try:
        dataset = push_dataset(api)
        v1, v2 = push_evaluable(api, "v1"), push_evaluable(api, "v2")
        workers = [(new_worker(deployment), new_key(api, "worker")) for _ in range(2)]
        for raw, version, predictions in ((v1, "v1", P1), (v2, "v2", P2)):
            for worker, key in workers:
                job = claim(api, worker)
                assert job is not None and job["artifact"] == str(digests(raw).blake3), job
                done = complete(
                    api,
                    worker,
                    job,
                    raw,
                    version,
                    key,
                    measured(key.public.keyid, dataset, predictions, job=job["id"]),
                )
                assert done.status_code == 200, done.text
        assert promote(api, v1).status_code == 200
        before = status(api, v2)
        assert unmet(before) == {"evaluation.drift"}
        assert (
            "0 of 2 workers compared with " + str(digests(v1).blake3)
            in (requirement(before, "evaluation.drift")["reason"])
        )

        asked = api.client.post(
            f"/v1/artifacts/{digests(v2).blake3}/verify",
            json={
                "profile": "cpu-tensorflow",
                "count": 2,
                "task": "evaluate",
                "channel": "production",
            },
            headers=api.auth(),
        )
        assert asked.status_code in (200, 201), asked.text
        calm = drift(v1, P1, moved=0.0, mean=0.0, metrics=GOOD)
        for worker, key in workers:
            job = claim(api, worker)
            assert job is not None and job["evaluation"]["baseline"] == str(digests(v1).blake3)
            again = measured(key.public.keyid, dataset, P2, job=job["id"], drift=calm)
            done = complete(api, worker, job, v2, "v2", key, again)
            assert done.status_code == 200, done.text
        assert claim(api, workers[0][0]) is None
        more = api.client.post(
            f"/v1/artifacts/{digests(v2).blake3}/verify",
            json={"profile": "cpu-tensorflow", "task": "evaluate", "channel": "production"},
            headers=api.auth(),
        )
        assert more.status_code == 400
        assert "2 workers already measured" in more.json()["detail"]
        after = status(api, v2)
        assert after["promotable"] is True, unmet(after)
        assert promote(api, v2).status_code == 200
    finally:
        api.client.__exit__(None, None, None)


def test_a_pinned_dataset_digest_refuses_any_other_dataset_under_that_name(
    deployment: Deployment, tmp_path: Path
) -> None:
    pinned = EVALUATION_POLICY.replace(
        b'dataset = "veid/golden@v3"',
        b'dataset = "veid/golden@v3"\ndataset_digest = "blake3:' + b"ab" * 32 + b'"',
    )
    api = api_with_policy(deployment, tmp_path, pinned)
    try:
        pushed = push_dataset(api)
        v1 = push_evaluable(api, "v1")
        reason = requirement(status(api, v1), "evaluation.dataset")["reason"]
        assert f"veid/golden@v3 is {pushed}, but the policy pins dataset_digest" in reason
        job = claim(api, new_worker(deployment))
        assert job is None  # nothing is leased to measure on a dataset the policy does not pin
        failed = [j for j in jobs_of(api, v1) if j["state"] == "failed"]
        assert failed and "pins dataset_digest" in failed[0]["last_error"]
    finally:
        api.client.__exit__(None, None, None)
