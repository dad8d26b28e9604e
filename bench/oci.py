"""Image push and pull with skopeo, Reliquary beside CNCF Distribution, in one run.

Run: ``.venv/bin/python -m bench.oci [--size 1GiB] [--layers 8] [--rounds 3]``

The image is an OCI image layout written here, deterministic from ``--seed`` and the
round: ``--layers`` layers of ``--size / --layers`` incompressible bytes each (a tar of
one file of blake3 XOF output, gzip-framed with stored blocks, so that skopeo keeps the
bytes as they are instead of compressing them), an image config naming their diff_ids,
an OCI image manifest tagged ``r<round>`` in ``index.json``. Every round builds new
layers, so every push stores new content (a registry that holds a blob skips it).

Per round, each A/B pair in flipped order from one round to the next:
- push: ``skopeo copy oci:LAYOUT:TAG docker://127.0.0.1:PORT/bench/image:TAG``; to
  Reliquary with ``--dest-creds bench:<admin token>`` (the client runs the token
  dance), to Distribution with no credentials;
- pull: ``skopeo copy --preserve-digests docker://…:TAG oci:OUT:TAG`` into an empty
  directory, then the pulled manifest digest is checked against the pushed one;
- reference: ``skopeo copy oci:LAYOUT:TAG oci:OUT:TAG``, no registry (what the client
  does on its own: read, hash and write every blob);
- manifest HEAD by tag: sequential ``HEAD /v2/bench/image/manifests/TAG`` on one
  keep-alive raw socket (a few µs of client work), OCI Accept header, p50/p99.

MB/s is the image's bytes (layers, config, manifest; MB = 10^6 bytes) over skopeo's
wall time, process start and token dance included. Targets (issue 13): push and pull
≥ 1.5x Distribution, manifest HEAD by tag p50 ≤ 0.25 ms.

Needs ``apt-get install -y skopeo docker-registry``. Only 127.0.0.1 is used; processes
and the temp dir are removed at exit, error or not.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import blake3

from bench.harness import HOST, Servers, machine_line, raw_heads, reset_postgres, size_argument

REPOSITORY = "bench/image"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
CHUNK = 4 * 2**20
TICKS = os.sysconf("SC_CLK_TCK")
PEERS = ("Reliquary", "Distribution")


@dataclass(frozen=True)
class Image:
    """An OCI image layout on disk and what the benchmark checks against."""

    layout: Path
    tag: str
    manifest_digest: str  # "sha256:<hex>"
    size: int  # bytes of every blob: layers, config, manifest


def _blob(blobs: Path, data: bytes) -> tuple[str, int]:
    hexdigest = hashlib.sha256(data).hexdigest()
    (blobs / hexdigest).write_bytes(data)
    return f"sha256:{hexdigest}", len(data)


def _layer(blobs: Path, key: bytes, name: str, size: int) -> tuple[dict[str, object], str]:
    """One gzip-framed tar layer of ``size`` pseudo-random bytes; its descriptor and
    diff_id. The gzip stream uses stored blocks (level 0): valid gzip, no CPU spent."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    header = info.tobuf(format=tarfile.USTAR_FORMAT)
    diff, packed = hashlib.sha256(), hashlib.sha256()
    gz = zlib.compressobj(0, zlib.DEFLATED, 31)  # 31: gzip framing, mtime 0
    stream = blake3.blake3(key)
    staging = blobs / f".{name}.tmp"
    written = 0
    with staging.open("wb") as out:

        def emit(data: bytes) -> None:
            nonlocal written
            diff.update(data)
            packed_data = gz.compress(data)
            packed.update(packed_data)
            written += out.write(packed_data)

        emit(header)
        for offset in range(0, size, CHUNK):
            emit(stream.digest(length=min(CHUNK, size - offset), seek=offset))
        emit(b"\0" * ((-size) % 512) + b"\0" * 1024)  # padding, end of archive
        tail = gz.flush()
        packed.update(tail)
        written += out.write(tail)
    hexdigest = packed.hexdigest()
    staging.rename(blobs / hexdigest)
    descriptor = {"mediaType": OCI_LAYER, "digest": f"sha256:{hexdigest}", "size": written}
    return descriptor, f"sha256:{diff.hexdigest()}"


