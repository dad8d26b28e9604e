"""The promotion gate on reproducibility: distinct agreeing workers, disagreement blocks for good."""

from __future__ import annotations

from pathlib import Path

from registry.core.keys import SigningKey
from registry.core.roles import Role
from tests.conftest import Api, Deployment, api_with_policy
from tests.support.api import (
    TWO_WORKERS_POLICY,
    attest,
    inputs_of,
    new_key,
    new_worker,
    nondeterministic_total,
    post_attestation,
    promote,
    push_reproducible,
    status,
)
from tests.support.content import NAME, digests
from tests.support.trust import reproducibility, signed, statement_about

A, B = "blake3:" + "0a" * 32, "blake3:" + "0b" * 32


def attest_runs(api: Api, raw: bytes, version: str, k: SigningKey, outputs: list[str]) -> None:
    """Worker ``k`` attests runs of ``raw``'s reference inputs that produced ``outputs``."""
    predicate = reproducibility(k.public.keyid, outputs, inputs=inputs_of(raw))
    attest(api, raw, version, k, predicate, Role.WORKER)


def test_two_agreeing_workers_make_it_promotable_and_the_status_says_so(
    deployment: Deployment, tmp_path: Path
) -> None:
    api = api_with_policy(deployment, tmp_path, TWO_WORKERS_POLICY)
    try:
        raw = push_reproducible(api, "v1")
        first = status(api, raw)
        assert first["promotable"] is False
        [profile] = first["verification"]
        assert (profile["profile"], profile["state"], profile["queued"]) == (
            "cpu-tensorflow",
            "queued",
            2,
        )
        one, two = new_key(api, "worker"), new_key(api, "worker")
        attest_runs(api, raw, "v1", one, [A, A, A])
        attest_runs(api, raw, "v1", one, [A, A, A][:2])  # the same worker again counts once
        assert status(api, raw)["promotable"] is False
        attest_runs(api, raw, "v1", two, [A, A, A])
        done = status(api, raw)
        assert done["promotable"] is True
        [profile] = done["verification"]
        assert profile["state"] == "attested" and profile["output"] == A
        assert profile["agreeing_workers"] == 2
        assert promote(api, raw).status_code == 200
        assert nondeterministic_total(api) == 0
    finally:
        api.client.__exit__(None, None, None)


def test_a_worker_attests_only_its_own_runs(deployment: Deployment, tmp_path: Path) -> None:
    api = api_with_policy(deployment, tmp_path, TWO_WORKERS_POLICY)
    try:
        raw = push_reproducible(api, "v1")
        one, two = new_key(api, "worker"), new_key(api, "worker")
        predicate = reproducibility(two.public.keyid, [A, A], inputs=inputs_of(raw))  # not its key
        envelope = signed(statement_about(raw, NAME, "v1", predicate), one)
        r = post_attestation(api, raw, envelope.to_json(), Role.WORKER)
        assert r.status_code == 422 and "only its own runs" in r.json()["detail"]
        assert r.headers["content-type"].startswith("application/problem+json")
        assert status(api, raw)["verification"][0]["workers"] == []
    finally:
        api.client.__exit__(None, None, None)


def test_statements_about_other_inputs_or_engines_are_refused(
    deployment: Deployment, tmp_path: Path
) -> None:
    api = api_with_policy(deployment, tmp_path, TWO_WORKERS_POLICY)
    try:
        raw = push_reproducible(api, "v1")
        k = new_key(api, "worker")
        for predicate, why in (
            (reproducibility(k.public.keyid, [A, A]), "reference inputs"),
            (
                reproducibility(k.public.keyid, [A, A], inputs=inputs_of(raw), profile="cpu-vllm"),
                "does not run",
            ),
        ):
            statement = statement_about(raw, NAME, "v1", predicate)
            r = post_attestation(api, raw, signed(statement, k).to_json(), Role.WORKER)
            assert r.status_code in (400, 422) and why in r.json()["detail"], r.text
        assert status(api, raw)["verification"][0]["workers"] == []
    finally:
        api.client.__exit__(None, None, None)


