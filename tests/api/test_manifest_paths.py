"""The registry refuses a manifest whose paths collide or cannot exist on another OS."""

from __future__ import annotations

from registry.core.roles import Role
from tests.conftest import Api
from tests.support.api import put_manifest, upload_blobs
from tests.support.content import manifest_bytes

FILES = {
    "A": b"upper",
    "a/b": b"lower directory",
    "C:a": b"drive-relative on Windows",
    "con.txt": b"a device",
    "x" * 300: b"a long name",
}


def test_a_manifest_other_filesystems_cannot_hold_is_refused_naming_each_rule_and_path(
    api: Api,
) -> None:
    upload_blobs(api, FILES)
    r = put_manifest(api, manifest_bytes("acme/portable", "v1", FILES))
    assert r.status_code == 400
    problem = r.json()
    assert problem["type"].endswith("/invalid-manifest")
    listed = problem["problems"]
    assert any("'A'" in p and "'a/b'" in p and "case-insensitive" in p for p in listed)
    assert any("'C:a'" in p and "Windows forbids" in p for p in listed)
    assert any("'con.txt'" in p and "Windows device name" in p for p in listed)
    assert any("300 bytes" in p and "255" in p for p in listed)
    assert len(listed) == 4
    resolved = api.client.get(
        "/v1/resolve",
        params={"name": "acme/portable", "version": "v1"},
        headers=api.auth(Role.READER),
    )
    assert resolved.status_code == 404
