"""The benchmark harness: the servers under test and the plumbing every benchmark shares.

Each ``bench.<name>`` module imports this one and no other benchmark. Invariants:
only 127.0.0.1 is used (``HOST``, ports from ``free_port``); a server is returned only
once it answers its readiness URL, and a server that never does is stopped before the
error is raised; ``Servers.stop`` (or ``stop_processes``) ends every process started,
so a benchmark's ``finally`` leaves nothing running. Sizes on the command line are read
by ``registry.core.quantity``, as the registry reads its own settings.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import httpx

from registry.core.quantity import parse_size

HOST = "127.0.0.1"
BIN = Path(sys.executable).parent  # reliquary, reliquary-server, reliquary-worker


def size_argument(text: str) -> int:
    """An argparse ``type``: a byte size such as ``64MiB`` (``parse_size``'s spellings)."""
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def machine_line(data_dir: Path) -> str:
    """CPU model, cores, kernel, Python and the filesystem ``data_dir`` is on."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    mount = ["findmnt", "-no", "FSTYPE,SOURCE", "-T", str(data_dir)]
    fs = subprocess.run(mount, capture_output=True, text=True, check=False).stdout.split()
    return (
        f"{model.group(1) if model else 'unknown CPU'}, nproc {os.cpu_count()}, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"data dir on {' '.join(fs) or '?'}"
    )


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    """Return once ``url`` answers 200.

    Raises:
        RuntimeError: ``proc`` exited or ``timeout_s`` passed first (with its log's tail).
    """
    deadline = time.monotonic() + timeout_s
    with httpx.Client(trust_env=False, timeout=2.0) as client:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise RuntimeError(f"{url} did not become ready in {timeout_s:.0f} s:\n{tail}")


def stop_processes(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process still running, then wait for each (killed after 15 s)."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def serve(
    env: Mapping[str, str], port: int, log: Path, *, workers: int = 1, ready_s: float = 60
) -> subprocess.Popen[bytes]:
    """``reliquary-server serve`` on ``HOST:port`` (output to ``log``), ready to answer.

    Raises:
        RuntimeError: it did not answer ``/readyz`` within ``ready_s`` (it is stopped).
    """
    cmd = [str(BIN / "reliquary-server"), "serve", "--host", HOST, "--port", str(port)]
    cmd += ["--log-level", "warning"]
    cmd += ["--workers", str(workers)] if workers > 1 else []
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=dict(env), stdout=out, stderr=out)
    try:
        wait_ready(f"http://{HOST}:{port}/readyz", proc, log, ready_s)
    except BaseException:
        stop_processes([proc])
        raise
    return proc


def raw_heads(port: int, path: str, headers: dict[str, str], count: int) -> list[float]:
    """HEAD latencies (ms) from a bare keep-alive socket: the client costs a few µs."""
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = f"HEAD {path} HTTP/1.1\r\nHost: {HOST}\r\n{lines}\r\n".encode()
    latencies: list[float] = []
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(count):
            started = time.perf_counter_ns()
            sock.sendall(request)
            answer = b""
            while b"\r\n\r\n" not in answer and len(answer) < 65536:
                data = sock.recv(65536)
                if not data:
                    raise RuntimeError(f"HEAD {path}: connection closed")
                answer += data
            latencies.append((time.perf_counter_ns() - started) / 1e6)
            if not answer.startswith(b"HTTP/1.1 200 "):
                raise RuntimeError(f"HEAD {path}: {answer[:300]!r}")
    return latencies


def reset_postgres(url: str) -> None:
    """Drop every table so that ``db upgrade`` builds a fresh schema."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


class Servers:
    """What a benchmark runs against, in one temp dir ``root``: a ``reliquary-server``
    (data dir ``root/data``, an admin token), and the peers beside it: nginx serving
    ``root/data`` and CNCF Distribution (``docker-registry``) with its own storage.

    ``backend_env`` (``RELIQUARY_*``) picks PostgreSQL, S3 or a policy; with a database
    URL the registry gets an operator-made log key, as production does.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"  # registry data dir: SQLite + blob files; nginx's root
        self.data.mkdir(parents=True, exist_ok=True)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.auth_file = root / "auth.headers"  # curl -H @file: the admin token
        self.token = ""
        self.port = self.nginx_port = self.pid = self.nginx_pid = 0
        self.dist_port = self.dist_pid = 0
        self.backend_env: dict[str, str] = {}

    @property
    def env(self) -> dict[str, str]:
        """The registry's environment: ours, its data dir, ``backend_env``."""
        env = os.environ | {"RELIQUARY_DATA_DIR": str(self.data)} | self.backend_env
        if "RELIQUARY_DATABASE_URL" in env:  # production-shaped: the operator's log key
            env["RELIQUARY_LOG_KEY_FILE"] = str(self.root / "log-key.pem")
        return env

    def server_command(self, *args: str) -> str:
        """Run a ``reliquary-server`` admin command on this registry; its stdout."""
        done = subprocess.run(
            [str(BIN / "reliquary-server"), *args],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout.strip()

    def start_server(self, workers: int = 1) -> None:
        """Migrate, create an admin token (``token``, ``auth_file``), serve on ``port``."""
        if "RELIQUARY_DATABASE_URL" in self.env:
            self.server_command("log-key", "create")
        self.server_command("db", "upgrade")
        self.token = self.server_command("token", "create", "--role", "admin")
        self.auth_file.write_text(f"Authorization: Bearer {self.token}\n")
        self.auth_file.chmod(0o600)
        self.port = free_port()
        proc = serve(self.env, self.port, self.root / "server.log", workers=workers)
        self.procs.append(proc)
        self.pid = proc.pid

    def start_nginx(self) -> None:
        self.nginx_port, conf, log = free_port(), self.root / "nginx.conf", self.root / "nginx.log"
        temps = "".join(f"{k}_temp_path {self.root}/{k};" for k in ("client_body", "proxy"))
        temps += "".join(f"{k}_temp_path {self.root}/{k};" for k in ("fastcgi", "uwsgi", "scgi"))
        conf.write_text(
            ("user root;\n" if os.geteuid() == 0 else "")
            + f"daemon off; master_process off; worker_processes 1; pid {self.root}/nginx.pid;\n"
            "events { worker_connections 1024; }\n"
            "http { access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;\n"
            f"  default_type application/octet-stream; {temps}\n"
            f"  server {{ listen {HOST}:{self.nginx_port}; root {self.data}; }} }}\n"
        )
        cmd = ["nginx", "-p", str(self.root), "-c", str(conf), "-e", str(log)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        self.nginx_pid = proc.pid
        (self.data / "ping").write_text("ok")
        wait_ready(f"http://{HOST}:{self.nginx_port}/ping", proc, log, 20)

    def start_distribution(self) -> None:
        """CNCF Distribution as a plain process on loopback, its own config and storage."""
        self.dist_port, conf, log = (
            free_port(),
            self.root / "distribution.yml",
            self.root / "dist.log",
        )
        storage = self.root / "distribution"
        conf.write_text(
            "version: 0.1\n"
            "log: {level: error, accesslog: {disabled: true}}\n"
            f"storage: {{filesystem: {{rootdirectory: {storage}}}, cache: {{blobdescriptor: inmemory}}}}\n"
            f"http: {{addr: '{HOST}:{self.dist_port}'}}\n"
        )
        with log.open("wb") as out:
            proc = subprocess.Popen(["docker-registry", "serve", str(conf)], stdout=out, stderr=out)
        self.procs.append(proc)
        self.dist_pid = proc.pid
        wait_ready(f"http://{HOST}:{self.dist_port}/v2/", proc, log, 30)

    def forget_distribution_blob(self, sha256_hex: str) -> None:
        """Free the disk: Distribution has no delete by default, so remove its files."""
        data = self.root / "distribution" / "docker/registry/v2/blobs/sha256" / sha256_hex[:2]
        shutil.rmtree(data / sha256_hex, ignore_errors=True)

    def stop(self) -> None:
        stop_processes(self.procs)
