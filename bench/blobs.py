"""Blob push / pull / HEAD next to the machine's limits, in one run.

Run: ``.venv/bin/python -m bench.blobs [--size 1GiB] [--rounds 3] [--head-requests 2000]``

Each round measures every figure next to its reference, flipping the order of each
A/B pair from one round to the next so that drift cancels; ratios are paired per
round. MB = 10^6 bytes. CPU columns are % of one core over the timed interval.

- write limit: ``dd if=<random file, in page cache> of=<data dir> bs=4M conv=fsync``.
- push: ``curl -T`` (PUT) to a real ``reliquary-server``; curl's ``time_total`` (first
  byte sent to 201 received: both digests and the fsync). The file's first bytes
  change every round, so every push stores new content.
- read limits: nginx (sendfile, one worker) serving the very file the registry
  stored, pulled with ``curl -o /dev/null``; and ``dd of=/dev/null`` of that file.
- pull: ``curl -o /dev/null`` of ``GET /v1/blobs/<digest>``. Both pulls read the page
  cache (the blob was just written).
- HEAD: sequential requests on one keep-alive connection, p50/p99 in ms, client time
  included: from a raw socket (a few µs of client work) and from ``httpx.Client``.
- peer: CNCF Distribution (Debian ``docker-registry``, filesystem storage in the same
  temp dir, no auth, access log off) through the OCI API: monolithic push
  (``POST /v2/bench/blobs/uploads/`` then ``curl -T`` PUT ``?digest=sha256:…``; the
  server hashes and verifies), ``curl`` GET and raw-socket HEAD of the blob.

Only 127.0.0.1 is used; processes and the temp dir are removed at exit, error or not.
"""

from __future__ import annotations

import argparse
import datetime
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import blake3
import httpx

from bench.harness import (
    HOST,
    Servers,
    free_port,
    machine_line,
    raw_heads,
    reset_postgres,
    size_argument,
)

CHUNK = 4 * 2**20
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    value: float
    client_cpu: float | None = None  # fraction of one core
    server_cpu: float | None = None


@dataclass
class Figure:
    label: str
    unit: str
    samples: list[Sample] = field(default_factory=list)


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime of all threads


def own_cpu() -> float:
    """CPU seconds of this process and its finished children (curl, dd)."""
    me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def httpx_heads(port: int, path: str, headers: dict[str, str], count: int) -> list[float]:
    latencies: list[float] = []
    with httpx.Client(trust_env=False, timeout=10.0, headers=headers) as client:
        for _ in range(count):
            started = time.perf_counter_ns()
            response = client.head(f"http://{HOST}:{port}{path}")
            latencies.append((time.perf_counter_ns() - started) / 1e6)
            if response.status_code != 200:
                raise RuntimeError(f"HEAD {path}: HTTP {response.status_code}")
    return latencies


