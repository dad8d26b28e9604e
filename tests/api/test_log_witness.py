"""The log never shrinks or forks after a database restore (issue 11, item 3).

The registry records the largest tree it signed outside its database (a file beside
the log key, and the bucket on S3). A database rolled back behind it is refused at
start and at signing, naming both sizes; an e2e variant restores a real SQLite
backup under a real server process.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import traceback
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from registry.app import create_log_key
from registry.db.engine import make_session_factory
from registry.domain.log.witness import Witnessed
from registry.errors import LogIntegrityError
from tests.conftest import Api, Deployment
from tests.support.api import log_size, push_model
from tests.support.server import SERVER, ServerProcess


def rewind(engine: Engine, size: int) -> None:
    """What restoring a backup taken at ``size`` does to the log's tables."""
    with engine.begin() as conn:
        nodes = conn.execute(text("SELECT level, idx FROM log_nodes")).all()
        for level, idx in nodes:
            if (idx + 1) << level > size:
                conn.execute(
                    text("DELETE FROM log_nodes WHERE level = :l AND idx = :i"),
                    {"l": level, "i": idx},
                )
        conn.execute(text("DELETE FROM log_entries WHERE idx >= :s"), {"s": size})
        conn.execute(text("UPDATE log_head SET size = :s"), {"s": size})


def test_a_rewound_database_is_refused_at_start_and_never_signs_a_fork(
    deployment: Deployment, api: Api
) -> None:
    backup_size = log_size(api)  # the backup is taken here
    for version in ("v1", "v2", "v3"):
        push_model(api, version)
    signed = log_size(api)
    assert signed == backup_size + 3

    rewind(deployment.engine, backup_size)

    with pytest.raises(LogIntegrityError) as refused:
        deployment.services().log.check_witness()
    detail = refused.value.detail
    assert f"has {backup_size} entries" in detail
    assert f"checkpoint of {signed} entries" in detail
    assert "Restore a backup holding at least" in detail
    with pytest.raises(LogIntegrityError):  # nor does a new process sign anything
        deployment.services().log.checkpoint()

    for version in ("v4", "v5", "v6"):  # other pushes: the same size, another history
        push_model(api, version)
    with pytest.raises(LogIntegrityError) as forked:
        deployment.services().log.checkpoint()
    assert "another history" in forked.value.detail
    app = deployment.client()
    with pytest.raises(BaseException) as failed, app:  # the app does not start either
        pass
    assert "another history" in "".join(traceback.format_exception(failed.value))


def test_the_witness_only_grows_and_is_per_log(deployment: Deployment, api: Api) -> None:
    push_model(api, "v1")
    size = log_size(api)
    witness = deployment.services().log.witness
    assert witness is not None
    recorded = witness.largest()
    assert recorded is not None and recorded.size == size
    witness.record(Witnessed(size - 1, bytes(32)))  # a slower replica's smaller tree
    largest = witness.largest()
    assert largest is not None and largest.size == size
    key_file = Path(deployment.env["RELIQUARY_DATA_DIR"]) / "other-key.pem"
    create_log_key(key_file)
    other = deployment.services(RELIQUARY_LOG_KEY_FILE=str(key_file))
    assert other.log.witness is not None and other.log.witness.largest() is None


@pytest.mark.slow
def test_a_server_refuses_to_start_on_a_restored_sqlite_backup(tmp_path: Path) -> None:
    env = {"RELIQUARY_DATA_DIR": str(tmp_path / "data")}
    subprocess.run([SERVER, "db", "upgrade"], env={**os.environ, **env}, check=True)
    token = subprocess.run(
        [SERVER, "token", "create", "--role", "publisher"],
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    server = ServerProcess(env)
    server.start()
    try:
        import httpx

        from tests.support.content import digests, manifest_bytes

        auth = {"authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.url, headers=auth) as client:
            live = sqlite3.connect(tmp_path / "data" / "registry.db")
            backup = sqlite3.connect(tmp_path / "backup.db")
            live.backup(backup)  # an online backup, as an operator takes one
            live.close()
            backup.close()
            before = int(client.get("/v1/log/checkpoint").text.splitlines()[1])
            for version in ("v1", "v2", "v3"):
                data = version.encode()
                client.put(f"/v1/blobs/{digests(data).blake3}", content=data)
                raw = manifest_bytes("acme/restored", version, {"w.bin": data})
                assert client.put("/v1/artifacts", content=raw).status_code == 201
            after = int(client.get("/v1/log/checkpoint").text.splitlines()[1])
    finally:
        server.stop()
    for stale in (tmp_path / "data").glob("registry.db-*"):  # the stopped server's WAL
        stale.unlink()
    shutil.copy(tmp_path / "backup.db", tmp_path / "data" / "registry.db")
    refused = subprocess.run(
        [SERVER, "serve", "--port", "1"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    assert f"the database's log has {before} entries" in refused.stderr
    assert f"checkpoint of {after} entries" in refused.stderr
    fsck = subprocess.run(
        [SERVER, "fsck"], env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )
    assert fsck.returncode == 1
    assert "log behind its witness" in fsck.stdout


def test_a_read_overtaken_by_another_replica_reads_again(deployment: Deployment, api: Api) -> None:
    """Replica one reads the log (a snapshot), replica two then grows the log and signs
    it, recording a larger witness; replica one's check must see a stale read, not a
    rewound database (it reads again instead of refusing), and its next checkpoint is
    the larger tree."""
    one, two = deployment.services(), deployment.services()
    push_model(api, "v1")
    one.log.checkpoint()
    stale = make_session_factory(deployment.engine, read_only=True)()
    if deployment.engine.dialect.name == "postgresql":  # hold one snapshot, as SQLite does
        stale.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    with stale:
        size = one.log.size_in(stale)
        root = one.log.root(size)
        push_model(api, "v2")
        two.log.checkpoint()  # the witness now names a larger tree than ``stale`` sees
        witness = one.log.witness
        assert witness is not None
        largest = witness.largest()
        assert largest is not None and largest.size > size
        assert one.log.size_in(stale) == size  # still the old snapshot
        verdict = one.log._check_witness(stale, size, root)
        assert verdict is not None and not isinstance(verdict, Witnessed)  # stale: read again
    note = one.log.checkpoint().decode()
    assert int(note.splitlines()[1]) == largest.size
