"""Signing keys, signed statements and the audited log, as publishers, governors and auditors
use them: the installed `reliquary` command in subprocesses against a real server process,
on the embedded default and on PostgreSQL + S3.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from clients.errors import VerificationError
from clients.trust import TrustRoot, verify_attestation
from registry.core.checkpoint import NoteSigner
from registry.core.keys import SigningKey
from registry.core.manifest import parse_manifest
from registry.core.roles import Role
from tests.conftest import Deployment
from tests.support.content import manifest_bytes
from tests.support.server import CLI, ServerProcess
from tests.support.trust import PUBLISH, signed, statement_about

pytestmark = pytest.mark.slow


@dataclass
class Registry:
    server: ServerProcess
    deployment: Deployment
    tokens: dict[Role, str]
    home: Path

    def env(self, role: Role) -> dict[str, str]:
        return {
            **os.environ,
            "RELIQUARY_URL": self.server.url,
            "RELIQUARY_TOKEN": self.tokens[role],
            "RELIQUARY_CACHE": str(self.home / "cache"),
            "RELIQUARY_CONFIG": str(self.home / "config.toml"),
        }

    def run(
        self, *args: str, role: Role = Role.PUBLISHER, expect: int = 0
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [CLI, *args], env=self.env(role), capture_output=True, text=True, timeout=120
        )
        assert done.returncode == expect, (
            f"reliquary {' '.join(args)} -> {done.returncode}, expected {expect}\n{done.stderr}"
        )
        return done

    def json(self, *args: str, role: Role = Role.PUBLISHER) -> Any:
        return json.loads(self.run(*args, "--json", role=role).stdout)

    def push(self, tmp_path: Path, name: str, version: str, *extra: str) -> Any:
        model = tmp_path / f"{name.replace('/', '_')}-{version}"
        model.mkdir()
        (model / "model.bin").write_bytes(f"{name}@{version} weights".encode() * 50)
        return self.json("push", str(model), "--name", name, "--version", version, *extra)


@pytest.fixture
def registry(deployment: Deployment, tmp_path: Path) -> Iterator[Registry]:
    issuer = deployment.services().tokens
    tokens = {
        role: issuer.issue(role).token for role in (Role.ADMIN, Role.PUBLISHER, Role.GOVERNOR)
    }
    proc = ServerProcess(deployment.env)
    proc.start()
    try:
        yield Registry(proc, deployment, tokens, tmp_path / "home")
    finally:
        proc.stop()


def write_json(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc))
    return path


def verify_with(registry: Registry, ref: str, trust_root: Path, expect: int = 0) -> str:
    """``attestations REF --verify``; its stderr."""
    return registry.run(
        "attestations", ref, "--verify", "--trust-root", str(trust_root), expect=expect
    ).stderr


def test_a_signed_push_verifies_only_against_the_pinned_keys_and_roles(
    registry: Registry, tmp_path: Path
) -> None:
    key_file = tmp_path / "ci.pem"
    generated = registry.json("keys", "generate", "--out", str(key_file))
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert generated["public_key"] == str(tmp_path / "ci.pub.pem")
    keyid = SigningKey.from_pem(key_file.read_bytes()).public.keyid
    assert generated["keyid"] == keyid
    public = generated["public_key"]
    registry.run("keys", "register", public, "--role", "publisher", expect=6)  # admins only
    registered = registry.run("keys", "register", public, "--role", "publisher", role=Role.ADMIN)
    assert registered.stdout.strip() == keyid

    pushed = registry.push(
        tmp_path,
        "veid/trust-score",
        "v1",
        *("--sign-key", str(key_file), "--source-repository", "https://git.example/veid"),
        *("--source-commit", "4f2a9c1", "--training-run", "run-17"),
    )
    assert isinstance(pushed["attestation"]["log_index"], int)
    listed = registry.json("attestations", "veid/trust-score@v1")["attestations"]
    assert [(a["keyid"], a["log_index"]) for a in listed] == [
        (keyid, pushed["attestation"]["log_index"])
    ]

    keys = registry.run("keys", "list", "--json").stdout
    trust_root = tmp_path / "trust-root.json"
    trust_root.write_text(keys)  # reviewed output of `keys list --json` is a trust root
    assert "verified 1 of 1" in verify_with(registry, pushed["digest"], trust_root)

    missing = write_json(tmp_path / "empty.json", {"keys": []})
    failed = verify_with(registry, "veid/trust-score@v1", missing, expect=4)
    assert f"{keyid} is not in the trust root" in failed
    as_worker = json.loads(keys)
    as_worker["keys"][0]["role"] = "worker"
    wrong_role = write_json(tmp_path / "worker.json", as_worker)
    failed = verify_with(registry, "veid/trust-score@v1", wrong_role, expect=4)
    assert "publish/v1 needs a publisher key" in failed

    registry.run("keys", "revoke", keyid, "--reason", "CI runner rebuilt", role=Role.ADMIN)
    listed_now = registry.run("keys", "list", "--json").stdout
    (revoked,) = json.loads(listed_now)["keys"]
    assert revoked["revoked_reason"] == "CI runner rebuilt"
    trust_root.write_text(listed_now)
    failed = verify_with(registry, "veid/trust-score@v1", trust_root, expect=4)
    assert "revoked in the trust root" in failed
    # the registry refuses new statements by the revoked key
    refused = registry.run(
        "sign", "veid/trust-score@v1", "--key", str(key_file), "--predicate", "publish", expect=5
    )
    assert "revoked" in refused.stderr


def test_a_governor_approves_and_an_unregistered_key_is_refused(
    registry: Registry, tmp_path: Path
) -> None:
    governor = tmp_path / "governor.pem"
    registry.run("keys", "generate", "--out", str(governor))
    registry.run(
        "keys",
        "register",
        str(tmp_path / "governor.pub.pem"),
        "--role",
        "governor",
        "--description",
        "release board",
        role=Role.ADMIN,
    )
    pushed = registry.push(tmp_path, "veid/trust-score", "v2")
    approve = ("sign", "veid/trust-score@v2", "--key", str(governor), "--predicate", "approval")
    signed = registry.run(
        *approve, "--channel", "production", "--comment", "meets the bar", role=Role.GOVERNOR
    )
    index = int(signed.stdout.strip())
    again = registry.run(
        *approve, "--channel", "production", "--comment", "meets the bar", role=Role.GOVERNOR
    )
    assert int(again.stdout) == index  # the same statement, signed again, is one log entry
    registry.run(*approve, role=Role.GOVERNOR, expect=2)  # an approval names its channel

    trust_root = tmp_path / "governors.json"
    trust_root.write_text(registry.run("keys", "list", "--role", "governor", "--json").stdout)
    assert "verified 1 of 1" in verify_with(registry, pushed["sha256"], trust_root)
    (listed,) = registry.json("attestations", "veid/trust-score@v2")["attestations"]
    assert listed["predicate_type"].endswith("/approval/v1")
    assert listed["log_index"] == index

    stranger = tmp_path / "stranger.pem"
    registry.run("keys", "generate", "--out", str(stranger))
    refused = registry.run(
        "sign",
        "veid/trust-score@v2",
        "--key",
        str(stranger),
        "--predicate",
        "evaluation",
        "--metrics",
        "r2=0.91",
        "--metrics",
        "mae=6.2",
        expect=5,
    )
    assert "not registered" in refused.stderr


def test_audit_pins_the_log_then_proves_it_only_grew(registry: Registry, tmp_path: Path) -> None:
    registry.push(tmp_path, "acme/audited", "v1")
    first = registry.run("audit", "verify")
    assert "first run: pinned log key" in first.stderr
    (state_file,) = registry.home.glob("audit-*.json")
    pinned = json.loads(state_file.read_text())
    size = pinned["size"]
    assert size >= 1

    registry.push(tmp_path, "acme/audited", "v2")
    registry.push(tmp_path, "acme/audited", "v3")
    last = str(size + 1)
    report = registry.json("audit", "verify", "--entry", "0", "--entry", last)
    assert (report["previous_size"], report["size"]) == (size, size + 2)
    assert report["entries"] == [0, size + 1]
    assert json.loads(state_file.read_text())["size"] == size + 2
    registry.run("audit", "verify", "--entry", str(size + 2), expect=2)  # not logged yet

    # a state file from another (forked) history: same size, another root
    forked = dict(json.loads(state_file.read_text()), root=base64.b64encode(bytes(32)).decode())
    forked_file = write_json(tmp_path / "forked.json", forked)
    before = forked_file.read_bytes()
    failed = registry.run("audit", "verify", "--state-file", str(forked_file), expect=4)
    assert "history was rewritten" in failed.stderr
    assert forked_file.read_bytes() == before  # a failure never moves the pin
    registry.push(tmp_path, "acme/audited", "v4")  # and after growth, no proof connects them
    failed = registry.run("audit", "verify", "--state-file", str(forked_file), expect=4)
    assert f"does not extend the pinned one of size {size + 2}" in failed.stderr

    # a log key other than the pinned one is a failure, never a silent rotation
    other_key = NoteSigner(forked["origin"], os.urandom(32)).verifier_key()
    rotated = write_json(tmp_path / "rotated.json", dict(pinned, log_key=other_key))
    failed = registry.run("audit", "verify", "--state-file", str(rotated), expect=4)
    assert "the log key changed" in failed.stderr
    assert registry.json("audit", "verify")["previous_size"] == size + 2


def test_audit_catches_an_entry_rewritten_in_the_database(
    registry: Registry, tmp_path: Path
) -> None:
    for version in ("v1", "v2", "v3"):
        registry.push(tmp_path, "acme/ledger", version)
    registry.run("audit", "verify", "--all")
    (state_file,) = registry.home.glob("audit-*.json")
    pinned = state_file.read_bytes()
    with registry.deployment.engine.begin() as conn:  # someone with database access
        victim, row = conn.execute(
            text(
                "SELECT idx, entry FROM log_entries WHERE kind = 'artifact.pushed' "
                "ORDER BY idx LIMIT 1 OFFSET 1"
            )
        ).one()
        forged = bytes(row).replace(b"acme/ledger", b"acme/ledgeR")
        assert forged != bytes(row)
        conn.execute(
            text("UPDATE log_entries SET entry = :e WHERE idx = :i"), {"e": forged, "i": victim}
        )

    failed = registry.run("audit", "verify", "--all", expect=4)
    assert "history was rewritten" in failed.stderr
    assert f"entry {victim} fails its inclusion proof" in failed.stderr
    failed = registry.run("audit", "verify", "--entry", str(victim), expect=4)
    assert f"entry {victim} as served now is not the entry the log committed to" in failed.stderr
    assert state_file.read_bytes() == pinned
    registry.run("audit", "verify", "--entry", str(victim + 1))  # untouched entries still prove


def test_a_statement_about_another_artifact_never_verifies_here() -> None:
    """What a lying registry could list under an artifact: a valid, pinned signature
    over a statement about some other manifest (a replay)."""
    key = SigningKey.generate()
    root = TrustRoot.from_json(
        json.dumps(
            {"keys": [{"public_key": key.public.to_pem().decode(), "role": "publisher"}]}
        ).encode()
    )
    this = parse_manifest(manifest_bytes("acme/m", "v1", {"a.bin": b"a"}))
    other = parse_manifest(manifest_bytes("acme/m", "v2", {"a.bin": b"b"}))
    about_other = signed(statement_about(other.raw, "acme/m", "v2", PUBLISH), key).to_json()
    assert verify_attestation(about_other, other, root).keyids == {key.public.keyid}
    with pytest.raises(VerificationError, match="not acme/m@v1"):
        verify_attestation(about_other, this, root)


def test_audit_state_replays_channel_moves_and_catches_an_edited_pointer(
    registry: Registry, tmp_path: Path
) -> None:
    """An attacker with database write access moves a channel to a same-name artifact
    the log never promoted: the server refuses to serve it, ``pull --channel`` installs
    nothing, and ``audit verify --state`` names the channel (issue 11, item 2)."""
    digests = {v: registry.push(tmp_path, "acme/chan", v)["digest"] for v in ("v1", "v2", "v3")}
    for version in ("v1", "v2"):
        registry.run(
            "promote",
            f"acme/chan@{version}",
            "--channel",
            "production",
            "--reason",
            "ok",
            role=Role.GOVERNOR,
        )
    report = registry.json("audit", "verify", "--state")
    assert report["channels"] == {"acme/chan:production": digests["v2"]}

    with registry.deployment.engine.begin() as conn:
        conn.execute(
            text("UPDATE channels SET digest = :d"), {"d": digests["v3"].removeprefix("blake3:")}
        )
    failed = registry.run("audit", "verify", "--state", expect=4)
    assert "acme/chan:production" in failed.stderr
    assert digests["v3"] in failed.stderr
    out = tmp_path / "pulled"
    pulled = subprocess.run(
        [CLI, "pull", "acme/chan", "--channel", "production", "-o", str(out)],
        env=registry.env(Role.PUBLISHER),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pulled.returncode != 0
    assert "log" in pulled.stderr
    assert not out.exists() or not any(out.iterdir())
