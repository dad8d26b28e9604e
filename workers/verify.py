"""Verifying one job: pull by hash, check the publisher's signature, run the reference
inputs R times in fresh processes, and sign what was observed.

Order, each step fail-closed (``Refusal``, nothing attested):
1. the manifest is fetched by its digest and verified (``clients.pull``), and its
   runtime engine is one this profile runs;
2. a ``publish/v1`` statement about exactly these manifest bytes verifies with a
   registered, unrevoked publisher key of the registry's;
3. the model and its reference-inputs artifact (``kind: reference-inputs``, named by
   digest in the manifest) are pulled by hash into the worker's cache, every byte
   verified, before anything runs;
4. each of the R runs is a fresh ``python -m workers.child`` with the profile's
   environment; a run that refuses (a control that cannot be applied, an op that
   cannot be deterministic, inputs that do not fit) ends the job with its reason;
5. the statement records every run's output digest, whether they all agreed, the
   engine, device, host and determinism settings, and timings. Runs that disagree
   are attested as such: a finding is never hidden.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
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
from registry.core.digest import Digest, digest_bytes
from registry.core.dsse import sign_envelope
from registry.core.keys import SigningKey
from registry.core.manifest import ParsedManifest
from registry.core.predicates import (
    PUBLISH,
    Engine,
    ReproducibilityPredicate,
    Run,
    short_name,
    values_from_json,
)
from workers.child import REFUSED
from workers.errors import Refusal
from workers.host import fingerprint
from workers.profiles import Profile

STDERR_TAIL = 1500
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


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    profile: Profile
    key: SigningKey
    work_dir: Path
    cache: BlobCache
    runs: int = 3
    run_timeout_seconds: float = 1800.0


@dataclass(frozen=True, slots=True)
class RunResult:
    output: str  # blake3 digest of the canonical output encoding
    seconds: float
    about: dict[str, Any]


class Verification:
    """One claimed job; ``run()`` returns the signed envelope or raises Refusal."""

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

    def run(self) -> bytes:
        started = time.monotonic()
        shutil.rmtree(self.dir, ignore_errors=True)  # what a killed worker left behind
        try:
            parsed = self._manifest(str(self.job["artifact"]))
            inputs_ref = self._check_runnable(parsed)
            self._check_publisher(parsed)
            pulled = time.monotonic()
            model_dir, inputs_dir = self._pull(parsed, inputs_ref)
            pull_seconds = time.monotonic() - pulled
            self.log.info("job %s: pulled and verified in %.1f s", self.job["id"], pull_seconds)
            results = []
            for i in range(self.options.runs):
                results.append(self._run_once(i, model_dir, inputs_dir, parsed))
                self.log.info(
                    "job %s: run %d/%d: %s in %.1f s",
                    self.job["id"],
                    i + 1,
                    self.options.runs,
                    results[-1].output,
                    results[-1].seconds,
                )
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
        return self._sign(parsed, inputs_ref, results, pull_seconds, time.monotonic() - started)

    # -- 1. the manifest ----------------------------------------------------------------
    def _manifest(self, ref: str) -> ParsedManifest:
        try:
            return fetch_parsed_manifest(self.client, ref)
        except ReliquaryError as exc:
            raise Refusal(f"cannot fetch a verified manifest for {ref}: {exc}", retry=True) from exc

    def _check_runnable(self, parsed: ParsedManifest) -> str:
        manifest, profile = parsed.manifest, self.options.profile
        engine = (manifest.runtime or {}).get("engine")
        if engine not in profile.engines:
            raise Refusal(
                f"{manifest.name}@{manifest.version} has runtime.engine {engine!r}; "
                f"{profile.name} runs {sorted(profile.engines)}"
            )
        if manifest.reference is None:
            raise Refusal(
                f"{manifest.name}@{manifest.version} names no reference inputs "
                "(manifest reference.inputs); push it with --reference-inputs REF"
            )
        return manifest.reference.inputs

    # -- 2. the publisher's signature -----------------------------------------------------
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

    # -- 3. pull by hash ----------------------------------------------------------------
    def _pull(self, parsed: ParsedManifest, inputs_ref: str) -> tuple[Path, Path]:
        inputs = self._manifest(inputs_ref)
        if inputs.manifest.kind != "reference-inputs":
            raise Refusal(
                f"reference.inputs {inputs_ref} is a {inputs.manifest.kind!r} artifact, not "
                "reference-inputs"
            )
        model_dir, inputs_dir = self.dir / "model", self.dir / "inputs"
        quiet = TransferProgress(enabled=False)
        try:
            for ref, where in ((str(parsed.digests.blake3), model_dir), (inputs_ref, inputs_dir)):
                pull(self.client, ref, where, cache=self.options.cache, progress=quiet)
        except ReliquaryError as exc:
            raise Refusal(
                f"refusing before running anything: pulling by hash failed: {exc}", retry=True
            ) from exc
        return model_dir, inputs_dir

    # -- 4. R runs, each a fresh process ----------------------------------------------------
    def _run_once(self, index: int, model: Path, inputs: Path, parsed: ParsedManifest) -> RunResult:
        out = self.dir / f"run-{index}"
        out.mkdir(parents=True)
        # the model is untrusted code: it gets no token, no registry settings, and runs
        # in its own directory (keep worker keys out of its reach; see README)
        env = {k: v for k, v in os.environ.items() if k in CHILD_ENV} | self.options.profile.env
        command = [
            sys.executable,
            "-s",  # no user site-packages
            "-P",  # no script dir on sys.path; not -I: its -E would drop PYTHONHASHSEED
            "-m",
            "workers.child",
            self.options.profile.name,
            str(model),
            str(inputs),
            json.dumps(dict(parsed.manifest.runtime or {})),
            str(out),
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
                            f"run {index + 1} was stopped: "
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
            tail = stderr_path.read_bytes()[-STDERR_TAIL:].decode(errors="replace")
            raise Refusal(f"run {index + 1} crashed with exit code {code}: {tail}", retry=True)
        encoded = (out / "outputs.bin").read_bytes()
        about = json.loads((out / "about.json").read_text())
        return RunResult(str(digest_bytes(encoded).blake3), seconds, about)

    # -- 5. the statement -------------------------------------------------------------------
    def _sign(
        self,
        parsed: ParsedManifest,
        inputs_ref: str,
        results: list[RunResult],
        pull_seconds: float,
        total_seconds: float,
    ) -> bytes:
        first = results[0].about
        runs = tuple(Run(Digest.parse(r.output), round(r.seconds, 3)) for r in results)
        values = first.get("values")
        predicate = ReproducibilityPredicate(
            profile=self.options.profile.name,
            engine=Engine.from_json(first["engine"]),
            device=first["device"],
            host=fingerprint(self.options.profile.libraries),
            determinism=first["determinism"],
            inputs=Digest.parse(inputs_ref),
            runs=runs,
            output=runs[0].output,
            agree=len({r.output for r in runs}) == 1,
            worker=self.options.key.public.keyid,
            timings={
                "pull_seconds": round(pull_seconds, 3),
                "inference_seconds": round(sum(r.seconds for r in results), 3),
                "total_seconds": round(total_seconds, 3),
            },
            values=None if values is None else values_from_json(values),
            job=str(self.job["id"]),
        )
        manifest = parsed.manifest
        statement = intoto.statement_for(manifest.name, manifest.version, parsed.digests, predicate)
        return sign_envelope(statement.to_payload(), self.options.key).to_json()
