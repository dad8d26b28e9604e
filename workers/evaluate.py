"""Evaluating one job (ARCHITECTURE §13): predict a channel's dataset in a fresh process,
measure it, and sign ``evaluation/v1``.

Order, each step fail-closed (``Refusal``, nothing attested):
1. the model's manifest is fetched by its digest and verified, its engine is one this
   profile runs, and a registered publisher key signed ``publish/v1`` about it;
2. the dataset's manifest is fetched by the task's digest: a ``dataset`` artifact with
   a description whose files are the kind the profile's models take
   (``workers.datasets.check_profile``: text for LLMs, ``.npy`` for tensor models), of
   at least ``min_samples`` samples (checked before anything is pulled or run; no
   retry, naming the file or both numbers); with a baseline, its manifest too;
3. model, dataset (and baseline) are pulled by hash, every byte verified, and every
   dataset file is checked against the description (``workers.datasets``);
4. the candidate predicts every sample in a fresh ``python -m workers.child evaluate``
   under the profile's determinism controls; a label output it lacks, or a prediction
   count that is not the sample count, is refused (no retry);
5. with a baseline, it predicts the same dataset in its own fresh process; when the
   task names the baseline's agreed predictions digest, this worker's must equal it;
6. the metrics (``workers.metrics``) are computed here, in the parent, from the
   canonical predictions bytes whose digest is signed, and the statement records
   them with the thresholds as the task gives them, the dataset digest, the
   predictions {count, digest}, profile, engine, device, host, determinism, job,
   channel, drift and timings. Drift's tolerance is the task's for tensor models and
   always 0.0 for LLMs (a prompt moved when any of its token ids changed; the registry's
   policy refuses a non-zero tolerance for an LLM profile, so the task's is never used).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from registry.core.datasets import Dataset
from registry.core.digest import Digest, digest_bytes
from registry.core.manifest import ParsedManifest
from registry.core.predicates import Drift, Engine, EvaluationPredicate, Predictions
from registry.core.profiles import LLM_PROFILES
from workers.child import EVALUATE
from workers.datasets import check_files, check_profile
from workers.errors import Refusal
from workers.host import fingerprint
from workers.runs import JobRun


@dataclass(frozen=True, slots=True)
class Task:
    """The ``evaluation`` object of a claimed evaluate job (``EvaluationTask``)."""

    dataset: str
    dataset_ref: str
    min_samples: int
    thresholds: dict[str, str]
    baseline: str | None
    baseline_predictions: str | None
    tolerance: float

    @classmethod
    def of(cls, job: dict[str, Any]) -> Task:
        """Raises Refusal (no retry): the job carries no usable evaluation task."""
        doc = job.get("evaluation")
        if not isinstance(doc, dict) or not isinstance(job.get("channel"), str):
            raise Refusal("an evaluate job must carry its channel and evaluation task")
        try:
            return cls(
                dataset=str(doc["dataset"]),
                dataset_ref=str(doc.get("dataset_ref") or doc["dataset"]),
                min_samples=int(doc.get("min_samples") or 0),
                thresholds={str(k): str(v) for k, v in (doc.get("thresholds") or {}).items()},
                baseline=doc.get("baseline"),
                baseline_predictions=doc.get("baseline_predictions"),
                tolerance=float(doc.get("tolerance") or 0.0),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise Refusal(f"the job's evaluation task is malformed: {exc!r}") from exc


@dataclass(frozen=True, slots=True)
class Predicted:
    """One model's predictions of the whole dataset, as its run wrote them."""

    digest: str  # blake3 of the canonical predictions encoding
    tensors: dict[str, Any]  # name -> numpy array (decoded from those very bytes)
    about: dict[str, Any]
    seconds: float