class BlobBench(Servers):
    """The servers, a ``size``-byte source file in the page cache, and the timed steps."""

    def __init__(self, root: Path, size: int) -> None:
        super().__init__(root)
        self.size = size
        self.src = root / "src.bin"  # random content, kept in the page cache

    def prepare(self) -> None:
        with self.src.open("wb") as out:
            remaining = self.size
            while remaining > 0:
                remaining -= out.write(os.urandom(min(CHUNK, remaining)))

    def new_content(self) -> tuple[str, str]:
        """Change the file's first bytes in place (it stays cached); (blake3, sha256) hex."""
        with self.src.open("r+b") as f:
            f.write(os.urandom(min(32, self.size)))
        hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
        hasher.update_mmap(str(self.src))
        sha = subprocess.run(
            ["openssl", "dgst", "-sha256", "-r", str(self.src)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()[0]
        return str(hasher.hexdigest()), sha

    def stored_path(self, hexdigest: str) -> str:
        """The registry's file for a blob, as a URL path under nginx's root (with the S3
        backend, a copy of the pushed bytes: the read limit of this machine's disk)."""
        if self.backend_env.get("RELIQUARY_STORAGE") == "s3":
            shutil.copyfile(self.src, self.data / "pushed.bin")
            return "/pushed.bin"
        found = [p for p in self.data.glob(f"**/{hexdigest}") if p.stat().st_size == self.size]
        if len(found) != 1:
            raise RuntimeError(f"expected one stored file for {hexdigest}, found {found}")
        return "/" + str(found[0].relative_to(self.data))

    def timed(self, run: Callable[[], float | None], server_pid: int | None) -> Sample:
        """Run once; ``run`` returns its own elapsed seconds, or None to use wall time."""
        os.sync()  # nothing an earlier step left dirty gets flushed inside this one
        server0 = proc_cpu(server_pid) if server_pid else 0.0
        client0, started = own_cpu(), time.perf_counter()
        elapsed = run()
        wall = time.perf_counter() - started
        client = (own_cpu() - client0) / wall
        server = (proc_cpu(server_pid) - server0) / wall if server_pid else None
        return Sample(self.size / (elapsed or wall) / 1e6, client, server)

    def dd(self, src: Path | str, dst: Path | str, *extra: str) -> None:
        cmd = ["dd", f"if={src}", f"of={dst}", "bs=4M", *extra]
        subprocess.run(cmd, check=True, capture_output=True, timeout=900)

    def curl(self, *args: str, expect: str) -> float:
        cmd = ["curl", "-sS", "--noproxy", "*", "-o", "/dev/null", "-H", "Expect:"]
        cmd += ["-w", "%{http_code} %{size_download} %{time_total}", *args]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=900)
        status, downloaded, total = out.stdout.split()
        if status != expect or (args[0] != "-T" and int(downloaded) != self.size):
            raise RuntimeError(f"curl {args[-1]}: HTTP {status}, {downloaded} bytes")
        return float(total)

    def write_limit(self) -> tuple[Sample]:
        dst = self.data / "dd-write.bin"
        sample = self.timed(lambda: self.dd(self.src, dst, "conv=fsync"), None)
        dst.unlink()
        return (sample,)

    def push(self, hexdigest: str) -> tuple[Sample]:
        url = f"http://{HOST}:{self.port}/v1/blobs/blake3:{hexdigest}"
        args = ["-T", str(self.src), "-H", f"@{self.auth_file}", url]
        return (self.timed(partial(self.curl, *args, expect="201"), self.pid),)

    def pull(self, hexdigest: str) -> tuple[Sample]:
        url = f"http://{HOST}:{self.port}/v1/blobs/blake3:{hexdigest}"
        args = ["-H", f"@{self.auth_file}", url]
        if "RELIQUARY_S3_REDIRECT" in self.backend_env:  # 307 to S3; curl drops the token
            args.insert(0, "-L")
        return (self.timed(partial(self.curl, *args, expect="200"), self.pid),)

    def dist_push(self, sha256_hex: str) -> tuple[Sample]:
        """OCI monolithic push: POST (open an upload) + PUT ?digest= of the whole body."""

        def push() -> float:
            started = time.perf_counter()
            with httpx.Client(trust_env=False) as client:
                made = client.post(f"http://{HOST}:{self.dist_port}/v2/bench/blobs/uploads/")
            made.raise_for_status()
            opened = time.perf_counter() - started
            base = httpx.URL(f"http://{HOST}:{self.dist_port}")
            url = base.join(made.headers["location"]).copy_merge_params(
                {"digest": f"sha256:{sha256_hex}"}
            )
            return opened + self.curl("-T", str(self.src), str(url), expect="201")

        return (self.timed(push, self.dist_pid),)

    def dist_pull(self, sha256_hex: str) -> tuple[Sample]:
        url = f"http://{HOST}:{self.dist_port}/v2/bench/blobs/sha256:{sha256_hex}"
        return (self.timed(partial(self.curl, url, expect="200"), self.dist_pid),)

    def nginx_pull(self, path: str) -> tuple[Sample]:
        url = f"http://{HOST}:{self.nginx_port}{path}"
        return (self.timed(partial(self.curl, url, expect="200"), self.nginx_pid),)

    def file_read(self, path: str) -> tuple[Sample]:
        return (self.timed(lambda: self.dd(f"{self.data}{path}", "/dev/null"), None),)

    def heads(self, client: str, who: str, path: str, count: int) -> tuple[Sample, ...]:
        port, pid = {
            "Reliquary": (self.port, self.pid),
            "nginx": (self.nginx_port, self.nginx_pid),
            "Distribution": (self.dist_port, self.dist_pid),
        }[who]
        headers = {"Authorization": f"Bearer {self.token}"} if who == "Reliquary" else {}
        measure = raw_heads if client == "raw" else httpx_heads
        measure(port, path, headers, min(count, 50))  # warm up
        server0, client0, started = proc_cpu(pid), own_cpu(), time.perf_counter()
        cuts = statistics.quantiles(measure(port, path, headers, count), n=100)
        wall = time.perf_counter() - started
        cpu = ((own_cpu() - client0) / wall, (proc_cpu(pid) - server0) / wall)
        return Sample(cuts[49], *cpu), Sample(cuts[98], *cpu)


Step = tuple[tuple[str, ...], Callable[[], tuple[Sample, ...]]]


def run_pair(figs: dict[str, Figure], steps: list[Step], flip: bool) -> None:
    """Run an A/B pair, B first when ``flip``; file each sample under its figure."""
    for keys, step in steps[::-1] if flip else steps:
        for key, sample in zip(keys, step(), strict=True):
            figs[key].samples.append(sample)


def run_rounds(bench: BlobBench, rounds: int, count: int) -> dict[str, Figure]:
    figs = {
        "dd": Figure("write limit: dd bs=4M conv=fsync", "MB/s"),
        "push": Figure("Reliquary PUT blob (curl -T)", "MB/s"),
        "nginx": Figure("read limit: nginx sendfile (curl)", "MB/s"),
        "cat": Figure("read limit: dd of=/dev/null", "MB/s"),
        "pull": Figure("Reliquary GET blob (curl)", "MB/s"),
        "dist-push": Figure("Distribution push blob (POST+PUT)", "MB/s"),
        "dist-pull": Figure("Distribution GET blob (curl)", "MB/s"),
    }
    for who in ("nginx", "Reliquary", "Distribution"):
        for client, q in ((c, q) for c in ("raw", "httpx") for q in ("p50", "p99")):
            if who == "Distribution" and client == "httpx":
                continue
            name = "raw socket" if client == "raw" else "httpx"
            figs[f"{who}/{client}/{q}"] = Figure(f"HEAD {q}, {who} ({name})", "ms")
    for index in range(rounds):
        flip = index % 2 == 1
        hexdigest, sha = bench.new_content()
        print(f"round {index + 1}/{rounds} (order {'B, A' if flip else 'A, B'}) ...", flush=True)
        push, dist_push = partial(bench.push, hexdigest), partial(bench.dist_push, sha)
        steps: list[Step] = [
            (("dd",), bench.write_limit),
            (("push",), push),
            (("dist-push",), dist_push),
        ]
        run_pair(figs, steps, flip)
        path = bench.stored_path(hexdigest)
        bench.file_read(path)  # just written, so cached anyway: make it certain
        nginx_pull, pull = partial(bench.nginx_pull, path), partial(bench.pull, hexdigest)
        dist_pull = partial(bench.dist_pull, sha)
        steps = [(("nginx",), nginx_pull), (("pull",), pull), (("dist-pull",), dist_pull)]
        run_pair(figs, steps, flip)
        figs["cat"].samples += bench.file_read(path)
        urls = {
            "nginx": path,
            "Reliquary": f"/v1/blobs/blake3:{hexdigest}",
            "Distribution": f"/v2/bench/blobs/sha256:{sha}",
        }
        for client in ("raw", "httpx"):
            steps = [
                (
                    (f"{who}/{client}/p50", f"{who}/{client}/p99"),
                    partial(bench.heads, client, who, url, count),
                )
                for who, url in urls.items()
                if f"{who}/{client}/p50" in figs
            ]
            run_pair(figs, steps, flip)
        bench.forget_distribution_blob(sha)
    return figs


def report(figs: dict[str, Figure], header: list[str]) -> None:
    print("\n" + "\n".join(header) + "\n")
    row = "{:<38} {:>9} {:>20} {:>10} {:>10}"
    print(row.format("figure", "median", "min-max", "client CPU", "server CPU"))

    def pct(samples: list[Sample], attr: str) -> str:
        values = [v for s in samples if (v := getattr(s, attr)) is not None]
        return f"{statistics.median(values) * 100:.0f}%" if values else "-"

    for fig in figs.values():
        values, digits = [s.value for s in fig.samples], 0 if fig.unit == "MB/s" else 3
        span = f"{min(values):.{digits}f}-{max(values):.{digits}f} {fig.unit}"
        med = f"{statistics.median(values):.{digits}f}"
        cpu = (pct(fig.samples, "client_cpu"), pct(fig.samples, "server_cpu"))
        print(row.format(fig.label, med, span, *cpu))
    print("\n" + row.format("ratio (paired per round)", "median", "min-max", "target", "verdict"))

    def ratio(label: str, num: str, den: str | None, target: float | None, higher: bool) -> None:
        values = [s.value for s in figs[num].samples]
        if den is not None:
            values = [x / y.value for x, y in zip(values, figs[den].samples, strict=True)]
        med = statistics.median(values)
        goal, verdict = "-", "-"
        if target is not None:
            goal = f"{'>=' if higher else '<='} {target:.2f}"
            verdict = "meets" if (med >= target if higher else med <= target) else "MISSES"
        span = f"{min(values):.2f}-{max(values):.2f}"
        print(row.format(label, f"{med:.2f}", span, goal, verdict))

    ratio("push / dd conv=fsync", "push", "dd", 0.8, True)
    ratio("pull / nginx sendfile", "pull", "nginx", 0.8, True)
    ratio("push Reliquary / Distribution", "push", "dist-push", None, True)
    ratio("pull Reliquary / Distribution", "pull", "dist-pull", None, True)
    ratio("Distribution push / dd conv=fsync", "dist-push", "dd", None, True)
    ratio("Distribution pull / nginx sendfile", "dist-pull", "nginx", None, True)
    ratio("HEAD p50 Reliquary, raw socket (ms)", "Reliquary/raw/p50", None, 0.25, False)
    ratio("HEAD p50 Reliquary / nginx, raw", "Reliquary/raw/p50", "nginx/raw/p50", None, False)
    ratio(
        "HEAD p50 Reliquary / Distribution, raw",
        "Reliquary/raw/p50",
        "Distribution/raw/p50",
        None,
        False,
    )
    ratio("HEAD p50 Reliquary, httpx (ms)", "Reliquary/httpx/p50", None, None, False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.blobs", description=__doc__)
    parser.add_argument("--size", type=size_argument, default=2**30, help="blob size [1GiB]")
    parser.add_argument("--rounds", type=int, default=3, help="A/B rounds [3]")
    parser.add_argument("--head-requests", type=int, default=2000, help="HEADs per round [2000]")
    parser.add_argument("--dir", type=Path, default=None, help="parent of the temp dir [$TMPDIR]")
    parser.add_argument(
        "--s3-endpoint",
        help="store blobs in S3 at this endpoint (bucket made here); e.g. a MinIO, or "
        "'moto' for a moto server started here (it measures moto, an in-memory mock)",
    )
    parser.add_argument(
        "--s3-redirect",
        metavar="DURATION",
        help="with --s3-endpoint: RELIQUARY_S3_REDIRECT=DURATION, pulls follow the 307 to "
        "a presigned URL (curl -L)",
    )
    parser.add_argument("--postgres", help="database URL of its own (its schema is dropped)")
    args = parser.parse_args(argv)
    if args.s3_redirect and not args.s3_endpoint:
        parser.error("--s3-redirect needs --s3-endpoint")
    if not (1 <= args.rounds <= 50 and 2 <= args.head_requests <= 100_000 and args.size > 0):
        parser.error("--rounds must be 1..50, --head-requests 2..100000, --size > 0")
    for tool in ("curl", "dd", "nginx", "findmnt", "docker-registry", "openssl"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed (apt-get install -y nginx curl docker-registry)")

    def on_term(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    root = Path(tempfile.mkdtemp(prefix="reliquary-bench-", dir=args.dir))
    bench = BlobBench(root, args.size)
    moto = None
    try:
        if args.postgres:
            reset_postgres(args.postgres)
            bench.backend_env["RELIQUARY_DATABASE_URL"] = args.postgres
        if args.s3_endpoint:
            moto = s3_backend(bench, args.s3_endpoint)
        if args.s3_redirect:
            bench.backend_env["RELIQUARY_S3_REDIRECT"] = args.s3_redirect
        print(f"preparing {args.size} random bytes in {root} ...", flush=True)
        bench.prepare()
        bench.start_server()
        bench.start_nginx()
        bench.start_distribution()
        header = [
            f"Reliquary blob benchmark, {datetime.date.today().isoformat()}",
            f"machine: {machine_line(bench.data)}",
            f"blob {args.size} bytes ({args.size / 2**20:g} MiB), {args.rounds} rounds, A/B "
            f"order flipped each round, {args.head_requests} HEADs per client per round; "
            "MB = 10^6 bytes; CPU = % of one core",
            "Reliquary backend: "
            + (
                "S3 at " + bench.backend_env["RELIQUARY_S3_ENDPOINT_URL"]
                if args.s3_endpoint
                else "filesystem"
            )
            + (", pulls redirected to presigned URLs" if args.s3_redirect else "")
            + (", PostgreSQL" if args.postgres else ", SQLite"),
        ]
        report(run_rounds(bench, args.rounds, args.head_requests), header)
    finally:
        bench.stop()
        if moto is not None:
            moto.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


def s3_backend(bench: BlobBench, endpoint: str) -> Any:
    """Point the registry at S3 (a fresh bucket); the moto server it started, if any."""
    import boto3

    server = None
    key, secret = (
        os.environ.get("AWS_ACCESS_KEY_ID", "bench"),
        os.environ.get("AWS_SECRET_ACCESS_KEY", "bench-secret"),
    )
    if endpoint == "moto":
        from moto.server import ThreadedMotoServer

        port = free_port()
        server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
        server.start()
        endpoint = f"http://{HOST}:{port}"
    bucket = f"reliquary-bench-{os.getpid()}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)
    bench.backend_env |= {
        "RELIQUARY_STORAGE": "s3",
        "RELIQUARY_S3_ENDPOINT_URL": endpoint,
        "RELIQUARY_S3_BUCKET": bucket,
        "RELIQUARY_S3_REGION": "us-east-1",
        "RELIQUARY_S3_ACCESS_KEY_ID": key,
        "RELIQUARY_S3_SECRET_ACCESS_KEY": secret,
    }
    return server


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