def build_image(layout: Path, size: int, layers: int, seed: int, tag: str) -> Image:
    """A deterministic OCI image layout of ``layers`` layers totalling about ``size``."""
    shutil.rmtree(layout, ignore_errors=True)
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    descriptors, diff_ids = [], []
    for number in range(layers):
        key = hashlib.sha256(f"reliquary bench.oci {seed} {tag} {number}".encode()).digest()
        descriptor, diff_id = _layer(blobs, key, f"layer-{number}.bin", size // layers)
        descriptors.append(descriptor)
        diff_ids.append(diff_id)
    config: dict[str, object] = {
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    config_digest, config_size = _blob(blobs, json.dumps(config, sort_keys=True).encode())
    manifest: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
        "layers": descriptors,
    }
    manifest_digest, manifest_size = _blob(blobs, json.dumps(manifest, indent=2).encode())
    index: dict[str, object] = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": manifest_digest,
                "size": manifest_size,
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (layout / "index.json").write_text(json.dumps(index))
    total = sum(int(str(d["size"])) for d in descriptors) + config_size + manifest_size
    return Image(layout, tag, manifest_digest, total)


@dataclass(frozen=True)
class Sample:
    rate: float  # MB/s
    client_cpu: float  # skopeo's, fraction of one core
    server_cpu: float | None


def children_cpu() -> float:
    """CPU seconds of this process's finished children (skopeo)."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return kids.ru_utime + kids.ru_stime


def proc_cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class OciBench(Servers):
    """The two registries, the image of the round, skopeo runs timed against each."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.skopeo_env = os.environ | {"HOME": str(root / "home")}  # no auth file of ours
        (root / "home").mkdir()

    def peer(self, who: str) -> tuple[int, int]:
        """(port, pid) of ``who``."""
        return (self.port, self.pid) if who == "Reliquary" else (self.dist_port, self.dist_pid)

    def skopeo(self, *args: str) -> None:
        cmd = ["skopeo", "--insecure-policy", "copy", "--retry-times", "0", *args]
        done = subprocess.run(
            cmd, env=self.skopeo_env, capture_output=True, text=True, timeout=1800, check=False
        )
        if done.returncode != 0:
            shown = " ".join(cmd).replace(self.token or "-", "<token>")
            raise RuntimeError(f"{shown} failed:\n{done.stderr[-3000:]}")

    def timed(self, who: str | None, image: Image, args: list[str]) -> Sample:
        """One skopeo copy against ``who`` (None: no registry, layout to layout)."""
        os.sync()
        pid = None if who is None else self.peer(who)[1]
        server0, client0, started = proc_cpu(pid), children_cpu(), time.perf_counter()
        self.skopeo(*args)
        wall = time.perf_counter() - started
        server = None if pid is None else (proc_cpu(pid) - server0) / wall
        return Sample(image.size / wall / 1e6, (children_cpu() - client0) / wall, server)

    def local_copy(self, image: Image) -> Sample:
        """A reference without a registry: skopeo copying the layout to a new layout (it
        reads, hashes and writes every blob, as a pull does)."""
        out = self.root / "copied"
        shutil.rmtree(out, ignore_errors=True)
        args = ["--preserve-digests", f"oci:{image.layout}:{image.tag}", f"oci:{out}:{image.tag}"]
        try:
            return self.timed(None, image, args)
        finally:
            shutil.rmtree(out, ignore_errors=True)

    def reference(self, who: str, tag: str) -> str:
        return f"docker://{HOST}:{self.peer(who)[0]}/{REPOSITORY}:{tag}"

    def creds(self, who: str, flag: str) -> list[str]:
        return [f"--{flag}-creds", f"bench:{self.token}"] if who == "Reliquary" else []

    def push(self, who: str, image: Image) -> Sample:
        args = ["--dest-tls-verify=false", *self.creds(who, "dest")]
        args += [f"oci:{image.layout}:{image.tag}", self.reference(who, image.tag)]
        return self.timed(who, image, args)

    def pull(self, who: str, image: Image) -> Sample:
        out = self.root / f"pulled-{who}"
        shutil.rmtree(out, ignore_errors=True)
        args = ["--src-tls-verify=false", "--preserve-digests", *self.creds(who, "src")]
        args += [self.reference(who, image.tag), f"oci:{out}:{image.tag}"]
        try:
            figures = self.timed(who, image, args)
            pulled = json.loads((out / "index.json").read_text())["manifests"][0]["digest"]
            if pulled != image.manifest_digest:
                raise RuntimeError(f"{who} gave {pulled}, pushed {image.manifest_digest}")
            return figures
        finally:
            shutil.rmtree(out, ignore_errors=True)

    def heads(self, who: str, image: Image, count: int) -> tuple[float, float]:
        """p50 and p99 (ms) of manifest HEAD by tag."""
        headers = {"Accept": OCI_MANIFEST}
        if who == "Reliquary":
            headers["Authorization"] = f"Bearer {self.token}"
        path = f"/v2/{REPOSITORY}/manifests/{image.tag}"
        port = self.peer(who)[0]
        raw_heads(port, path, headers, min(count, 50))  # warm up
        cuts = statistics.quantiles(raw_heads(port, path, headers, count), n=100)
        return cuts[49], cuts[98]

    def forget_distribution_image(self) -> None:
        """Free the disk: Distribution deletes nothing by default, so remove its files."""
        shutil.rmtree(self.root / "distribution", ignore_errors=True)


def run_rounds(
    bench: OciBench, size: int, layers: int, seed: int, rounds: int, heads: int, peers: list[str]
) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {}

    def record(key: str, value: float) -> None:
        figures.setdefault(key, []).append(value)

    for index in range(rounds):
        tag = f"r{index + 1}"
        started = time.monotonic()
        image = build_image(bench.root / "layout", size, layers, seed, tag)
        order = peers[::-1] if index % 2 else peers
        print(
            f"round {index + 1}/{rounds}: image {image.size} bytes built in "
            f"{time.monotonic() - started:.1f} s; order {', '.join(order)}",
            flush=True,
        )
        local = bench.local_copy(image)
        record("skopeo local", local.rate)
        record("skopeo local client", local.client_cpu)
        for step in ("push", "pull"):
            for who in order:
                sample: Sample = getattr(bench, step)(who, image)
                record(f"{who} {step}", sample.rate)
                record(f"{who} {step} client", sample.client_cpu)
                if sample.server_cpu is not None:
                    record(f"{who} {step} server", sample.server_cpu)
        for who in order:
            p50, p99 = bench.heads(who, image, heads)
            record(f"{who} head p50", p50)
            record(f"{who} head p99", p99)
        bench.forget_distribution_image()
    return figures


def report(figures: dict[str, list[float]], peers: list[str], header: list[str]) -> None:
    print("\n" + "\n".join(header) + "\n")
    row = "{:<52} {:>8} {:>18} {:>11} {:>11}"
    print(row.format("figure", "median", "min-max", "client CPU", "server CPU"))

    def pct(key: str) -> str:
        values = figures.get(key)
        return f"{statistics.median(values) * 100:.0f}%" if values else "-"

    def line(label: str, key: str, unit: str, digits: int) -> None:
        values = figures[key]
        print(
            row.format(
                label,
                f"{statistics.median(values):.{digits}f}",
                f"{min(values):.{digits}f}-{max(values):.{digits}f} {unit}",
                pct(f"{key} client"),
                pct(f"{key} server"),
            )
        )

    line("reference: skopeo copy oci: -> oci: (no registry)", "skopeo local", "MB/s", 0)
    for who in peers:
        line(f"{who} push, skopeo copy oci: -> docker://", f"{who} push", "MB/s", 0)
        line(f"{who} pull, skopeo copy docker:// -> oci:", f"{who} pull", "MB/s", 0)
        line(f"{who} manifest HEAD by tag p50 (raw socket)", f"{who} head p50", "ms", 3)
        line(f"{who} manifest HEAD by tag p99 (raw socket)", f"{who} head p99", "ms", 3)
    print("\n" + row.format("ratio (paired per round)", "median", "min-max", "target", "verdict"))

    def ratio(label: str, num: str, den: str | None, target: float | None, higher: bool) -> None:
        values = figures[num]
        if den is not None:
            values = [a / b for a, b in zip(values, figures[den], strict=True)]
        med = statistics.median(values)
        goal, verdict = "-", "-"
        if target is not None:
            goal = f"{'>=' if higher else '<='} {target:g}"
            verdict = "meets" if (med >= target if higher else med <= target) else "MISSES"
        print(
            row.format(label, f"{med:.2f}", f"{min(values):.2f}-{max(values):.2f}", goal, verdict)
        )

    for who in peers:
        ratio(f"{who} push / oci: -> oci: copy", f"{who} push", "skopeo local", None, True)
        ratio(f"{who} pull / oci: -> oci: copy", f"{who} pull", "skopeo local", None, True)
    if peers != list(PEERS):
        return
    ratio("push Reliquary / Distribution", "Reliquary push", "Distribution push", 1.5, True)
    ratio("pull Reliquary / Distribution", "Reliquary pull", "Distribution pull", 1.5, True)
    ratio("manifest HEAD by tag p50, Reliquary (ms)", "Reliquary head p50", None, 0.25, False)
    ratio(
        "HEAD p50 Reliquary / Distribution",
        "Reliquary head p50",
        "Distribution head p50",
        None,
        False,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.oci", description=__doc__)
    parser.add_argument("--size", type=size_argument, default=2**30, help="image size [1GiB]")
    parser.add_argument("--layers", type=int, default=8, help="layers [8]")
    parser.add_argument("--rounds", type=int, default=3, help="A/B rounds [3]")
    parser.add_argument("--seed", type=int, default=13, help="what the layers are made from [13]")
    parser.add_argument("--head-requests", type=int, default=2000, help="HEADs per round [2000]")
    parser.add_argument(
        "--only", choices=PEERS, default=None, help="measure one registry (no ratios)"
    )
    parser.add_argument("--dir", type=Path, default=None, help="parent of the temp dir [$TMPDIR]")
    parser.add_argument("--postgres", help="database URL of its own (its schema is dropped)")
    args = parser.parse_args(argv)
    if not (1 <= args.rounds <= 50 and 1 <= args.layers <= 128 and args.head_requests >= 2):
        parser.error("--rounds must be 1..50, --layers 1..128, --head-requests >= 2")
    if args.size < args.layers * 1024:
        parser.error("--size must be at least 1 KiB per layer")
    for tool in ("skopeo", "docker-registry", "findmnt"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed (apt-get install -y skopeo docker-registry)")

    def on_term(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    peers = [args.only] if args.only else list(PEERS)
    root = Path(tempfile.mkdtemp(prefix="reliquary-bench-oci-", dir=args.dir))
    bench = OciBench(root)
    try:
        if args.postgres:
            reset_postgres(args.postgres)
            bench.backend_env["RELIQUARY_DATABASE_URL"] = args.postgres
        if "Reliquary" in peers:
            bench.start_server()
        if "Distribution" in peers:
            bench.start_distribution()
        skopeo = subprocess.run(["skopeo", "--version"], capture_output=True, text=True).stdout
        header = [
            f"Reliquary OCI image benchmark, {datetime.date.today().isoformat()}",
            f"machine: {machine_line(bench.data)}",
            f"image ~{args.size / 2**20:g} MiB in {args.layers} layers, {args.rounds} rounds, "
            f"A/B order flipped each round, {args.head_requests} HEADs per round; "
            f"{skopeo.strip()}; MB = 10^6 bytes; CPU = % of one core",
            "Reliquary backend: filesystem, " + ("PostgreSQL" if args.postgres else "SQLite"),
        ]
        figures = run_rounds(
            bench, args.size, args.layers, args.seed, args.rounds, args.head_requests, peers
        )
        report(figures, peers, header)
    finally:
        bench.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