class Evaluation(JobRun):
    """One claimed evaluate job; ``run()`` returns the signed envelope or raises Refusal."""

    def run(self) -> bytes:
        started = time.monotonic()
        task = Task.of(self.job)
        shutil.rmtree(self.dir, ignore_errors=True)  # what a killed worker left behind
        try:
            # 1. the model
            parsed = self._manifest(str(self.job["artifact"]))
            self._check_engine(parsed)
            self._check_publisher(parsed)
            # 2. the dataset (and the baseline), before pulling anything
            dataset = self._dataset(task)
            baseline = None
            if task.baseline is not None:
                baseline = self._manifest(task.baseline)
                self._check_engine(baseline)
            # 3. pull by hash; check the dataset's files
            pulled = time.monotonic()
            model_dir, data_dir, base_dir = (self.dir / p for p in ("model", "dataset", "base"))
            wanted = [(str(parsed.digests.blake3), model_dir), (task.dataset, data_dir)]
            if baseline is not None:
                wanted.append((str(baseline.digests.blake3), base_dir))
            self._pull_all(wanted)
            check_files(dataset, data_dir)
            pull_seconds = time.monotonic() - pulled
            self.log.info("job %s: pulled and verified in %.1f s", self.job["id"], pull_seconds)
            # 4. the candidate; 5. the baseline
            candidate = self._predict("candidate", parsed, model_dir, data_dir, dataset)
            old = None
            if baseline is not None:
                old = self._predict("baseline", baseline, base_dir, data_dir, dataset)
                if task.baseline_predictions not in (None, old.digest):
                    raise Refusal(
                        f"the baseline {task.baseline} predicted {old.digest} here, but the "
                        f"workers that measured it agreed on {task.baseline_predictions}: this "
                        "host does not reproduce it; drift cannot be measured against it"
                    )
            # 6. measure
            measured = time.monotonic()
            predicate = self._predicate(task, dataset, data_dir, candidate, old)
            metrics_seconds = time.monotonic() - measured
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
        timings = {
            "pull_seconds": round(pull_seconds, 3),
            "inference_seconds": round(candidate.seconds, 3),
            "metrics_seconds": round(metrics_seconds, 3),
            "total_seconds": round(time.monotonic() - started, 3),
        }
        if old is not None:
            timings["baseline_seconds"] = round(old.seconds, 3)
        return self._signed(parsed, dataclasses.replace(predicate, timings=timings))

    # -- 2. the dataset -----------------------------------------------------------------
    def _dataset(self, task: Task) -> Dataset:
        parsed = self._manifest(task.dataset)
        manifest = parsed.manifest
        if manifest.kind != "dataset" or manifest.dataset is None:
            raise Refusal(
                f"{task.dataset_ref} ({task.dataset}) is a {manifest.kind!r} artifact"
                + ("" if manifest.kind != "dataset" else " without a description")
                + "; a policy's evaluation dataset is a kind dataset artifact with its description"
            )
        profile = self.options.profile.name
        check_profile(manifest.dataset, profile, llm=profile in LLM_PROFILES)
        samples = manifest.dataset.samples
        if samples < task.min_samples:
            raise Refusal(
                f"the dataset {task.dataset_ref} has {samples} samples, fewer than the "
                f"{task.min_samples} (min_samples) that channel {self.job['channel']}'s policy "
                "requires; refused before pulling the model: push a larger dataset and point "
                "the policy at it"
            )
        return manifest.dataset

    # -- 4./5. one model's predictions in a fresh process ---------------------------------
    def _predict(
        self, label: str, parsed: ParsedManifest, model: Path, data: Path, dataset: Dataset
    ) -> Predicted:
        from workers import metrics

        out = self.dir / f"run-{label}"
        out.mkdir(parents=True)
        seconds = self._run_child(
            f"the {label} run",
            out,
            [
                EVALUATE,
                self.options.profile.name,
                str(model),
                str(data),
                json.dumps(msgspec.to_builtins(dataset)),
                json.dumps(dict(parsed.manifest.runtime or {})),
                str(out),
            ],
        )
        encoded = (out / "predictions.bin").read_bytes()
        tensors = metrics.decode(encoded)
        about = json.loads((out / "about.json").read_text())
        if self.options.profile.name in LLM_PROFILES:
            counts = {"prompts": len(metrics.token_ids(tensors))}
        else:
            missing = sorted(set(dataset.labels) - set(tensors))
            if missing:
                raise Refusal(
                    f"the {label} model has no output {', '.join(map(repr, missing))} that the "
                    f"dataset's labels name (its predictions: {sorted(tensors)})"
                )
            counts = {n: int(tensors[n].shape[0]) if tensors[n].ndim else 1 for n in dataset.labels}
        wrong = {n: c for n, c in counts.items() if c != dataset.samples}
        if wrong:
            raise Refusal(
                f"the prediction count differs from the sample count: the {label} model gave "
                f"{wrong} for {dataset.samples} samples; a model whose output count differs "
                "from its input count is refused"
            )
        digest = str(digest_bytes(encoded).blake3)
        self.log.info(
            "job %s: run %s: %d predictions %s in %.1f s",
            self.job["id"],
            label,
            dataset.samples,
            digest,
            seconds,
        )
        return Predicted(digest, tensors, about, seconds)

    # -- 6. the measurement -----------------------------------------------------------------
    def _predicate(
        self,
        task: Task,
        dataset: Dataset,
        data: Path,
        candidate: Predicted,
        old: Predicted | None,
    ) -> EvaluationPredicate:
        if self.options.profile.name in LLM_PROFILES:
            scores, old_scores, moved = self._llm_measure(dataset, data, candidate, old)
        else:
            scores, old_scores, moved = self._tensor_measure(task, dataset, data, candidate, old)
        drift = None
        if old is not None and task.baseline is not None:
            assert old_scores is not None and moved is not None
            llm = self.options.profile.name in LLM_PROFILES
            drift = Drift(
                against=Digest.parse(task.baseline),
                predictions=Digest.parse(old.digest),
                metrics=old_scores,
                mean_abs_diff=moved["mean_abs_diff"],
                max_abs_diff=moved["max_abs_diff"],
                moved=moved["moved"],
                # an LLM prompt moved when any token id changed: its tolerance is always 0
                # (the registry's policy refuses a non-zero tolerance for an LLM profile)
                tolerance=0.0 if llm else task.tolerance,
            )
        about = candidate.about
        return EvaluationPredicate(
            metrics=scores,
            dataset=Digest.parse(task.dataset),
            thresholds=dict(task.thresholds),
            samples=dataset.samples,
            predictions=Predictions(dataset.samples, Digest.parse(candidate.digest)),
            profile=self.options.profile.name,
            engine=Engine.from_json(about["engine"]),
            device=str(about["device"]),
            host=fingerprint(self.options.profile.libraries),
            determinism=about["determinism"],
            worker=self.options.key.public.keyid,
            job=str(self.job["id"]),
            channel=str(self.job["channel"]),
            drift=drift,
        )

    def _tensor_measure(
        self, task: Task, dataset: Dataset, data: Path, new: Predicted, old: Predicted | None
    ) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, float] | None]:
        import numpy as np

        from workers import metrics

        n = dataset.samples
        names = sorted(dataset.labels)
        labels = [
            metrics.per_sample(np.load(data / dataset.labels[k].path, allow_pickle=False), n)
            for k in names
        ]

        def rows(predicted: Predicted, label: str) -> Any:
            out = []
            for name, y in zip(names, labels, strict=True):
                p = metrics.per_sample(predicted.tensors[name], n)
                if p.shape != y.shape:
                    raise Refusal(
                        f"the {label} model's output {name!r} has {p.shape[1]} value(s) per "
                        f"sample; its labels have {y.shape[1]}"
                    )
                out.append(p)
            return np.concatenate(out, axis=1)

        y = np.concatenate(labels, axis=1)
        p = rows(new, "candidate")
        scores = metrics.regression(p, y, task.thresholds)
        if old is None:
            return scores, None, None
        q = rows(old, "baseline")
        return (
            scores,
            metrics.regression(q, y, task.thresholds),
            metrics.tensor_drift(p, q, task.tolerance),
        )

    def _llm_measure(
        self, dataset: Dataset, data: Path, new: Predicted, old: Predicted | None
    ) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, float] | None]:
        from workers import metrics

        expected = json.loads((data / dataset.labels["expected"].path).read_text())

        def ids(predicted: Predicted) -> list[list[int]]:
            return metrics.token_ids(predicted.tensors)  # in prompt order, as expected is

        def score(predicted: Predicted) -> dict[str, Any]:
            about = predicted.about
            return metrics.llm(about["texts"], expected, ids(predicted), about["expected_ids"])

        if old is None:
            return score(new), None, None
        return score(new), score(old), metrics.token_drift(ids(new), ids(old))
