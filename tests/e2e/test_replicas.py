"""The production shape: several stateless API replicas on one PostgreSQL and one S3
(issue 11, item 9).

Three ``reliquary-server serve`` processes, each with its own data directory and
witness file (as on separate hosts), share the database, the bucket and the log key.
Pushes, attestations, promotes and rollbacks go through all three at once. Then:
no gap in the log, every checkpoint any replica served is the final tree or a prefix
of it (proven with consistency proofs), every replica serves the same checkpoint
once idle, ``reliquary audit verify --all --state`` passes, and a revoked token is
refused by every replica within the token cache's lifetime.
"""

from __future__ import annotations

import base64
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from registry.core import merkle
from registry.core.checkpoint import NoteVerifier, open_checkpoint
from registry.core.keys import SigningKey
from registry.core.roles import Role
from tests.conftest import Deployment
from tests.support.content import digests, manifest_bytes
from tests.support.server import CLI, SERVER, ServerProcess
from tests.support.trust import PUBLISH, signed, statement_about

pytestmark = pytest.mark.slow
REPLICAS = 3
WRITERS = 6
ROUNDS = 4
TOKEN_CACHE_SECONDS = 2.0


@pytest.fixture
def replicas(deployment: Deployment, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    servers = []
    for i in range(REPLICAS):
        host = tmp_path / f"host{i}"
        env = {
            **deployment.env,
            "RELIQUARY_DATA_DIR": str(host),
            "RELIQUARY_LOG_WITNESS_FILE": str(host / "log-witness.json"),
            "RELIQUARY_TOKEN_CACHE_TTL": f"{TOKEN_CACHE_SECONDS:g}s",
        }
        servers.append(ServerProcess(env))
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


def _checkpoint(client: httpx.Client) -> tuple[int, bytes]:
    lines = client.get("/v1/log/checkpoint").text.splitlines()
    return int(lines[1]), base64.b64decode(lines[2])


def _writer(
    n: int, urls: list[str], tokens: dict[Role, str], key: SigningKey, failures: list[str]
) -> None:
    """Pushes through one replica, attests through the next, moves channels through the
    third: every step must be answered as a single registry would."""
    clients = [
        {role: httpx.Client(base_url=u, headers={"authorization": f"Bearer {t}"}, timeout=60)
         for role, t in tokens.items()}
        for u in urls
    ]  # fmt: skip
    name = f"replicas/model-{n % 2}"  # writers share names: their promotes race on channels
    try:
        for r in range(ROUNDS):
            push, attest, move = (clients[(n + r + k) % len(urls)] for k in range(3))
            version = f"w{n}-r{r}"
            data = f"{name}@{version}".encode() * 100
            put = push[Role.PUBLISHER].put(f"/v1/blobs/{digests(data).blake3}", content=data)
            raw = manifest_bytes(name, version, {"model.bin": data})
            pushed = push[Role.PUBLISHER].put("/v1/artifacts", content=raw)
            envelope = signed(statement_about(raw, name, version, PUBLISH), key)
            posted = attest[Role.PUBLISHER].post(
                f"/v1/artifacts/{digests(raw).blake3}/attestations", content=envelope.to_json()
            )
            promoted = move[Role.GOVERNOR].post(
                "/v1/channels/promote",
                json={"name": name, "channel": "production", "reason": f"round {r}",
                      "digest": str(digests(raw).blake3)},
            )  # fmt: skip
            answers = [put.status_code, pushed.status_code, posted.status_code]
            answers.append(promoted.status_code)
            if r % 2 == 1:
                back = move[Role.GOVERNOR].post(
                    "/v1/channels/rollback",
                    json={"name": name, "channel": "production", "reason": "drill"},
                )
                if back.status_code not in (200, 409):  # 409: a racing writer's move
                    answers.append(back.status_code)
            if any(code >= 300 for code in answers):
                failures.append(f"writer {n} round {r}: {answers}")
    except Exception as exc:  # reported as a failure of the test
        failures.append(f"writer {n}: {exc!r}")
    finally:
        for by_role in clients:
            for client in by_role.values():
                client.close()


@pytest.mark.parametrize("deployment", ["production"], indirect=True)  # PostgreSQL + S3
def test_three_replicas_keep_one_log(
    deployment: Deployment, replicas: list[ServerProcess], tmp_path: Path
) -> None:
    tokens = {role: deployment.token(role) for role in Role}
    urls = [s.url for s in replicas]
    key = SigningKey.generate()
    with httpx.Client(base_url=urls[0]) as admin:
        registered = admin.post(
            "/v1/keys",
            json={"public_key": key.public.to_pem().decode(), "role": "publisher"},
            headers={"authorization": f"Bearer {tokens[Role.ADMIN]}"},
        )
        assert registered.status_code == 201, registered.text
        verifier = NoteVerifier.parse(admin.get("/v1/log/key").text.strip())

    seen: set[tuple[int, bytes]] = set()
    stop = threading.Event()

    def watch() -> None:  # every checkpoint any replica serves while the writers run
        watchers = [httpx.Client(base_url=u, timeout=30) for u in urls]
        while not stop.is_set():
            for client in watchers:
                note = client.get("/v1/log/checkpoint").content
                checkpoint = open_checkpoint(note, verifier)
                seen.add((checkpoint.size, checkpoint.root))
        for client in watchers:
            client.close()

    failures: list[str] = []
    watcher = threading.Thread(target=watch)
    watcher.start()
    writers = [
        threading.Thread(target=_writer, args=(n, urls, tokens, key, failures))
        for n in range(WRITERS)
    ]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    watcher.join()
    assert failures == []

    reader = {"authorization": f"Bearer {tokens[Role.READER]}"}
    clients = [httpx.Client(base_url=u, headers=reader, timeout=30) for u in urls]
    finals = {_checkpoint(c) for c in clients}
    assert len(finals) == 1, f"idle replicas serve different checkpoints: {finals}"
    ((size, root),) = finals
    assert size >= WRITERS * ROUNDS * 3  # push + attestation + promote at least

    # no gap: every index 0..size-1 is served, in order, by every replica
    for client in clients:
        indexes: list[int] = []
        for start in range(0, size, 1000):
            page = client.get(
                "/v1/log/entries", params={"start": start, "end": min(start + 1000, size)}
            ).json()["entries"]
            indexes += [e["index"] for e in page]
        assert indexes == list(range(size))

    # every checkpoint served during the run is a prefix of the final tree: no fork
    for old_size, old_root in sorted(seen):
        if old_size == size:
            assert old_root == root
            continue
        if old_size == 0:
            continue
        proof = [
            base64.b64decode(h)
            for h in clients[old_size % REPLICAS]
            .get("/v1/log/proof/consistency", params={"from": old_size, "to": size})
            .json()["hashes"]
        ]
        merkle.verify_consistency(old_size, size, old_root, root, proof)
    assert len(seen) > 1  # the watcher saw the log grow

    # an auditor, through any replica, checks the whole log and the channels it serves
    env = {
        **os.environ,
        "RELIQUARY_TOKEN": tokens[Role.READER],
        "RELIQUARY_CONFIG": str(tmp_path / "config.toml"),
    }
    state = tmp_path / "audit.json"
    for url in urls:
        audited = subprocess.run(
            [CLI, "--url", url, "audit", "verify", "--all", "--state", "--state-file", str(state)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert audited.returncode == 0, audited.stderr

    # a revoked token is refused by every replica within the token cache's lifetime
    doomed = deployment.services().tokens.issue(Role.READER, description="doomed")
    headers = {"authorization": f"Bearer {doomed.token}"}
    for client in clients:
        assert client.get("/v1/channels", params={"name": "replicas/model-0"},
                          headers=headers).status_code == 200  # fmt: skip
    subprocess.run(
        [SERVER, "token", "revoke", doomed.id],
        env={**os.environ, **deployment.env},
        check=True,
        capture_output=True,
        timeout=60,
    )
    revoked_at = time.monotonic()
    refused_after: list[float] = []
    for client in clients:
        while client.get("/healthz").status_code == 200:
            answer = client.get("/v1/channels", params={"name": "replicas/model-0"},
                                headers=headers)  # fmt: skip
            if answer.status_code == 401:
                refused_after.append(time.monotonic() - revoked_at)
                break
            assert time.monotonic() - revoked_at < TOKEN_CACHE_SECONDS + 3, "still accepted"
            time.sleep(0.1)
    assert len(refused_after) == REPLICAS
    assert max(refused_after) <= TOKEN_CACHE_SECONDS + 1.0
    for client in clients:
        client.close()
