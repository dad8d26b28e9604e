"""Transparency-log proofs at 10^6 entries against ARCHITECTURE.md §11 (< 5 ms), in one run.

Run: ``.venv/bin/python -m bench.log [--entries 1000000] [--requests 2000] [--budget 15]
[--postgres postgresql://postgres@127.0.0.1:5432/postgres]``

Builds N entries straight into a fresh SQLite database in a temp data dir (and, with
``--postgres``, into a database it creates and drops): schema by ``registry.migrate``, entries
as ``TransparencyLog.append`` writes them (entry 0 the ``policy.changed`` one the server writes
at start, the rest ``artifact.pushed``), every node from ``merkle.completed_nodes``, bulk
inserts in one transaction, ``log_head.size = N``. Then times (ms, seeded random queries:
inclusion ``(index, N)``, consistency ``(m, N)``) ``TransparencyLog`` in-process, cold (fresh
instance per call), warm (one instance, as the server runs) and hot (same query again); the
inclusion proof's node query alone, as the server runs it and as an OR of key pairs; and
HTTP on one keep-alive raw socket to a ``reliquary-server serve`` on 127.0.0.1. Every answer
is verified against the in-memory tree. A figure stops after ``--requests`` calls or
``--budget`` seconds. Processes, temp dir and database are removed at exit, error or not.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import functools
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, TextClause, text
from sqlalchemy.engine import make_url

from bench.harness import HOST, free_port, machine_line, serve, stop_processes
from registry.app import load_log_signer
from registry.core import merkle
from registry.core.canonical import canonical_bytes
from registry.core.checkpoint import Checkpoint, NoteSigner, open_note
from registry.core.policy import parse_policy
from registry.db.engine import make_engine, make_session_factory
from registry.domain.log.repositories import LogRepository
from registry.domain.log.services import TransparencyLog
from registry.migrate import upgrade
from registry.settings import Settings

TARGET_MS = 5.0
BATCH = 50_000
T0 = datetime.datetime(2025, 12, 1, tzinfo=datetime.UTC)
ENTRIES = "log_entries (idx, kind, entry, created_at)"
Query = tuple[int, int]


class Tree:
    """Every perfect subtree's hash in memory: ``levels[level][index]``."""

    def __init__(self) -> None:
        self.levels: list[list[bytes]] = [[]]

    def get(self, level: int, index: int) -> bytes:
        return self.levels[level][index]

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        nodes = merkle.completed_nodes(len(self.levels[0]), leaf, self.get)
        for level, _, digest in nodes:
            if level == len(self.levels):
                self.levels.append([])
            self.levels[level].append(digest)
        return nodes

    def root(self, size: int) -> bytes:
        return merkle.root(size, self.get)


def make_entry(index: int, policy_version: str) -> tuple[str, bytes, datetime.datetime]:
    """One entry as ``TransparencyLog.append`` writes it: kind, canonical bytes, time."""
    when = T0 + datetime.timedelta(seconds=30 * index)
    if index == 0:
        kind, fields = "policy.changed", {"version": policy_version}
    else:
        kind = "artifact.pushed"
        fields = {
            "digest": f"blake3:{os.urandom(32).hex()}",
            "sha256": f"sha256:{os.urandom(32).hex()}",
            "name": f"team-{index % 37}/model-{index % 1009}",
            "version": f"1.{index // 1009}.0",
            "artifact_kind": "model",
        }
    body = {**fields, "index": index, "kind": kind, "time": when.isoformat(timespec="microseconds")}
    # json.dumps(sort_keys) is RFC 8785 for these ASCII keys and values; checked below.
    raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    if index < 1000 and raw != canonical_bytes(body):
        raise RuntimeError(f"entry {index} is not canonical JSON: {raw!r}")
    return kind, raw, when


