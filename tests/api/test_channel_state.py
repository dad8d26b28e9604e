"""Channel pointers are bound to the log (issue 11, item 2).

An attacker with write access to the database edits ``channels.digest``: to an
artifact of another name, or to a same-name artifact the log never promoted. The
registry must refuse to serve such a pointer (resolve, channels, status, promote,
rollback), say why, and ``reliquary-server fsck`` must name it.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text

from registry.core.dsse import statement_sha256
from registry.core.keys import SigningKey
from registry.core.predicates import APPROVAL, ApprovalPredicate, EvaluationPredicate
from registry.core.roles import Role
from registry.errors import LogIntegrityError
from tests.conftest import Api, Deployment, api_with_policy
from tests.support.api import (
    log_size,
    new_key,
    post_attestation,
    promote,
    publish,
    push_model,
    status,
)
from tests.support.content import NAME, digests
from tests.support.server import SERVER
from tests.support.trust import signed, statement_about


def _resolve(api: Api, name: str = NAME) -> dict[str, object]:
    r = api.client.get(
        "/v1/resolve", params={"name": name, "channel": "production"}, headers=api.auth()
    )
    body: dict[str, object] = r.json()
    body["status_code"] = r.status_code
    return body


def _edit(deployment: Deployment, sql: str, **params: object) -> None:
    with deployment.engine.begin() as conn:
        conn.execute(text(sql), params)


def _fsck(deployment: Deployment) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SERVER, "fsck"],
        env={"PATH": "/usr/bin:/bin", **deployment.env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _to_other_name(deployment: Deployment, api: Api) -> str:
    other = digests(publish(api, "acme/other", "v1", {"w.bin": b"other weights"})).blake3
    _edit(deployment, "UPDATE channels SET digest = :d", d=other.hex)
    return str(other)


def _to_unpromoted(deployment: Deployment, api: Api) -> str:
    never = digests(push_model(api, "v9")).blake3
    _edit(deployment, "UPDATE channels SET digest = :d", d=never.hex)
    return str(never)


def _to_older_move(deployment: Deployment, api: Api) -> str:
    """Back to what the channel held before, with the older move's own log index."""
    _edit(
        deployment,
        "UPDATE channels SET digest = e.to_digest, log_index = e.log_index FROM "
        "(SELECT to_digest, log_index FROM channel_events ORDER BY log_index LIMIT 1) AS e",
    )
    with deployment.engine.connect() as conn:
        return "blake3:" + str(conn.execute(text("SELECT digest FROM channels")).scalar_one())


EDITS: dict[str, Callable[[Deployment, Api], str]] = {
    "another-name": _to_other_name,
    "never-promoted": _to_unpromoted,
    "an-older-move": _to_older_move,
}


@pytest.mark.parametrize("edit", EDITS)
def test_a_pointer_edited_in_the_database_is_refused_not_served(
    deployment: Deployment, api: Api, edit: str
) -> None:
    v1, v2 = push_model(api, "v1"), push_model(api, "v2")
    assert promote(api, v1).status_code == 200
    assert promote(api, v2).status_code == 200
    assert _resolve(api)["digest"] == str(digests(v2).blake3)
    assert _fsck(deployment).returncode == 0

    planted = EDITS[edit](deployment, api)

    for app_kind in ("running", "restarted"):
        fresh = api if app_kind == "running" else Api(deployment.client(), api.tokens, api.app)
        with fresh.client if app_kind == "restarted" else _nothing():
            answer = _resolve(fresh)
            assert answer["status_code"] == 503, answer
            assert str(answer["type"]).endswith("/log-integrity")
            assert planted in str(answer["detail"])
            assert "fsck" in str(answer["detail"])
            listed = fresh.client.get("/v1/channels", params={"name": NAME}, headers=fresh.auth())
            assert listed.status_code == 503
            shown = fresh.client.get(
                f"/v1/artifacts/{digests(v1).blake3}/status",
                params={"channel": "production"},
                headers=fresh.auth(),
            )
            assert shown.status_code == 503
            moved = promote(fresh, v1)
            assert moved.status_code == 503  # the write path checks too: nothing moves
    report = _fsck(deployment)
    assert report.returncode == 1
    assert f"{NAME}:production points at {planted}" in report.stdout


