"""What every job a worker does shares: a verified manifest, the publisher's signature,
pulling by hash, a fresh child process per run, and the signed statement.

Invariants:
- Nothing runs before the artifact's manifest verified (fetched by digest), its engine
  is one the profile runs, and (``check_publisher``) a registered publisher key signed
  ``publish/v1`` about exactly those manifest bytes.
- Every byte a run reads was pulled by hash into the worker's cache and verified.
- A run is a fresh ``python -m workers.child`` with only ``CHILD_ENV`` of the worker's
  environment plus the profile's (its determinism controls): no token, no registry
  settings, its own working directory, and imports the worker code the worker itself
  runs (``PYTHONPATH``: the directory holding this ``workers`` package). Its end is one of: exit 0 (its outputs), a
  refusal (``refusal.json``: reason, retry, nondeterministic), stopped by the worker
  (lease lost, shutting down, too slow: retry), killed by a signal (retry: another
  try may not be), or a crash. A crash that ends in a Python exception would repeat
  identically: it fails the job once (retry=False) with the engine's own error line
  (``errors.engine_error_line``); any other crash may be retried.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clients.cache import BlobCache
from clients.client import RegistryClient
from clients.errors import ReliquaryError
from clients.progress import TransferProgress
from clients.pull import fetch_parsed_manifest, pull
from clients.trust import TrustRoot, check_attestations
from registry.core import intoto
from registry.core.dsse import sign_envelope
from registry.core.keys import SigningKey
from registry.core.manifest import ParsedManifest
from registry.core.predicates import PUBLISH, Predicate, short_name
from workers.child import REFUSED
from workers.errors import Refusal, engine_error_line, exception_line, transient
from workers.profiles import Profile

CHILD_ENV = frozenset(
    {
        "PATH",
        "HOME",
        "LANG",
        "LC_ALL",
        "TMPDIR",
        "USER",
        "VIRTUAL_ENV",
        "LD_LIBRARY_PATH",
        "RELIQUARY_VLLM_MEMORY_FRACTION",
        "HF_HUB_OFFLINE",
        "OMP_NUM_THREADS",
        "CUDA_VISIBLE_DEVICES",
    }
)


CODE = str(Path(__file__).resolve().parents[1])  # the directory that holds this ``workers``


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    profile: Profile
    key: SigningKey
    work_dir: Path
    cache: BlobCache
    runs: int = 3
    run_timeout_seconds: float = 1800.0


class JobRun:
    """One claimed job's working state; ``Verification`` and ``Evaluation`` build on it."""

    def __init__(
        self,
        client: RegistryClient,
        options: WorkerOptions,
        job: dict[str, Any],
        cancelled: threading.Event,
        log: logging.Logger,
    ) -> None:
        self.log = log
        self.client = client
        self.options = options
        self.job = job
        self.cancelled = cancelled
        self.dir = options.work_dir / str(job["id"])

    # -- the manifest, the engine, the publisher ------------------------------------------
    def _manifest(self, ref: str) -> ParsedManifest:
        try:
            return fetch_parsed_manifest(self.client, ref)
        except ReliquaryError as exc:
            raise Refusal(f"cannot fetch a verified manifest for {ref}: {exc}", retry=True) from exc

    def _check_engine(self, parsed: ParsedManifest) -> None:
        manifest, profile = parsed.manifest, self.options.profile
        engine = (manifest.runtime or {}).get("engine")
        if engine not in profile.engines:
            raise Refusal(
                f"{manifest.name}@{manifest.version} has runtime.engine {engine!r}; "
                f"{profile.name} runs {sorted(profile.engines)}"
            )

    def _check_publisher(self, parsed: ParsedManifest) -> None:
        try:
            keys = self.client.keys()
            listed = self.client.attestations(parsed.digests.blake3, PUBLISH)
        except ReliquaryError as exc:
            raise Refusal(f"cannot read keys and attestations: {exc}", retry=True) from exc
        root = TrustRoot.from_json(json.dumps(keys).encode(), "the registry's keys")
        checks = check_attestations(listed, parsed, root)
        if not any(c.verified and c.predicate_type == short_name(PUBLISH) for c in checks):
            why = "; ".join(c.reason for c in checks) or "none is stored"
            raise Refusal(
                f"no publish/v1 statement about {parsed.digests.blake3} verifies with a "
                f"registered publisher key ({why}); sign it (`reliquary sign REF --predicate "
                "publish`) and request verification again"
            )

    # -- pull by hash ---------------------------------------------------------------------
    def _pull_all(self, wanted: list[tuple[str, Path]]) -> None:
        """Pull each (ref, directory) by hash, every byte verified, before anything runs."""
        quiet = TransferProgress(enabled=False)
        try:
            for ref, where in wanted:
                pull(self.client, ref, where, cache=self.options.cache, progress=quiet)
        except ReliquaryError as exc:
            raise Refusal(
                f"refusing before running anything: pulling by hash failed: {exc}", retry=True
            ) from exc

    # -- one run in a fresh process ---------------------------------------------------------
    def _run_child(self, label: str, out: Path, args: list[str]) -> float:
        """Run ``python -m workers.child ARGS`` in ``out``; its seconds once it exited 0.

        Raises:
            Refusal: the run refused, was stopped, killed, or crashed (see the module).
        """
        # the model is untrusted code: it gets no token, no registry settings, and runs
        # in its own directory (keep worker keys out of its reach; see README)
        env = {k: v for k, v in os.environ.items() if k in CHILD_ENV} | self.options.profile.env
        env["PYTHONPATH"] = CODE  # the child runs this very worker code, wherever it came from
        command = [
            sys.executable,
            "-s",  # no user site-packages
            "-P",  # no script dir on sys.path; not -I: its -E would drop PYTHONHASHSEED
            "-m",
            "workers.child",
            *args,
        ]
        stderr_path = out / "stderr.txt"
        started = time.monotonic()
        with stderr_path.open("wb") as stderr:
            child = subprocess.Popen(command, env=env, stdout=stderr, stderr=stderr, cwd=out)
            while True:
                try:
                    code = child.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    late = time.monotonic() - started > self.options.run_timeout_seconds
                    if self.cancelled.is_set() or late:
                        child.kill()
                        child.wait()
                        raise Refusal(
                            f"{label} was stopped: "
                            + (
                                "the worker is shutting down or lost its lease"
                                if not late
                                else f"it took over {self.options.run_timeout_seconds:.0f} s"
                            ),
                            retry=True,
                        ) from None
        seconds = time.monotonic() - started
        if code == REFUSED:
            refusal = json.loads((out / "refusal.json").read_text())
            raise Refusal(
                str(refusal["reason"]),
                retry=bool(refusal["retry"]),
                nondeterministic=bool(refusal["nondeterministic"]),
            )
        if code != 0:
            raise crash(label, code, stderr_path.read_bytes().decode(errors="replace"))
        return seconds

    # -- the statement ----------------------------------------------------------------------
    def _signed(self, parsed: ParsedManifest, predicate: Predicate) -> bytes:
        manifest = parsed.manifest
        statement = intoto.statement_for(manifest.name, manifest.version, parsed.digests, predicate)
        return sign_envelope(statement.to_payload(), self.options.key).to_json()


def crash(label: str, code: int, stderr: str) -> Refusal:
    """The refusal for a run that exited with ``code`` (neither 0 nor a refusal)."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return Refusal(
            f"{label} was killed by {name} (out of memory?); "
            f"its last output: {engine_error_line(stderr)}",
            retry=True,
        )
    line = exception_line(stderr)
    if line is not None:  # the same inputs would raise it again, unless the host ran short
        return Refusal(f"{label} failed with exit code {code}: {line}", retry=transient(line))
    return Refusal(
        f"{label} crashed with exit code {code}: {engine_error_line(stderr)}", retry=True
    )
