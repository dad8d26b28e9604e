"""Job claim and attestation accept latency with concurrent workers, and what a worker's
verification costs over the bare inference it wraps.

Run: ``.venv/bin/python -m bench.jobs [--workers 8] [--jobs 400] [--postgres URL] [--inference]``

Claims: a real ``reliquary-server`` whose policy wants one cpu-tensorflow worker per
artifact; ``--jobs`` small artifacts are pushed (one job each); ``--workers`` worker
processes, each with its own registered key and token, loop ``POST /v1/jobs/claim`` ->
``POST /v1/jobs/{id}/complete`` (a signed reproducibility/v1 statement, verified by the
registry like any attestation) until the queue is empty. Each request is timed from a
keep-alive ``http.client`` connection (a few µs of client work); signing happens
outside the timed interval. The target (ARCHITECTURE §11) is p99 < 20 ms.

``--inference``: the trust-score example model verified by a real ``reliquary-worker``
(3 runs, each a fresh process) against the bare inference it wraps: a fresh process
that imports TensorFlow, loads the SavedModel and runs the reference inputs once, with
no determinism controls. Ratio = worker wall time per job / (runs x bare run).

Only 127.0.0.1 is used; processes and the temp dir are removed at exit.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import BIN, HOST, Servers, machine_line, reset_postgres
from registry.core import intoto
from registry.core.canonical import canonical_bytes
from registry.core.digest import Digest, digest_bytes
from registry.core.dsse import sign_envelope
from registry.core.keys import SigningKey
from registry.core.predicates import Engine, Host, ReproducibilityPredicate, Run

POLICY = (
    b'[channels.production]\nreproducibility = [{ profile = "cpu-tensorflow", min_workers = 1 }]\n'
)
REPO = Path(__file__).resolve().parents[1]
Identity = tuple[str, str, Any, str]  # name, version, manifest digests, reference inputs


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Conn:
    """One keep-alive connection; ``call`` returns (status, body, milliseconds)."""

    def __init__(self, port: int, token: str) -> None:
        self.http = http.client.HTTPConnection(HOST, port, timeout=30)
        self.headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes, float]:
        started = time.perf_counter_ns()
        self.http.request(method, path, body=body, headers=self.headers)
        response = self.http.getresponse()
        data = response.read()
        return response.status, data, (time.perf_counter_ns() - started) / 1e6


def registry(root: Path, database_url: str | None) -> Servers:
    """A registry in ``root`` whose policy wants one cpu-tensorflow worker per artifact."""
    servers = Servers(root)
    (root / "policy.toml").write_bytes(POLICY)
    servers.backend_env["RELIQUARY_POLICY_FILE"] = str(root / "policy.toml")
    if database_url:
        servers.backend_env["RELIQUARY_DATABASE_URL"] = database_url
    return servers


def push_artifacts(conn: Conn, count: int, tag: str) -> dict[str, Identity]:
    """``count`` one-blob artifacts whose engine the policy verifies, all naming one
    reference-inputs artifact (pushed first); digest -> identity."""
    inputs = str(push_one(conn, tag, "inputs", "reference-inputs", None)[2].blake3)
    pushed: dict[str, Identity] = {}
    for i in range(count):
        name, version, digests = push_one(conn, tag, str(i), "model", inputs)
        pushed[str(digests.blake3)] = (name, version, digests, inputs)
    return pushed


def push_one(
    conn: Conn, tag: str, what: str, kind: str, inputs: str | None
) -> tuple[str, str, Any]:
    """A one-blob artifact; (name, version, manifest digests)."""
    blob = f"{tag} {kind} {what}".encode()
    blob_digests = digest_bytes(blob)
    status, _, _ = conn.call("PUT", f"/v1/blobs/{blob_digests.blake3}", blob)
    assert status in (200, 201), status
    name, version = f"bench/{kind}", f"{tag}-{what}"
    document: dict[str, Any] = {
        "schema": "reliquary.manifest.v1",
        "kind": kind,
        "name": name,
        "version": version,
        "files": [
            {
                "path": "data.bin",
                "size": len(blob),
                "blake3": blob_digests.blake3.hex,
                "sha256": blob_digests.sha256.hex,
            }
        ],
    }
    if inputs is not None:  # a model the policy verifies, on these inputs
        document["runtime"] = {"engine": "tensorflow-savedmodel"}
        document["reference"] = {"inputs": inputs}
    manifest = canonical_bytes(document)
    status, body, _ = conn.call("PUT", "/v1/artifacts", manifest)
    assert status == 201, body
    return name, version, digest_bytes(manifest)


def statement(key: SigningKey, identity: Identity) -> bytes:
    name, version, digests, inputs = identity
    out = Digest.blake3("ab" * 32)
    predicate = ReproducibilityPredicate(
        profile="cpu-tensorflow",
        engine=Engine("tensorflow", "bench"),
        device="cpu",
        host=Host(cpu="bench", os="bench", python="3"),
        determinism={},
        inputs=Digest.parse(inputs),
        runs=(Run(out, 0.0),) * 3,
        output=out,
        agree=True,
        worker=key.public.keyid,
        timings={},
    )
    stmt = intoto.statement_for(name, version, digests, predicate)
    return sign_envelope(stmt.to_payload(), key).to_json()


def work(
    args: tuple[int, str, bytes, dict[str, Identity], float],
) -> tuple[list[float], list[float]]:
    port, token, key_pem, pushed, think_ms = args
    rng = random.Random(token)
    time.sleep(rng.uniform(0, think_ms / 1000))  # workers do not start in step
    key = SigningKey.from_pem(key_pem)
    conn = Conn(port, token)
    claims: list[float] = []
    completes: list[float] = []
    body = json.dumps({"profiles": ["cpu-tensorflow"], "worker": "bench"}).encode()
    while True:
        status, answer, ms = conn.call("POST", "/v1/jobs/claim", body)
        claims.append(ms)
        if status == 204:
            return claims, completes
        assert status == 200, answer
        job = json.loads(answer)
        envelope = statement(key, pushed[job["artifact"]])
        status, answer, ms = conn.call("POST", f"/v1/jobs/{job['id']}/complete", envelope)
        assert status == 200, answer
        completes.append(ms)
        if think_ms:  # a real worker spends seconds on inference between requests
            time.sleep(rng.uniform(0.5, 1.5) * think_ms / 1000)


def bench_claims(
    root: Path, workers: int, jobs: int, database_url: str | None, think_ms: float
) -> dict[str, Any]:
    server = registry(root, database_url)
    try:
        server.start_server()
        admin = Conn(server.port, server.token)
        pushed = push_artifacts(admin, jobs, f"{time.time_ns()}")
        tasks = []
        for _ in range(workers):
            key = SigningKey.generate()
            reg = json.dumps(
                {"public_key": key.public.to_pem().decode(), "role": "worker"}
            ).encode()
            assert admin.call("POST", "/v1/keys", reg)[0] == 201
            tasks.append(
                (
                    server.port,
                    server.server_command("token", "create", "--role", "worker"),
                    key.to_pem(),
                    pushed,
                    think_ms,
                )
            )
        started = time.monotonic()
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            results = pool.map(work, tasks)
        elapsed = time.monotonic() - started
    finally:
        server.stop()
    claims = [ms for c, _ in results for ms in c]
    completes = [ms for _, c in results for ms in c]
    assert len(completes) == jobs, f"{len(completes)} of {jobs} jobs completed"
    return {"claims": claims, "completes": completes, "jobs_per_s": jobs / elapsed}


def bare_inference(model: Path, inputs: Path) -> float:
    script = (
        "import os,sys,time; os.environ['CUDA_VISIBLE_DEVICES']=''; os.environ['TF_CPP_MIN_LOG_LEVEL']='2'\n"
        "import numpy as np, tensorflow as tf\n"
        "m = tf.saved_model.load(sys.argv[1]); f = m.signatures['serving_default']\n"
        "f(features=tf.constant(np.load(sys.argv[2] + '/features.npy')))\n"
    )
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-c", script, str(model), str(inputs)], check=True, capture_output=True
    )
    return time.monotonic() - started


def bench_inference(root: Path, rounds: int) -> dict[str, Any]:
    subprocess.run(
        [sys.executable, str(REPO / "examples" / "trust_score.py"), str(root / "ts")],
        check=True,
        capture_output=True,
    )
    (root / "srv").mkdir(parents=True)
    server = registry(root / "srv", None)
    try:
        server.start_server()
        env = os.environ | {
            "RELIQUARY_URL": f"http://{HOST}:{server.port}",
            "RELIQUARY_TOKEN": server.token,
            "RELIQUARY_CACHE": str(root / "cache"),
        }

        def cli(*args: str) -> str:
            return subprocess.run(
                [str(BIN / "reliquary"), *args], env=env, check=True, capture_output=True, text=True
            ).stdout

        cli("keys", "generate", "--out", str(root / "pub.pem"))
        cli("keys", "register", str(root / "pub.pub.pem"), "--role", "publisher")
        cli("keys", "generate", "--out", str(root / "worker.pem"))
        cli("keys", "register", str(root / "worker.pub.pem"), "--role", "worker")
        cli(
            "push",
            str(root / "ts" / "reference-inputs"),
            "--kind",
            "reference-inputs",
            "--name",
            "bench/inputs",
            "--version",
            "v1",
        )
        worker_env = env | {
            "RELIQUARY_TOKEN": server.server_command("token", "create", "--role", "worker")
        }
        walls, bares = [], []
        for i in range(rounds):
            bares.append(bare_inference(root / "ts" / "model", root / "ts" / "reference-inputs"))
            cli(
                "push",
                str(root / "ts" / "model"),
                "--name",
                "bench/trust-score",
                "--version",
                f"v{i}",
                "--label",
                f"round={i}",
                "--engine",
                "tensorflow-savedmodel",
                "--reference-inputs",
                "bench/inputs@v1",
                "--sign-key",
                str(root / "pub.pem"),
            )
            started = time.monotonic()
            subprocess.run(
                [
                    str(BIN / "reliquary-worker"),
                    "run",
                    "--profile",
                    "cpu-tensorflow",
                    "--key",
                    str(root / "worker.pem"),
                    "--once",
                    "--runs",
                    "3",
                    "--work-dir",
                    str(root / "work"),
                ],
                env=worker_env,
                check=True,
                capture_output=True,
                cwd=REPO,
            )
            walls.append(time.monotonic() - started)
    finally:
        server.stop()
    return {"walls": walls, "bares": bares}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument(
        "--postgres", help="also run against this PostgreSQL URL (its tables are reset)"
    )
    parser.add_argument("--inference", action="store_true", help="worker vs bare inference")
    parser.add_argument(
        "--think-ms",
        type=float,
        default=(0.0, 1000.0),
        nargs="+",
        help="pause between a worker's jobs, ms (each value is one run) [0 1000]",
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="reliquary-bench-jobs-") as tmp:
        root = Path(tmp)
        print(machine_line(root))
        print(f"{'figure (ms)':52} {'p50':>8} {'p99':>8} {'max':>8}   target")
        backends = [("SQLite", None)] + ([("PostgreSQL", args.postgres)] if args.postgres else [])
        for (label, url), think in ((b, t) for b in backends for t in args.think_ms):
            where = root / f"{label}-{think:g}"
            where.mkdir()
            if url:
                reset_postgres(url)
            got = bench_claims(where, args.workers, args.jobs, url, think)
            mode = f"{label} {args.workers}w pause {think:g}ms"
            for what, values in (
                ("claim", got["claims"]),
                ("complete (attestation accept)", got["completes"]),
            ):
                print(
                    f"{mode + ': ' + what:52} {statistics.median(values):8.2f} "
                    f"{percentile(values, 99):8.2f} {max(values):8.2f}   p99 < 20 ms "
                    f"{'meets' if percentile(values, 99) < 20 else 'MISSES'}"
                )
            print(f"{mode + ': throughput':52} {got['jobs_per_s']:8.1f} jobs/s")
        if args.inference:
            got = bench_inference(root / "inference", args.rounds)
            wall, bare = statistics.median(got["walls"]), statistics.median(got["bares"])
            print(
                f"{'bare inference, fresh process (s)':44} {bare:8.2f}  "
                f"min-max {min(got['bares']):.2f}-{max(got['bares']):.2f}"
            )
            print(
                f"{'worker job, 3 runs, claim->attested (s)':44} {wall:8.2f}  "
                f"min-max {min(got['walls']):.2f}-{max(got['walls']):.2f}"
            )
            print(f"{'worker / (3 x bare)':44} {wall / (3 * bare):8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
