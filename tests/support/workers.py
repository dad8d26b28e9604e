"""A registry process with a reproducibility policy and workers as real processes, as
the worker tests drive them (the ``start_registry`` fixture is in tests/workers/conftest.py)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from registry.core.predicates import REPRODUCIBILITY
from tests.support.content import NAME
from tests.support.server import CLI, ServerProcess, run_cli

WORKER = str(Path(sys.executable).parent / "reliquary-worker")
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Registry:
    server: ServerProcess
    home: Path
    tokens: dict[str, str]
    publisher_key: Path
    workers: list[subprocess.Popen[str]] = field(default_factory=list)

    def env(self, role: str) -> dict[str, str]:
        return {
            **os.environ,
            "RELIQUARY_URL": self.server.url,
            "RELIQUARY_TOKEN": self.tokens[role],
            "RELIQUARY_CACHE": str(self.home / f"cache-{role}"),
            "RELIQUARY_CONFIG": str(self.home / "config.toml"),
        }

    def cli(self, *args: str, role: str = "publisher", expect: int = 0) -> str:
        done = subprocess.run(
            [CLI, *args], env=self.env(role), capture_output=True, text=True, timeout=300
        )
        assert done.returncode == expect, (
            f"reliquary {' '.join(args)} -> {done.returncode}, expected {expect}\n{done.stderr}"
        )
        return done.stdout + done.stderr

    def api(self, path: str, role: str = "admin") -> Any:
        r = httpx.get(
            self.server.url + path,
            headers={"authorization": f"Bearer {self.tokens[role]}"},
            timeout=30,
        )
        r.raise_for_status()
        return r.json() if "json" in r.headers.get("content-type", "") else r.text

    def profile_state(self, digest: str) -> dict[str, Any]:
        """The one reproducibility profile in ``digest``'s production status."""
        status = self.api(f"/v1/artifacts/{digest}/status?channel=production")
        [state] = status["verification"]
        return dict(state)

    def reproducibility_predicates(self, digest: str) -> list[dict[str, Any]]:
        """The predicates of ``digest``'s reproducibility/v1 attestations, as listed."""
        listed = self.api(f"/v1/artifacts/{digest}/attestations")["attestations"]
        out = []
        for a in listed:
            if a["predicate_type"] == REPRODUCIBILITY:
                statement = json.loads(base64.b64decode(a["envelope"]["payload"]))
                out.append(statement["predicate"])
        return out

    def push_model(self, source: Path, version: str, engine: str) -> str:
        """Push ``source/reference-inputs`` then ``source/model`` (signed); the model digest."""
        self.cli(
            "push",
            str(source / "reference-inputs"),
            "--kind",
            "reference-inputs",
            "--name",
            "veid/trust-score-inputs",
            "--version",
            version,
        )
        out = self.cli(
            "push",
            str(source / "model"),
            "--name",
            NAME,
            "--version",
            version,
            "--engine",
            engine,
            "--reference-inputs",
            f"veid/trust-score-inputs@{version}",
            "--sign-key",
            str(self.publisher_key),
            "--json",
        )
        digest: str = json.loads(out.splitlines()[0])["digest"]
        return digest

    def worker(self, *args: str, profile: str = "cpu-tensorflow") -> subprocess.Popen[str]:
        """Start a worker with a new registered key and its own worker token."""
        n = len(self.workers)
        key = self.home / f"worker-{n}.pem"
        self.cli("keys", "generate", "--out", str(key))
        self.cli(
            "keys", "register", str(key.with_suffix(".pub.pem")), "--role", "worker", role="admin"
        )
        token = run_cli(self.server.env, "token", "create", "--role", "worker").strip()
        env = {
            **self.env("admin"),
            "RELIQUARY_TOKEN": token,
            "RELIQUARY_CACHE": str(self.home / f"worker-cache-{n}"),
        }
        log = (self.home / f"worker-{n}.log").open("w")
        proc = subprocess.Popen(
            [WORKER, "run", "--profile", profile, "--key", str(key), "--poll", "0.5", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
        )
        self.workers.append(proc)
        return proc

    def log_of(self, n: int) -> str:
        return (self.home / f"worker-{n}.log").read_text()

    def jobs(self, digest: str) -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = self.api(f"/v1/artifacts/{digest}/jobs")
        return jobs

    def wait_for(self, what: Callable[[], bool], timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while not what():
            if time.monotonic() > deadline:
                logs = "\n".join(self.log_of(i)[-3000:] for i in range(len(self.workers)))
                raise AssertionError(f"timed out; worker logs:\n{logs}")
            time.sleep(0.5)


def build_example(script: str, out: Path, *args: str) -> Path:
    subprocess.run(
        [sys.executable, str(REPO / "examples" / script), str(out), *args],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out
