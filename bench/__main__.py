"""The whole benchmark suite in one sitting: ``.venv/bin/python -m bench [--quick] [--postgres URL]``.

Runs, one after the other (never two at once, so none disturbs another):
``bench.blobs`` (1 GiB push/pull/HEAD beside dd, nginx and CNCF Distribution),
``bench.manifests`` (manifest GET at 1/16/64 connections, wrk), ``bench.cli`` (20-file
2 GiB ``reliquary push``/``pull`` beside a Distribution client), ``bench.log`` (proofs at
10^6 entries), ``bench.jobs`` (claim/complete latency with 8 workers, and a real worker
beside the bare inference it wraps), ``bench.evaluation`` (a worker's evaluation of
10 000 x 768 beside a bare predict), ``bench.oci`` (skopeo push/pull of a 1 GiB 8-layer
image and manifest HEAD by tag, beside Distribution). Each prints its own table; at the
end one table gathers every figure that has a target, with its verdict.

Needs: ``apt-get install -y nginx wrk docker-registry skopeo`` (curl, dd, openssl are there).
``--postgres URL``: also the PostgreSQL variants (log proofs, jobs); give a database of
its own (its schema is dropped). ``--quick``: small sizes and few rounds, to check the
suite runs (~5 min); its figures are not the ones to report.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time

VERDICT = re.compile(r"\b(meets|MISSES)\b")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--postgres", default=None)
    args = parser.parse_args(argv)
    pg = ["--postgres", args.postgres] if args.postgres else []
    if args.quick:
        plan = [
            ["bench.blobs", "--size", "64MiB", "--rounds", "2", "--head-requests", "500"],
            ["bench.manifests", "--rounds", "1", "--seconds", "2", "--server-workers", "2"],
            ["bench.cli", "--size", "256MiB", "--rounds", "1"],
            ["bench.log", "--entries", "20000", "--requests", "200", "--budget", "3", *pg],
            ["bench.jobs", "--jobs", "80", "--think-ms", "0", "--inference", "--rounds", "1", *pg],
            ["bench.evaluation", "--samples", "2000", "--rounds", "1"],
            ["bench.oci", "--size", "64MiB", "--rounds", "1", "--head-requests", "500"],
        ]
    else:
        plan = [
            ["bench.blobs", "--rounds", "3"],
            ["bench.manifests", "--rounds", "3", "--seconds", "5", "--server-workers", "2"],
            ["bench.cli", "--rounds", "2"],
            ["bench.log", *pg],
            ["bench.jobs", "--inference", *pg],
            ["bench.evaluation"],
            ["bench.oci", "--rounds", "3"],
        ]
    verdicts: list[tuple[str, str]] = []
    failed = []
    for step in plan:
        print(f"\n==> python -m {' '.join(step)}", flush=True)
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", *step], capture_output=True, text=True)
        print(done.stdout, end="")
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            failed.append(step[0])
        print(f"(took {time.monotonic() - started:.0f} s)", flush=True)
        verdicts += [
            (step[0], line.strip()) for line in done.stdout.splitlines() if VERDICT.search(line)
        ]
    print("\n==> every figure with a target (ARCHITECTURE §11)")
    for module, line in verdicts:
        print(f"{module:16} {line}")
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