def test_an_engines_refusal_is_a_lasting_finding(deployment: Deployment, tmp_path: Path) -> None:
    """A job failed as nondeterministic (TensorFlow refused an unseeded op) blocks the
    artifact for good: later agreeing attestations do not make it promotable."""
    api = api_with_policy(deployment, tmp_path, TWO_WORKERS_POLICY)
    try:
        raw = push_reproducible(api, "v1")
        worker = new_worker(deployment)
        job = api.client.post(
            "/v1/jobs/claim", json={"profiles": ["cpu-tensorflow"]}, headers=worker
        ).json()
        failed = api.client.post(
            f"/v1/jobs/{job['id']}/fail",
            json={
                "error": "op RandomUniform needs a seed",
                "retry": True,
                "nondeterministic": True,
            },
            headers=worker,
        )
        assert failed.status_code == 200 and failed.json()["state"] == "failed"
        attest_runs(api, raw, "v1", new_key(api, "worker"), [A, A])
        attest_runs(api, raw, "v1", new_key(api, "worker"), [A, A])
        state = status(api, raw)
        [profile] = state["verification"]
        assert profile["state"] == "disagree" and "RandomUniform" in profile["finding"]
        assert state["promotable"] is False and promote(api, raw).status_code == 409
        assert nondeterministic_total(api) == 1
        events = api.client.get(
            "/v1/channels/history", params={"name": NAME}, headers=api.auth()
        ).json()["events"]
        assert [e["action"] for e in events] == ["nondeterministic"]
        assert "RandomUniform" in events[0]["reason"]
    finally:
        api.client.__exit__(None, None, None)


def test_any_disagreement_blocks_promotion_is_counted_and_shows_in_history(
    deployment: Deployment, tmp_path: Path
) -> None:
    api = api_with_policy(deployment, tmp_path, TWO_WORKERS_POLICY)
    try:
        across, within = push_reproducible(api, "v1"), push_reproducible(api, "v2")
        one, two, three = new_key(api, "worker"), new_key(api, "worker"), new_key(api, "worker")
        attest_runs(api, across, "v1", one, [A, A, A])
        attest_runs(api, across, "v1", two, [B, B, B])  # workers disagree
        attest_runs(api, across, "v1", three, [A, A, A])  # a majority does not outvote a finding
        state = status(api, across)
        assert state["promotable"] is False
        [profile] = state["verification"]
        assert (
            profile["state"] == "disagree" and A in profile["finding"] and B in profile["finding"]
        )
        [requirement] = state["requirements"]
        assert "non-reproducible" in requirement["reason"] and B in requirement["reason"]
        assert promote(api, across).status_code == 409

        attest_runs(api, within, "v2", one, [A, B, A])  # one worker's runs disagree
        assert status(api, within)["verification"][0]["state"] == "disagree"
        assert promote(api, within).status_code == 409
        assert nondeterministic_total(api) == 3  # every attestation that disagrees is counted

        events = api.client.get(
            "/v1/channels/history",
            params={"name": NAME, "channel": "production"},
            headers=api.auth(),
        ).json()["events"]
        findings = [e for e in events if e["action"] == "nondeterministic"]
        assert [e["to_digest"] for e in findings] == [
            str(digests(within).blake3),
            str(digests(across).blake3),
            str(digests(across).blake3),
        ]
        assert all(A in e["reason"] and B in e["reason"] for e in findings)
        entries = api.client.get(
            "/v1/log/entries", params={"start": 0, "end": 200}, headers=api.auth()
        ).json()["entries"]
        assert (
            sum(
                '"verification.nondeterministic"' in str(e)
                or "nondeterministic" in str(e.get("kind", ""))
                for e in entries
            )
            >= 2
        )
    finally:
        api.client.__exit__(None, None, None)
