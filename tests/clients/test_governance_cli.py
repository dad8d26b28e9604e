"""Governance tooling and auditors (ARCHITECTURE §1, §6, §8): policy status, promotion gated
by signed evidence, rollback, history and proposals, through the installed `reliquary`
command against a real server process with a policy file, on both deployments.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from registry.core.digest import digest_bytes
from tests.conftest import Deployment
from tests.support.content import NAME
from tests.support.server import CLI, ServerProcess, run_cli

pytestmark = pytest.mark.slow
POLICY = b"""
[channels.production]
require_publisher_signature = true
approvals = { role = "governor", min = 1 }
"""
PROMOTE_V1 = ("promote", f"{NAME}@v1", "--channel", "production", "--reason", "first release")


@dataclass
class Registry:
    server: ServerProcess
    tokens: dict[str, str]
    home: Path
    keys: dict[str, Path]  # private key files of the registered publisher and governor

    def run(
        self, *args: str, role: str = "publisher", expect: int = 0
    ) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "RELIQUARY_URL": self.server.url,
            "RELIQUARY_TOKEN": self.tokens[role],
            "RELIQUARY_CACHE": str(self.home / "cache"),
            "RELIQUARY_CONFIG": str(self.home / "config.toml"),
        }
        done = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == expect, (
            f"reliquary {' '.join(args)} -> {done.returncode}, expected {expect}\n{done.stderr}"
        )
        return done

    def json(self, *args: str, role: str = "publisher", expect: int = 0) -> Any:
        return json.loads(self.run(*args, "--json", role=role, expect=expect).stdout)

    def push(self, version: str, *, signed: bool = True) -> Any:
        model = self.home / f"model-{version}"
        model.mkdir(parents=True, exist_ok=True)
        (model / "model.bin").write_bytes(weights(version))
        sign = ("--sign-key", str(self.keys["publisher"])) if signed else ()
        return self.json("push", str(model), "--name", NAME, "--version", version, *sign)

    def approve(self, ref: str) -> int:
        done = self.run(
            *("sign", ref, "--key", str(self.keys["governor"]), "--predicate", "approval"),
            *("--channel", "production"),
            role="governor",
        )
        return int(done.stdout)


def weights(version: str) -> bytes:
    return f"{NAME}@{version} weights".encode() * 40


@pytest.fixture
def registry(deployment: Deployment, tmp_path: Path) -> Iterator[Registry]:
    policy = tmp_path / "policy.toml"
    policy.write_bytes(POLICY)
    tokens = {
        role: run_cli(
            deployment.env, "token", "create", "--role", role, "--description", f"{role} of veid"
        ).strip()
        for role in ("admin", "publisher", "governor", "reader")
    }
    proc = ServerProcess({**deployment.env, "RELIQUARY_POLICY_FILE": str(policy)})
    proc.start()
    try:
        reg = Registry(proc, tokens, tmp_path / "home", {})
        for role in ("publisher", "governor"):
            key = tmp_path / f"{role}.pem"
            reg.run("keys", "generate", "--out", str(key))
            reg.run(
                "keys", "register", str(key.with_suffix(".pub.pem")), "--role", role, role="admin"
            )
            reg.keys[role] = key
        yield reg
    finally:
        proc.stop()


def unmet_of(requirements: list[dict[str, Any]]) -> set[str]:
    return {r["requirement"] for r in requirements if not r["met"]}


def test_a_release_is_proposed_promoted_on_evidence_rolled_back_and_audited(
    registry: Registry,
) -> None:
    """One registry per deployment (a server start is the slow part), one release story."""
    pushed = refused_until_signed_and_approved(registry)
    v1 = pushed["digest"]
    check_proposal(registry, pushed)
    for role in ("reader", "publisher"):  # only governors move channels
        moved = registry.run(*PROMOTE_V1, role=role, expect=6)
        assert "role" in moved.stderr
    assert registry.json("channels", NAME)["channels"] == []
    first = registry.json(*PROMOTE_V1, role="governor")
    assert (first["action"], first["from_digest"], first["to_digest"]) == ("promote", None, v1)
    v2, back = promote_v2_then_roll_back(registry, v1)
    audit_history(registry, v1, v2, first["log_index"], back)
    assert (
        json.loads(registry.run("proposal", v2, "--channel", "production").stdout)["current"] == v1
    )

    out = registry.home / "production"
    pulled = registry.json("pull", NAME, "--channel", "production", "-o", str(out))
    assert pulled["digest"] == v1 and (out / "model.bin").read_bytes() == weights("v1")
    registry.run("pull", f"{NAME}@v1", "--channel", "production", "-o", str(out), expect=2)


def refused_until_signed_and_approved(registry: Registry) -> Any:
    """``status`` and ``promote`` name every unmet requirement and exit 5 until there is
    a publisher's signature and a governor's approval; what the signed push of v1 said."""
    v1: str = registry.push("v1", signed=False)["digest"]
    status = registry.run("status", f"{NAME}@v1", "--channel", "production", expect=5)
    assert "publisher_signature" in status.stdout and "UNMET" in status.stdout
    assert "cannot be promoted to production: 2 of 2 requirements unmet" in status.stderr
    assert unmet_of(
        registry.json("status", v1, "--channel", "production", expect=5)["requirements"]
    ) == {"publisher_signature", "approvals"}
    refused = registry.run(*PROMOTE_V1, role="governor", expect=5)
    assert "unmet: publisher_signature: no accepted publish/v1 statement" in refused.stderr
    assert "unmet: approvals: 0 of 1 distinct governor approvals" in refused.stderr

    signed = registry.push("v1")  # the same push again, now signed
    assert signed["digest"] == v1 and signed["uploaded_bytes"] == 0
    registry.run("status", f"{NAME}@v1", "--channel", "production", expect=5)  # approvals
    registry.approve(f"{NAME}@v1")
    passed = registry.json("status", f"{NAME}@v1", "--channel", "production")
    assert passed["promotable"] is True and unmet_of(passed["requirements"]) == set()
    assert (
        "may be promoted to production"
        in registry.run("status", v1, "--channel", "production").stderr
    )
    return signed


def check_proposal(registry: Registry, pushed: Any) -> None:
    """The proposal names the verified artifact, where every byte is, its attestations
    and the policy status; the same answers give the same document."""
    done = registry.run("proposal", f"{NAME}@v1", "--channel", "production", role="reader")
    doc = json.loads(done.stdout)
    v1 = pushed["digest"]
    url, blob = registry.server.url, digest_bytes(weights("v1"))
    assert doc["schema"] == "reliquary.proposal.v1"
    assert doc["artifact"] == {
        "name": NAME,
        "version": "v1",
        "kind": "model",
        "digest": v1,
        "sha256": pushed["sha256"],
        "size_bytes": blob.size_bytes,
        "files": 1,
    }
    assert (doc["channel"], doc["current"]) == ("production", None)
    assert doc["download"] == {
        "manifest": f"{url}/v1/artifacts/{v1}",
        "blobs": [f"{url}/v1/blobs/{blob.blake3}"],
    }
    listed = registry.json("attestations", v1)["attestations"]
    assert [a["predicate_type"].rsplit("/", 2)[-2] for a in doc["attestations"]] == [
        "publish",
        "approval",
    ]
    assert doc["attestations"] == [
        {k: a[k] for k in ("predicate_type", "keyid", "envelope_sha256", "log_index")}
        for a in listed
    ]
    assert doc["policy"]["version"] == hashlib.sha256(POLICY).hexdigest()
    assert doc["policy"]["promotable"] is True
    assert unmet_of(doc["policy"]["requirements"]) == set()
    assert datetime.fromisoformat(doc["created_at"])
    assert done.stdout.index('"artifact"') < done.stdout.index('"attestations"')  # sorted
    assert "proposal: production → veid/trust-score@v1" in done.stderr


def promote_v2_then_roll_back(registry: Registry, v1: str) -> tuple[str, int]:
    """v2, and the log index of the rollback that took production back to v1."""
    v2: str = registry.push("v2")["digest"]
    registry.approve(v2)
    second = registry.run(
        "promote", v2, "--channel", "production", "--reason", "better r2", role="governor"
    )
    assert f"{v1} → {v2}" in second.stderr
    back = registry.run(
        "rollback", NAME, "--channel", "production", "--reason", "drift in prod", role="governor"
    )
    assert f"{v2} → {v1}" in back.stderr
    pointers = registry.json("channels", NAME)["channels"]
    assert [(p["channel"], p["digest"]) for p in pointers] == [("production", v1)]
    return v2, int(back.stdout)


def audit_history(registry: Registry, v1: str, v2: str, first: int, back: int) -> None:
    """Every move, newest first, one page at a time, with who, when, why and its index."""
    lines = registry.run("history", NAME, "--channel", "production", "--jsonl", "--limit", "1")
    events = [json.loads(line) for line in lines.stdout.splitlines()]
    assert [(e["action"], e["from"], e["to"], e["reason"]) for e in events] == [
        ("rollback", v2, v1, "drift in prod"),
        ("promote", v1, v2, "better r2"),
        ("promote", None, v1, "first release"),
    ]
    indexes = [e["log_index"] for e in events]
    assert indexes[0] == back and indexes[2] == first
    assert indexes == sorted(indexes, reverse=True) and len(set(indexes)) == 3
    assert all(e["by"] and datetime.fromisoformat(e["at"]) for e in events)
    assert {e["actor"] for e in events} == {f"governor of veid (token {events[0]['by']})"}
    table = registry.run("history", NAME).stdout
    assert "governor of veid" in table  # who did it, as an auditor reads it
    assert "drift in prod" in table and "rollback" in table and str(first) in table