def insert_batch(conn: Connection, entries: list[tuple[Any, ...]], nodes: list[Any]) -> None:
    if conn.dialect.name == "sqlite":  # SQLAlchemy's SQLite DATETIME text, naive UTC
        stamp = [w.replace(tzinfo=None).isoformat(" ", "microseconds") for *_, w in entries]
        rows = [(*e[:3], t) for e, t in zip(entries, stamp, strict=True)]
        conn.exec_driver_sql(f"INSERT INTO {ENTRIES} VALUES (?, ?, ?, ?)", rows)  # noqa: S608
        conn.exec_driver_sql("INSERT INTO log_nodes (level, idx, hash) VALUES (?, ?, ?)", nodes)
        return
    raw = conn.connection.driver_connection  # psycopg, inside this transaction
    with raw.cursor() as cursor:  # type: ignore[union-attr]
        for table, rows in ((ENTRIES, entries), ("log_nodes", nodes)):
            with cursor.copy(f"COPY {table} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)


def build(engines: dict[str, Engine], n: int, policy_version: str) -> tuple[Tree, list[str]]:
    """Write the same N entries into every engine's database; the tree and timing lines."""
    tree, spent = Tree(), dict.fromkeys(engines, 0.0)
    conns = {name: engine.connect() for name, engine in engines.items()}
    started = time.perf_counter()
    try:
        for conn in conns.values():
            conn.begin()
        for start in range(0, n, BATCH):
            entries: list[tuple[Any, ...]] = []
            nodes: list[tuple[int, int, bytes]] = []
            for index in range(start, min(start + BATCH, n)):
                kind, raw, when = make_entry(index, policy_version)
                entries.append((index, kind, raw, when))
                nodes += tree.append(merkle.leaf_hash(raw))
            for name, conn in conns.items():
                t0 = time.perf_counter()
                insert_batch(conn, entries, nodes)
                spent[name] += time.perf_counter() - t0
        for name, conn in conns.items():
            t0 = time.perf_counter()
            conn.execute(text("UPDATE log_head SET size = :n WHERE id = 1"), {"n": n})
            conn.commit()
            if conn.dialect.name == "postgresql":
                conn.execute(text("ANALYZE log_nodes"))
                conn.commit()
            spent[name] += time.perf_counter() - t0
    finally:
        for conn in conns.values():
            conn.close()
    total, count = time.perf_counter() - started, sum(len(level) for level in tree.levels)
    parts = [f"generate + hash {total - sum(spent.values()):.1f} s"]
    parts += [f"{name} insert + commit {s:.1f} s" for name, s in spent.items()]
    return tree, [f"built {n} entries, {count} nodes in {total:.1f} s: {', '.join(parts)}"]


@dataclass
class Spec:
    """One figure: ``call(a, b)`` on queries from ``pick``, each answer checked by ``verify``."""

    label: str
    pick: Callable[[random.Random], Query]
    call: Callable[[int, int], Any]
    verify: Callable[[int, int, Any], None]
    prepare: Callable[[int, int], object] | None = None  # untimed, before each call
    ms: list[float] = field(default_factory=list)


def sample(spec: Spec, requests: int, budget: float, seed: int) -> Spec:
    """Time ``spec.call`` on seeded random queries; verify each answer outside the timing."""
    rng, deadline = random.Random(seed), time.monotonic() + budget
    for _ in range(requests):
        a, b = spec.pick(rng)
        if spec.prepare is not None:
            spec.prepare(a, b)
        started = time.perf_counter_ns()
        answer = spec.call(a, b)
        spec.ms.append((time.perf_counter_ns() - started) / 1e6)
        spec.verify(a, b, answer)
        if time.monotonic() > deadline:
            break
    print(f"  {spec.label}: {len(spec.ms)}, median {statistics.median(spec.ms):.3f} ms", flush=True)
    return spec


class RawHttp:
    """GETs on one keep-alive socket: a pre-built request, Content-Length bodies only."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def get(self, path: str) -> bytes:
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            if len(buf) > 65536:
                raise RuntimeError(f"GET {path}: header too long")
            buf += self.recv(path)
        head, _, body = buf.partition(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
        if not head.startswith(b"HTTP/1.1 200 ") or length is None:
            raise RuntimeError(f"GET {path}: {head[:200]!r}")
        while len(body) < int(length.group(1)):  # each recv returns data or raises
            body += self.recv(path)
        return body

    def recv(self, path: str) -> bytes:
        data = self.sock.recv(262144)
        if not data:
            raise RuntimeError(f"GET {path}: connection closed")
        return data


def node_plan(index: int, size: int) -> list[tuple[int, int]]:
    """The nodes ``inclusion_proof(index, size)`` reads (sizes decide them, not hashes)."""
    keys: list[tuple[int, int]] = []

    def record(level: int, at: int) -> bytes:
        keys.append((level, at))
        return bytes(32)

    merkle.inclusion_proof(index, size, record)
    return keys


@functools.cache
def or_of_pairs(count: int) -> TextClause:
    """``level = ? AND idx = ?`` pairs joined by OR, built once per key count."""
    pairs = " OR ".join(f"(level = :l{k} AND idx = :i{k})" for k in range(count))
    return text(f"SELECT level, idx, hash FROM log_nodes WHERE {pairs}")  # noqa: S608


class Backend:
    """One database holding the log: in-process, node-query and HTTP figures against it."""

    def __init__(self, name: str, url: str, root: Path, signer: NoteSigner, key: Path) -> None:
        self.name, self.url, self.root, self.signer, self.key = name, url, root, signer, key
        self.engine = make_engine(url)
        self.reads = make_session_factory(self.engine, read_only=True)
        self.writes = make_session_factory(self.engine)
        self.server: subprocess.Popen[bytes] | None = None
        self.tree, self.n, self.roots = Tree(), 0, dict[int, bytes]()

    # -- queries and checks -----------------------------------------------------------
    def inc(self, rng: random.Random) -> Query:
        return rng.randrange(self.n), self.n

    def con(self, rng: random.Random) -> Query:
        return rng.randint(1, self.n - 1), self.n

    def root_of(self, size: int) -> bytes:
        return self.roots[size] if size in self.roots else self.tree.root(size)

    def check_inc(self, index: int, size: int, proof: list[bytes]) -> None:
        merkle.verify_inclusion(index, size, self.tree.levels[0][index], proof, self.root_of(size))

    def check_con(self, old: int, new: int, proof: list[bytes]) -> None:
        merkle.verify_consistency(old, new, self.root_of(old), self.root_of(new), proof)

    def check_nodes(self, index: int, size: int, found: dict[tuple[int, int], bytes]) -> None:
        keys = node_plan(index, size)
        if len(found) != len(keys) or any(found[k] != self.tree.get(*k) for k in keys):
            raise RuntimeError(f"{self.name}: wrong nodes for inclusion {index}/{size}")

    def check_note(self, _a: int, _b: int, note: bytes) -> None:
        cp = Checkpoint.from_body(open_note(note, self.signer.verifier()))
        if (cp.size, cp.root) != (self.n, self.roots[self.n]):
            raise RuntimeError(f"{self.name}: checkpoint {cp.size} is not the built tree")

    def server_nodes(self, index: int, size: int) -> dict[tuple[int, int], bytes]:
        with self.reads() as session:
            return LogRepository(session).nodes(node_plan(index, size))

    def or_nodes(self, index: int, size: int) -> dict[tuple[int, int], bytes]:
        keys = node_plan(index, size)
        params = {f"l{k}": lv for k, (lv, _) in enumerate(keys)}
        params |= {f"i{k}": ix for k, (_, ix) in enumerate(keys)}
        with self.reads() as session:
            rows = session.execute(or_of_pairs(len(keys)), params)
            return {(lv, ix): digest for lv, ix, digest in rows}

    def fresh(self) -> TransparencyLog:
        return TransparencyLog(self.writes, self.reads, self.signer)

    # -- figures ----------------------------------------------------------------------
    def measure(self, tree: Tree, n: int, args: argparse.Namespace) -> list[Spec]:
        self.tree, self.n, self.roots = tree, n, {n: tree.root(n)}
        if self.fresh().root(n) != self.roots[n]:
            raise RuntimeError(f"{self.name}: TransparencyLog.root({n}) is not the built root")
        warm, hot, fresh = self.fresh(), self.fresh(), self.fresh
        pi, pc = f"{self.name}: inclusion, ", f"{self.name}: consistency, "
        inc, con, c_inc, c_con = self.inc, self.con, self.check_inc, self.check_con
        specs = [
            Spec(pi + "in-process cold", inc, lambda a, b: fresh().inclusion_proof(a, b), c_inc),
            Spec(pi + "in-process warm", inc, warm.inclusion_proof, c_inc),
            Spec(pi + "in-process hot", inc, hot.inclusion_proof, c_inc, hot.inclusion_proof),
            Spec(pc + "in-process cold", con, lambda a, b: fresh().consistency_proof(a, b), c_con),
            Spec(pc + "in-process warm", con, warm.consistency_proof, c_con),
            Spec(pc + "in-process hot", con, hot.consistency_proof, c_con, hot.consistency_proof),
            Spec(pi + "its nodes: LogRepository.nodes", inc, self.server_nodes, self.check_nodes),
            Spec(pi + "its nodes: OR of pairs, text()", inc, self.or_nodes, self.check_nodes),
        ]
        done = [sample(s, args.requests, args.budget, args.seed) for s in specs]
        return done + self.http(args)

    def http(self, args: argparse.Namespace) -> list[Spec]:
        port, log = free_port(), self.root / f"server-{self.name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELIQUARY_")} | {
            "RELIQUARY_DATA_DIR": str(self.root / "data"),
            "RELIQUARY_DATABASE_URL": self.url,
            "RELIQUARY_LOG_KEY_FILE": str(self.key),
        }
        self.server = serve(env, port, log, ready_s=120)
        client, pre = RawHttp(port), f"{self.name}: "

        def hashes(check: Callable[[int, int, list[bytes]], None]) -> Callable[..., None]:
            def verify(a: int, b: int, body: bytes) -> None:
                check(a, b, [base64.b64decode(h) for h in json.loads(body)["hashes"]])

            return verify

        def inclusion(a: int, b: int) -> bytes:
            return client.get(f"/v1/log/proof/inclusion?index={a}&size={b}")

        def consistency(a: int, b: int) -> bytes:
            return client.get(f"/v1/log/proof/consistency?from={a}&to={b}")

        def checkpoint(_a: int, _b: int) -> bytes:
            return client.get("/v1/log/checkpoint")

        try:
            warm_up = Spec(pre + "HTTP warm-up", self.inc, inclusion, hashes(self.check_inc))
            sample(warm_up, 10, args.budget, args.seed + 1)
            specs = [
                Spec(pre + "inclusion, HTTP", self.inc, inclusion, hashes(self.check_inc)),
                Spec(pre + "consistency, HTTP", self.con, consistency, hashes(self.check_con)),
                Spec(pre + "checkpoint, HTTP", lambda _: (0, 0), checkpoint, self.check_note),
            ]
            return [sample(s, args.requests, args.budget, args.seed) for s in specs]
        finally:
            client.sock.close()
            self.stop()

    def stop(self) -> None:
        if self.server is not None:
            stop_processes([self.server])
        self.engine.dispose()


def report(specs: list[Spec], header: list[str]) -> None:
    print("\n" + "\n".join(header) + "\n")
    line = "{:<52} {:>5} {:>8} {:>8} {:>17} {:>6} {:>7}"
    print(line.format("figure (ms)", "n", "median", "p99", "min-max", "target", "verdict"))
    for spec in specs:
        ms, med = spec.ms, statistics.median(spec.ms)
        p99 = statistics.quantiles(ms, n=100, method="inclusive")[98] if len(ms) > 1 else ms[0]
        target = ": inclusion, " in spec.label and "its nodes" not in spec.label  # §11's figure
        goal, verdict = ("< 5", "meets" if med < TARGET_MS else "MISSES") if target else "--"
        cells = (f"{med:.3f}", f"{p99:.3f}", f"{min(ms):.3f}-{max(ms):.3f}", goal, verdict)
        print(line.format(spec.label, len(ms), *cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.log",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--entries", type=int, default=1_000_000, help="log size N [10^6]")
    parser.add_argument("--requests", type=int, default=2000, help="calls per figure [2000]")
    parser.add_argument("--budget", type=float, default=15.0, help="seconds per figure [15]")
    parser.add_argument("--seed", type=int, default=1, help="query sequence [1]")
    parser.add_argument("--postgres", default=None, help="also measure a database made here")
    parser.add_argument("--dir", type=Path, default=None, help="parent of the temp dir [$TMPDIR]")
    args = parser.parse_args(argv)
    if not (2 <= args.entries <= 10**8 and 2 <= args.requests <= 10**6 and args.budget > 0):
        parser.error("--entries must be 2..10^8, --requests 2..10^6, --budget > 0")

    def on_term(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    root = Path(tempfile.mkdtemp(prefix="reliquary-bench-log-", dir=args.dir))
    backends: list[Backend] = []
    admin: Engine | None = None
    pg_name = f"reliquary_bench_log_{os.getpid()}"
    try:
        key = root / "log-key.pem"
        env = {"RELIQUARY_DATA_DIR": str(root / "data"), "RELIQUARY_LOG_KEY_FILE": str(key)}
        signer = load_log_signer(Settings.from_env(env))  # embedded: creates the key
        backends.append(
            Backend("sqlite", f"sqlite:///{root / 'data' / 'registry.db'}", root, signer, key)
        )
        if args.postgres:
            engine = make_engine(args.postgres).execution_options(isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{pg_name}"'))
            admin = engine  # from here on, drop it at the end
            url = make_url(args.postgres).set(database=pg_name)
            backends.append(
                Backend("postgres", url.render_as_string(hide_password=False), root, signer, key)
            )
        for backend in backends:
            upgrade(backend.engine)
        print(f"building {args.entries} entries in {root} ...", flush=True)
        version = parse_policy(b"").version
        tree, built = build({b.name: b.engine for b in backends}, args.entries, version)
        print("\n".join(built), flush=True)
        rows: list[Spec] = []
        for backend in backends:
            print(f"measuring {backend.name} ...", flush=True)
            rows += backend.measure(tree, args.entries, args)
        header = [
            f"Reliquary transparency-log benchmark, {datetime.date.today().isoformat()}",
            f"machine: {machine_line(root)}, SQLite {sqlite3.sqlite_version}",
            f"log of {args.entries} entries; inclusion (random index, size N), consistency "
            f"(random m, N); up to {args.requests} calls or {args.budget:g} s per figure; "
            "every answer verified",
            *built,
        ]
        report(rows, header)
    finally:
        for backend in backends:
            backend.stop()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
            admin.dispose()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
