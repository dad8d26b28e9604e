"""Manifest GET by digest at 1, 16 and 64 connections (wrk), Reliquary beside CNCF
Distribution and nginx serving the same bytes as a static file.

Run: ``.venv/bin/python -m bench.manifests [--seconds 5] [--rounds 3]``

Each round runs every connection count against all three servers, the order rotating
from round to round so drift cancels. wrk uses min(connections, 2) threads and keeps
connections alive. Reliquary is asked ``GET /v1/artifacts/blake3:<hex>`` with a bearer
token; Distribution ``GET /v2/bench/manifests/sha256:<hex>`` (no auth) with the OCI
Accept header; nginx the manifest file. Target (ARCHITECTURE §11): ≥ 12k req/s at 16.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from bench.harness import HOST, Servers, machine_line
from registry.core.canonical import canonical_bytes
from registry.core.digest import digest_bytes

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONNECTIONS = (1, 16, 64)


def wrk(url: str, connections: int, seconds: float, headers: dict[str, str]) -> float:
    """Requests per second; raises if any answer was not 2xx."""
    cmd = [
        "wrk",
        "-t",
        str(min(connections, 2)),
        "-c",
        str(connections),
        "-d",
        f"{max(1, round(seconds))}s",
    ]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run([*cmd, url], check=True, capture_output=True, text=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk {url}: errors\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None:
        raise RuntimeError(f"wrk printed no rate:\n{out}")
    return float(match.group(1))


def push_reliquary(servers: Servers) -> str:
    blob = b"bench weights " * 64
    d = digest_bytes(blob)
    auth = {"authorization": f"Bearer {servers.token}"}
    base = f"http://{HOST}:{servers.port}"
    with httpx.Client(trust_env=False, headers=auth) as client:
        client.put(f"{base}/v1/blobs/{d.blake3}", content=blob).raise_for_status()
        manifest = canonical_bytes(
            {
                "schema": "reliquary.manifest.v1",
                "kind": "model",
                "name": "bench/model",
                "version": "v1",
                "labels": {"purpose": "manifest benchmark"},
                "files": [
                    {
                        "path": f"shard-{i:02d}.bin",
                        "size": len(blob),
                        "blake3": d.blake3.hex,
                        "sha256": d.sha256.hex,
                    }
                    for i in range(8)
                ],
            }
        )
        client.put(f"{base}/v1/artifacts", content=manifest).raise_for_status()
    (servers.data / "manifest.json").write_bytes(manifest)
    return f"/v1/artifacts/{digest_bytes(manifest).blake3}"


def push_distribution(servers: Servers) -> str:
    base = f"http://{HOST}:{servers.dist_port}"
    layers = []
    with httpx.Client(trust_env=False) as client:
        for i, data in enumerate([b"{}", *(f"layer {i}".encode() * 100 for i in range(8))]):
            sha = digest_bytes(data).sha256
            made = client.post(f"{base}/v2/bench/blobs/uploads/")
            made.raise_for_status()
            put = (
                httpx.URL(base)
                .join(made.headers["location"])
                .copy_merge_params({"digest": str(sha)})
            )
            client.put(put, content=data).raise_for_status()
            layers.append(
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar"
                    if i
                    else "application/vnd.oci.image.config.v1+json",
                    "digest": str(sha),
                    "size": len(data),
                }
            )
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": layers[0],
                "layers": layers[1:],
            }
        ).encode()
        client.put(
            f"{base}/v2/bench/manifests/v1",
            content=manifest,
            headers={"content-type": OCI_MANIFEST},
        ).raise_for_status()
    return f"/v2/bench/manifests/{digest_bytes(manifest).sha256}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.manifests", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--server-workers", type=int, default=1, help="reliquary-server --workers (processes) [1]"
    )
    args = parser.parse_args(argv)
    for tool in ("wrk", "nginx", "docker-registry"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed (apt-get install -y wrk nginx docker-registry)")
    root = Path(tempfile.mkdtemp(prefix="reliquary-bench-manifests-"))
    servers = Servers(root)
    try:
        servers.start_server(args.server_workers)
        servers.start_nginx()
        servers.start_distribution()
        targets = {
            "Reliquary": (
                f"http://{HOST}:{servers.port}{push_reliquary(servers)}",
                {"Authorization": f"Bearer {servers.token}"},
            ),
            "Distribution": (
                f"http://{HOST}:{servers.dist_port}{push_distribution(servers)}",
                {"Accept": OCI_MANIFEST},
            ),
            "nginx (static file)": (f"http://{HOST}:{servers.nginx_port}/manifest.json", {}),
        }
        rates: dict[tuple[str, int], list[float]] = {}
        names = list(targets)
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            print(f"round {r + 1}/{args.rounds}: {', '.join(order)}", flush=True)
            for connections in CONNECTIONS:
                for name in order:
                    url, headers = targets[name]
                    wrk(url, connections, 1, headers)  # warm up
                    rates.setdefault((name, connections), []).append(
                        wrk(url, connections, args.seconds, headers)
                    )
        print(
            f"\nmanifest GET by digest, {datetime.date.today().isoformat()}, "
            f"{args.rounds} rounds x {args.seconds:g} s per figure"
        )
        print(
            f"machine: {machine_line(servers.data)}; reliquary-server --workers {args.server_workers}\n"
        )
        print(f"{'figure':42} {'median':>9} {'min-max':>17}")
        for (name, connections), values in rates.items():
            print(
                f"{name + f', {connections} conn (req/s)':42} {statistics.median(values):9.0f} "
                f"{min(values):8.0f}-{max(values):<8.0f}"
            )
        print(f"\n{'ratio (median of paired rounds)':42} {'median':>9}   target")
        for connections in CONNECTIONS:
            ours = rates[("Reliquary", connections)]
            for peer in ("Distribution", "nginx (static file)"):
                paired = [a / b for a, b in zip(ours, rates[(peer, connections)], strict=True)]
                print(
                    f"{f'Reliquary / {peer}, {connections} conn':42} {statistics.median(paired):9.2f}"
                )
        at16 = statistics.median(rates[("Reliquary", 16)])
        print(
            f"{'Reliquary at 16 connections (req/s)':42} {at16:9.0f}   >= 12000 "
            f"{'meets' if at16 >= 12000 else 'MISSES'}"
        )
    finally:
        servers.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
