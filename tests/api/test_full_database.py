"""A database that runs out of room answers 507 problem+json to the write that does not fit,
keeps everything it acknowledged, and carries on once there is room again.

How the disk fills, per deployment:
- embedded (SQLite): every connection the app checks out gets ``PRAGMA max_page_count``
  at the database's current size, so SQLite itself fails a write that needs one more
  page with ``SQLITE_FULL`` ("database or disk is full"), exactly as on a full disk.
  A write that fits in pages already allocated still succeeds (as on a real disk), so
  each kind of write is repeated until the database refuses one.
- production (PostgreSQL): filling the server's disk is out of a test's reach, so a
  trigger on every table makes the server raise the error a full disk raises, SQLSTATE
  53100 ``disk_full`` ("could not extend file"), over the real protocol.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event, text

from registry.core.checkpoint import NoteVerifier, open_checkpoint
from registry.core.keys import SigningKey
from registry.core.merkle import leaf_hash, root_from_leaves
from registry.core.predicates import PublishPredicate
from registry.core.roles import Role
from registry.db.models import Base
from tests.conftest import Api, Deployment
from tests.support.api import new_key, post_attestation, publish, put_manifest
from tests.support.content import digests, manifest_bytes
from tests.support.database import database_rows
from tests.support.trust import signed, statement_about

BLOB = b"weights that fit before the disk filled\n"
NAME = "full/disk"
MAX_ATTEMPTS = 400  # writes of one kind before SQLite must have run out of pages


@contextmanager
def sqlite_full(engine: Engine) -> Iterator[None]:
    """Cap the SQLite database at its current size for every connection checked out."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("VACUUM")  # no free pages left to reuse
        cursor.close()
    finally:
        raw.close()

    def cap(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        dbapi_connection.execute("PRAGMA max_page_count = 1")  # raised to the current size

    event.listen(engine, "checkout", cap)
    try:
        yield
    finally:
        event.remove(engine, "checkout", cap)
        engine.dispose()  # the capped connections go; new ones start uncapped


DISK_FULL = """
CREATE FUNCTION reliquary_test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'could not extend file "base/16384/16385": No space left on device'
        USING ERRCODE = 'disk_full', HINT = 'Check free disk space.';
END $$
"""


@contextmanager
def postgresql_full(engine: Engine) -> Iterator[None]:
    """Make PostgreSQL answer every row written with SQLSTATE 53100 (disk_full)."""
    tables = [t.name for t in Base.metadata.sorted_tables]
    with engine.begin() as conn:
        conn.execute(text(DISK_FULL))
        for table in tables:
            conn.execute(
                text(
                    f"CREATE TRIGGER disk_full BEFORE INSERT OR UPDATE OR DELETE ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION reliquary_test_disk_full()"
                )
            )
    try:
        yield
    finally:
        with engine.begin() as conn:
            for table in tables:
                conn.execute(text(f"DROP TRIGGER disk_full ON {table}"))
            conn.execute(text("DROP FUNCTION reliquary_test_disk_full()"))


def full_database(deployment: Deployment) -> Any:
    if deployment.name == "embedded":
        return sqlite_full(deployment.engine)
    return postgresql_full(deployment.engine)


def _writes(api: Api, artifact_raw: bytes, signer: SigningKey) -> dict[str, Callable[[int], Any]]:
    """One function per kind of write; the argument makes each call's content new."""
    artifact = digests(artifact_raw).blake3

    def blob(i: int) -> Any:
        data = f"blob {i}\n".encode() * 20
        return api.client.put(f"/v1/blobs/{digests(data).blake3}", content=data, headers=api.auth())

    def upload(_: int) -> Any:
        return api.client.post("/v1/uploads", headers=api.auth())

    def token(i: int) -> Any:
        body = {"role": "reader", "description": f"reader {i}"}
        return api.client.post("/v1/tokens", json=body, headers=api.auth(Role.ADMIN))

    def key(i: int) -> Any:
        pem = SigningKey.generate().public.to_pem().decode()
        body = {"public_key": pem, "role": "worker", "description": f"worker {i}"}
        return api.client.post("/v1/keys", json=body, headers=api.auth(Role.ADMIN))

    def push(i: int) -> Any:
        return put_manifest(api, manifest_bytes(NAME, f"v{i + 2}", {"model.bin": BLOB}))

    def attest(i: int) -> Any:
        predicate = PublishPredicate("ci@full", training_run=f"run {i}")
        statement = statement_about(artifact_raw, NAME, "v1", predicate)
        return post_attestation(api, artifact_raw, signed(statement, signer).to_json())

    def promote(i: int) -> Any:
        body = {"name": NAME, "channel": f"c{i}", "digest": str(artifact), "reason": "full"}
        return api.client.post("/v1/channels/promote", json=body, headers=api.auth(Role.GOVERNOR))

    return {
        "blob": blob,
        "upload": upload,
        "token": token,
        "key": key,
        "push": push,
        "attestation": attest,
        "promote": promote,
    }


def _refused_when_full(engine: Engine, write: Callable[[int], Any], start: int) -> int:
    """Call ``write`` until the database refuses it (at most MAX_ATTEMPTS calls); check the
    refusal is a 507 problem that changed nothing. The next unused argument."""
    for i in range(start, start + MAX_ATTEMPTS):
        before = database_rows(engine)
        answer = write(i)
        if answer.status_code != 507:
            assert answer.status_code in (200, 201), answer.text[:300]
            continue
        assert answer.headers["content-type"].startswith("application/problem+json")
        problem = answer.json()
        assert problem["type"] == "https://reliquary.dev/problems/insufficient-storage"
        assert "nothing was changed" in problem["detail"]
        assert database_rows(engine) == before
        return i + 1
    raise AssertionError(f"{MAX_ATTEMPTS} writes fitted in a full database")


def _log_is_whole(api: Api) -> int:
    """The log's entries are 0..size-1 and hash to the signed checkpoint's root; its size."""
    verifier = NoteVerifier.parse(api.client.get("/v1/log/key").text)
    checkpoint = open_checkpoint(api.client.get("/v1/log/checkpoint").content, verifier)
    answer = api.client.get(
        "/v1/log/entries",
        params={"start": 0, "end": checkpoint.size},
        headers=api.auth(Role.READER),
    )
    entries = answer.json()["entries"]
    assert [e["index"] for e in entries] == list(range(checkpoint.size))
    leaves = [leaf_hash(base64.b64decode(e["entry"])) for e in entries]
    assert root_from_leaves(leaves) == checkpoint.root
    return checkpoint.size


def test_writes_on_a_full_database_answer_507_keep_everything_and_resume(
    api: Api, deployment: Deployment
) -> None:
    artifact_raw = publish(api, NAME, "v1", {"model.bin": BLOB})
    signer = new_key(api, "publisher")
    writes = _writes(api, artifact_raw, signer)

    n = 0
    with full_database(deployment):
        for write in writes.values():
            n = _refused_when_full(deployment.engine, write, n)
        acknowledged = database_rows(deployment.engine)
        size = _log_is_whole(api)

    assert database_rows(deployment.engine) == acknowledged  # nothing lost, nothing half-done
    for kind, write in writes.items():  # room again: every kind of write goes through
        assert write(n).status_code in (200, 201), kind
        n += 1
    assert _log_is_whole(api) > size
    resolved = api.client.get(
        "/v1/resolve", params={"name": NAME, "version": "v1"}, headers=api.auth(Role.READER)
    )
    assert resolved.json()["digest"] == str(digests(artifact_raw).blake3)
    blob = api.client.get(f"/v1/blobs/{digests(BLOB).blake3}", headers=api.auth(Role.READER))
    assert blob.content == BLOB
