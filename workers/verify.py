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
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.core.digest import Digest, digest_bytes
from registry.core.manifest import ParsedManifest
from registry.core.predicates import (
    Engine,
    ReproducibilityPredicate,
    Run,
    values_from_json,
)
from workers.errors import Refusal
from workers.host import fingerprint
from workers.runs import JobRun

__all__ = ["RunResult", "Verification"]


@dataclass(frozen=True, slots=True)
class RunResult:
    output: str  # blake3 digest of the canonical output encoding
    seconds: float
    about: dict[str, Any]


class Verification(JobRun):
    """One claimed reproduce job; ``run()`` returns the signed envelope or raises Refusal."""

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

    # -- 1. the manifest (JobRun._manifest) and its engine ---------------------------------
    def _check_runnable(self, parsed: ParsedManifest) -> str:
        self._check_engine(parsed)
        manifest = parsed.manifest
        if manifest.reference is None:
            raise Refusal(
                f"{manifest.name}@{manifest.version} names no reference inputs "
                "(manifest reference.inputs); push it with --reference-inputs REF"
            )
        return manifest.reference.inputs

    # -- 2. the publisher's signature: JobRun._check_publisher ------------------------------

    # -- 3. pull by hash ----------------------------------------------------------------
    def _pull(self, parsed: ParsedManifest, inputs_ref: str) -> tuple[Path, Path]:
        inputs = self._manifest(inputs_ref)
        if inputs.manifest.kind != "reference-inputs":
            raise Refusal(
                f"reference.inputs {inputs_ref} is a {inputs.manifest.kind!r} artifact, not "
                "reference-inputs"
            )
        model_dir, inputs_dir = self.dir / "model", self.dir / "inputs"
        self._pull_all([(str(parsed.digests.blake3), model_dir), (inputs_ref, inputs_dir)])
        return model_dir, inputs_dir

    # -- 4. R runs, each a fresh process ----------------------------------------------------
    def _run_once(self, index: int, model: Path, inputs: Path, parsed: ParsedManifest) -> RunResult:
        out = self.dir / f"run-{index}"
        out.mkdir(parents=True)
        seconds = self._run_child(
            f"run {index + 1}",
            out,
            [
                self.options.profile.name,
                str(model),
                str(inputs),
                json.dumps(dict(parsed.manifest.runtime or {})),
                str(out),
            ],
        )
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
        return self._signed(parsed, predicate)