def test_rollback_targets_come_from_the_log_not_the_history_table(
    deployment: Deployment, api: Api
) -> None:
    v1, v2 = push_model(api, "v1"), push_model(api, "v2")
    assert promote(api, v1).status_code == 200
    never = digests(push_model(api, "v9")).blake3
    # a forged history row claiming the channel once held v9
    _edit(
        deployment,
        "INSERT INTO channel_events (log_index, name, channel, action, from_digest, to_digest, "
        "reason, created_at) VALUES (100000, :n, 'production', 'promote', NULL, :d, 'forged', "
        "CURRENT_TIMESTAMP)",
        n=NAME,
        d=never.hex,
    )
    assert promote(api, v2).status_code == 200
    refused = api.client.post(
        "/v1/channels/rollback",
        json={"name": NAME, "channel": "production", "reason": "x", "digest": str(never)},
        headers=api.auth(Role.GOVERNOR),
    )
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("/invalid-rollback")
    assert _resolve(api)["digest"] == str(digests(v2).blake3)
    history = api.client.get(
        "/v1/channels/history", params={"name": NAME}, headers=api.auth(Role.READER)
    )
    assert history.status_code == 503  # the forged row is refused, not served
    assert "log index 100000" in history.json()["detail"]


def test_history_names_the_actor_by_its_description(deployment: Deployment, api: Api) -> None:
    token = deployment.token(Role.GOVERNOR, description="board of veid, vote 42")
    v1 = push_model(api, "v1")
    moved = api.client.post(
        "/v1/channels/promote",
        json={
            "name": NAME,
            "channel": "production",
            "digest": str(digests(v1).blake3),
            "reason": "vote 42",
        },
        headers={"authorization": f"Bearer {token}"},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["actor"] == "board of veid, vote 42"
    history = api.client.get(
        "/v1/channels/history", params={"name": NAME}, headers=api.auth(Role.READER)
    ).json()["events"]
    assert history[0]["actor"] == "board of veid, vote 42"


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


APPROVAL_POLICY = b"""
[channels.production]
approvals = { role = "governor", min = 1 }
"""


def test_evidence_edited_into_the_database_counts_for_nothing(
    deployment: Deployment, tmp_path: Path
) -> None:
    """Keys are trusted as the log records them, statements as their signatures prove:
    an un-revoked key row, or a key and an approval inserted without the log, do not
    open the gate (issue 11: state bound to the log)."""
    api = api_with_policy(deployment, tmp_path, APPROVAL_POLICY)
    try:
        raw = push_model(api, "v1")
        digest = digests(raw).blake3
        approval = statement_about(raw, NAME, "v1", ApprovalPredicate("production"))

        def approvals_met() -> bool:
            return bool(status(api, raw)["promotable"])

        governor = new_key(api, "governor")
        posted = post_attestation(api, raw, signed(approval, governor).to_json(), Role.GOVERNOR)
        assert posted.status_code == 201
        assert approvals_met()
        api.client.post(
            f"/v1/keys/{governor.public.keyid}/revoke",
            json={"reason": "stolen"},
            headers=api.auth(Role.ADMIN),
        )
        assert not approvals_met()
        _edit(deployment, "UPDATE signing_keys SET revoked_at = NULL, revoked_reason = NULL")
        assert not approvals_met()  # the log still says revoked

        forger = SigningKey.generate()  # a governor key that was never registered
        envelope = signed(approval, forger)
        _edit(
            deployment,
            "INSERT INTO signing_keys (keyid, public_key, role, description, created_at, "
            "log_index) VALUES (:k, :p, 'governor', 'forged', CURRENT_TIMESTAMP, 0)",
            k=forger.public.keyid,
            p=forger.public.raw,
        )
        _edit(
            deployment,
            "INSERT INTO attestations (envelope_sha256, artifact_digest, predicate_type, keyid, "
            "envelope, log_index, created_at, statement_sha256) VALUES (:e, :a, :t, :k, :b, 0, "
            "CURRENT_TIMESTAMP, :s)",
            e=envelope.digest_sha256,
            a=digest.hex,
            t=APPROVAL,
            k=forger.public.keyid,
            b=envelope.to_json(),
            s=statement_sha256(envelope.payload_type, envelope.payload, forger.public.keyid),
        )
        refused = api.client.get(
            f"/v1/artifacts/{digest}/status",
            params={"channel": "production"},
            headers=api.auth(Role.READER),
        )
        assert refused.status_code == 503  # a row the log never accepted: refused, named
        assert refused.json()["type"].endswith("/log-integrity")
        assert "log index 0" in refused.json()["detail"]
        assert promote(api, raw).status_code == 503
    finally:
        api.client.__exit__(None, None, None)


def test_a_correction_moved_before_what_it_corrects_is_refused(
    deployment: Deployment, tmp_path: Path
) -> None:
    """Which evaluation counts follows the log: moving the correction's row to an
    earlier index (so the superseded one looks latest) is caught, not believed."""
    api = api_with_policy(
        deployment, tmp_path, b'[channels.production]\nevaluation = { r2 = ">=0.85" }\n'
    )
    try:
        raw = push_model(api, "v1")
        worker = new_key(api, "worker")
        indexes = []
        for r2 in (0.95, 0.50):
            statement = statement_about(raw, NAME, "v1", EvaluationPredicate({"r2": r2}))
            posted = post_attestation(api, raw, signed(statement, worker).to_json())
            indexes.append(posted.json()["log_index"])
        assert promote(api, raw).status_code == 409  # the correction counts
        _edit(
            deployment,
            "UPDATE attestations SET log_index = :early WHERE log_index = :late",
            early=indexes[0] - 1,
            late=indexes[1],
        )
        moved = promote(api, raw)
        assert moved.status_code == 503, moved.text
        assert moved.json()["type"].endswith("/log-integrity")
    finally:
        api.client.__exit__(None, None, None)


def test_promoting_what_a_channel_holds_answers_the_first_move(api: Api) -> None:
    """A retried promote (a lost answer) changes and logs nothing."""
    v1 = push_model(api, "v1")
    first = promote(api, v1)
    assert first.status_code == 200
    size = log_size(api)
    again = promote(api, v1)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert log_size(api) == size


def test_reads_racing_promotes_never_see_a_false_disagreement(
    deployment: Deployment, api: Api
) -> None:
    """One process's ledger is shared by its threads: a reader whose snapshot is older
    (or, on PostgreSQL, whose row read is newer) than the ledger must still agree."""
    v1, v2 = push_model(api, "v1"), push_model(api, "v2")
    refs = [digests(v1).blake3, digests(v2).blake3]
    services = deployment.services()
    services.channels.promote(NAME, "production", refs[0], "first", None)
    deadline = time.monotonic() + 4
    counts = {"ok": 0, "refused": 0}
    refusals: list[str] = []

    def mover() -> None:
        i = 1
        while time.monotonic() < deadline:
            services.channels.promote(NAME, "production", refs[i % 2], "flip", None)
            i += 1

    def reader(read: Callable[[], object]) -> None:
        while time.monotonic() < deadline:
            try:
                read()
                counts["ok"] += 1
            except LogIntegrityError as exc:
                counts["refused"] += 1
                refusals.append(exc.detail)

    reads: list[Callable[[], object]] = [
        lambda: services.channels.resolve(NAME, "production"),
        lambda: services.channels.pointers(NAME),
        lambda: services.channels.status(refs[0], "production"),
    ]
    threads = [threading.Thread(target=mover)]
    threads += [threading.Thread(target=reader, args=(r,)) for r in reads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counts["refused"] == 0, refusals[:3]
    assert counts["ok"] > 50
    assert services.channels.disagreements() == []
