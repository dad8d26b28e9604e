"""``reliquary push`` and ``reliquary pull`` of a 20-file, 2 GiB model directory, end to end
(hashing, upload, verification, install), beside CNCF Distribution driven by a client
doing the same work and beside the disk's durable write limit.

Run: ``.venv/bin/python -m bench.cli [--size 2GiB] [--files 20] [--rounds 2]``

- Reliquary push: ``reliquary push DIR`` with an empty client cache: both digests of
  every file, parallel uploads, the manifest. Pull: ``reliquary pull name@version -o OUT``
  with an empty cache: download, verify blake3 and sha256, fsync, install.
- Distribution push: for each file (4 at a time) ``openssl dgst -sha256`` then the OCI
  monolithic upload (POST + ``curl -T`` PUT ?digest=), then an OCI image manifest.
  Pull: each blob (4 at a time) ``curl -o FILE``, fsync, ``openssl dgst -sha256`` check.
- write limit: ``dd bs=4M conv=fsync`` of the same number of bytes.
The files' first bytes change every round (new content); order flips each round.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.harness import BIN, HOST, Servers, machine_line, size_argument

PARALLEL = 4


def sha256_of(path: Path) -> str:
    out = subprocess.run(
        ["openssl", "dgst", "-sha256", "-r", str(path)], check=True, capture_output=True, text=True
    )
    return out.stdout.split()[0]


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CliBench:
    def __init__(self, servers: Servers, files: int, size: int) -> None:
        self.servers, self.root = servers, servers.root
        self.model = self.root / "model"
        self.sizes = [size // files + (1 if i < size % files else 0) for i in range(files)]
        self.total = sum(self.sizes)

    def prepare(self) -> None:
        self.model.mkdir()
        for i, size in enumerate(self.sizes):
            with (self.model / f"shard-{i:02d}.bin").open("wb") as out:
                remaining = size
                while remaining:
                    remaining -= out.write(os.urandom(min(4 * 2**20, remaining)))

    def new_content(self) -> None:
        for path in self.model.iterdir():
            with path.open("r+b") as f:
                f.write(os.urandom(32))

    def cli(self, cache: Path, *args: str) -> None:
        env = os.environ | {
            "RELIQUARY_URL": f"http://{HOST}:{self.servers.port}",
            "RELIQUARY_TOKEN": self.servers.token,
            "RELIQUARY_CACHE": str(cache),
        }
        subprocess.run([str(BIN / "reliquary"), *args], env=env, check=True, capture_output=True)

    def timed(self, run: Callable[[], object]) -> float:
        os.sync()
        started = time.perf_counter()
        run()
        return self.total / (time.perf_counter() - started) / 1e6

    def reliquary_push(self, version: str) -> float:
        cache = self.root / f"cache-push-{version}"
        rate = self.timed(
            lambda: self.cli(
                cache, "push", str(self.model), "--name", "bench/model", "--version", version
            )
        )
        shutil.rmtree(cache, ignore_errors=True)
        return rate

    def reliquary_pull(self, version: str) -> float:
        cache, out = self.root / f"cache-pull-{version}", self.root / "pulled"
        rate = self.timed(lambda: self.cli(cache, "pull", f"bench/model@{version}", "-o", str(out)))
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
        return rate

    def distribution_push(self) -> tuple[float, list[tuple[str, int]]]:
        base = f"http://{HOST}:{self.servers.dist_port}"
        layers: list[tuple[str, int]] = []

        def one(path: Path) -> tuple[str, int]:
            sha = sha256_of(path)
            with httpx.Client(trust_env=False) as client:
                made = client.post(f"{base}/v2/bench/blobs/uploads/")
                made.raise_for_status()
                url = (
                    httpx.URL(base)
                    .join(made.headers["location"])
                    .copy_merge_params({"digest": f"sha256:{sha}"})
                )
            done = subprocess.run(
                [
                    "curl",
                    "-sS",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "-H",
                    "Expect:",
                    "-T",
                    str(path),
                    str(url),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            if done.stdout != "201":
                raise RuntimeError(f"Distribution PUT {path.name}: HTTP {done.stdout}")
            return sha, path.stat().st_size

        def push() -> None:
            with ThreadPoolExecutor(PARALLEL) as pool:
                layers.extend(pool.map(one, sorted(self.model.iterdir())))
            config = b"{}"
            with httpx.Client(trust_env=False) as client:
                made = client.post(f"{base}/v2/bench/blobs/uploads/")
                sha = (
                    subprocess.run(
                        ["openssl", "dgst", "-sha256", "-r"],
                        input=config,
                        capture_output=True,
                        check=True,
                    )
                    .stdout.split()[0]
                    .decode()
                )
                url = (
                    httpx.URL(base)
                    .join(made.headers["location"])
                    .copy_merge_params({"digest": f"sha256:{sha}"})
                )
                client.put(url, content=config).raise_for_status()
                manifest = {
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {
                        "mediaType": "application/vnd.oci.image.config.v1+json",
                        "digest": f"sha256:{sha}",
                        "size": len(config),
                    },
                    "layers": [
                        {
                            "mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": f"sha256:{d}",
                            "size": n,
                        }
                        for d, n in layers
                    ],
                }
                client.put(
                    f"{base}/v2/bench/manifests/latest",
                    json=manifest,
                    headers={"content-type": "application/vnd.oci.image.manifest.v1+json"},
                ).raise_for_status()

        return self.timed(push), layers

    def distribution_pull(self, layers: list[tuple[str, int]]) -> float:
        base = f"http://{HOST}:{self.servers.dist_port}"
        out = self.root / "dist-pulled"
        out.mkdir()

        def one(layer: tuple[str, int]) -> None:
            sha, _ = layer
            target = out / sha
            subprocess.run(
                ["curl", "-sS", "-f", "-o", str(target), f"{base}/v2/bench/blobs/sha256:{sha}"],
                check=True,
            )
            fsync_file(target)
            if sha256_of(target) != sha:
                raise RuntimeError(f"Distribution served wrong bytes for {sha}")

        def pull() -> None:
            with ThreadPoolExecutor(PARALLEL) as pool:
                list(pool.map(one, layers))

        rate = self.timed(pull)
        shutil.rmtree(out)
        for sha, _ in layers:
            self.servers.forget_distribution_blob(sha)
        return rate

    def write_limit(self) -> float:
        dst = self.root / "dd.bin"
        count = f"count={self.total // 2**20}"
        cmd = ["dd", "if=/dev/zero", f"of={dst}", "bs=1M", count, "conv=fsync"]
        rate = self.timed(lambda: subprocess.run(cmd, check=True, capture_output=True))
        dst.unlink()
        return rate


def run_round(cli: CliBench, r: int, figures: dict[str, list[float]]) -> None:
    """One round: write limit and both pushes, then both pulls; order flips on odd rounds."""
    cli.new_content()
    version = f"v{r}"
    layers: list[tuple[str, int]] = []

    def dist_push() -> float:
        rate, pushed = cli.distribution_push()
        layers[:] = pushed
        return rate

    steps: list[tuple[str, Callable[[], float]]] = [
        ("write limit: dd bs=1M conv=fsync", cli.write_limit),
        ("Reliquary: reliquary push", lambda: cli.reliquary_push(version)),
        ("Distribution: hash + OCI push", dist_push),
    ]
    pulls: list[tuple[str, Callable[[], float]]] = [
        ("Reliquary: reliquary pull (verify, install)", lambda: cli.reliquary_pull(version)),
        ("Distribution: curl + fsync + sha256 check", lambda: cli.distribution_pull(layers)),
    ]
    for group in (steps, pulls):
        for label, step in group[::-1] if r % 2 else group:
            figures.setdefault(label, []).append(step())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cli", description=__doc__)
    parser.add_argument("--size", type=size_argument, default=2 * 2**30)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="reliquary-bench-cli-"))
    servers = Servers(root)
    figures: dict[str, list[float]] = {}
    try:
        cli = CliBench(servers, args.files, args.size)
        print(f"preparing {args.files} files, {args.size} bytes in {root} ...", flush=True)
        cli.prepare()
        servers.start_server()
        servers.start_distribution()
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds} ...", flush=True)
            run_round(cli, r, figures)
        print(
            f"\nCLI push/pull of a {args.files}-file model, {args.size / 2**30:g} GiB, "
            f"{datetime.date.today().isoformat()}, {args.rounds} rounds, 4 transfers at once"
        )
        print(f"machine: {machine_line(servers.data)}\n")
        print(f"{'figure':46} {'median':>8} {'min-max':>16}")
        for label, values in figures.items():
            print(
                f"{label:46} {statistics.median(values):8.0f} "
                f"{min(values):7.0f}-{max(values):<7.0f} MB/s"
            )
        med = {k: statistics.median(v) for k, v in figures.items()}
        limit = med["write limit: dd bs=1M conv=fsync"]
        print()
        for label in (
            "Reliquary: reliquary push",
            "Distribution: hash + OCI push",
            "Reliquary: reliquary pull (verify, install)",
            "Distribution: curl + fsync + sha256 check",
        ):
            print(f"{label + ' / write limit':60} {med[label] / limit:6.2f}")
        print(
            f"{'push Reliquary / Distribution':60} "
            f"{med['Reliquary: reliquary push'] / med['Distribution: hash + OCI push']:6.2f}"
        )
        print(
            f"{'pull Reliquary / Distribution':60} "
            f"{med['Reliquary: reliquary pull (verify, install)'] / med['Distribution: curl + fsync + sha256 check']:6.2f}"
        )
    finally:
        servers.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
