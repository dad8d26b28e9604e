"""The worker loop: claim, heartbeat, verify or evaluate, complete or fail; shut down gracefully.

Invariants:
- A job is worked on only while its lease is ours: a heartbeat thread extends it at a
  third of the lease; when the registry says the lease is gone, the current run is
  killed and nothing is completed.
- Every claimed job ends in exactly one of: completed with a signed statement, failed
  with a reason (queued again when ``Refusal.retry``), or abandoned to lease expiry
  (the process died). A dead worker delays a job, never loses it.
- First SIGTERM/SIGINT: finish the current job, then exit. Second: kill the run, give
  the lease back (``fail`` with retry), exit. A signal while waiting for a job (a
  long-polled claim) ends the wait at once; should the registry have leased a job in
  that instant, the answer is lost and that lease expires (as for any lost answer).
- Idle, the worker long-polls (``wait_seconds``): the registry answers as soon as a
  job is claimable, so jobs start at once and an idle worker asks rarely. Against a
  registry that does not long-poll (its 400 names the ``wait_seconds`` field: unknown,
  or above its cap), it asks every ``poll_seconds`` from then on; any other refused
  claim is retried after ``poll_seconds``, still long-polled.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from clients.client import RegistryClient
from clients.errors import InvalidRequestError, RefusedError, ReliquaryError, TransportError
from workers.errors import Refusal
from workers.evaluate import Evaluation
from workers.runs import WorkerOptions
from workers.verify import Verification

log = logging.getLogger("reliquary.worker")


def _refuses_long_poll(exc: InvalidRequestError) -> bool:
    """Whether a refused claim names ``wait_seconds`` (a registry older than long
    polling calls it an unknown field), rather than anything else in the claim."""
    problem = exc.problem or {}
    said = [problem.get("detail")]
    for error in problem.get("errors") or []:
        if isinstance(error, dict):
            said += [error.get("key"), error.get("message")]
    return any(isinstance(text, str) and "wait_seconds" in text for text in said)


def _work(task: object) -> type[Verification | Evaluation]:
    """The kind of work a job's ``task`` asks for.

    Raises:
        Refusal: (retry: a newer worker may know it) an unknown task.
    """
    if task == "reproduce":
        return Verification
    if task == "evaluate":
        return Evaluation
    raise Refusal(f"this worker does not know the job task {task!r}; upgrade it", retry=True)


class _WaitInterruptedError(BaseException):  # raised by the signal handler, like KeyboardInterrupt
    """A signal came while the worker was only waiting for a job: stop waiting."""


class Heartbeat(threading.Thread):
    """Extends one job's lease until stopped; sets ``lost`` (and ``cancel``) if refused."""

    def __init__(
        self, client: RegistryClient, job: dict[str, Any], cancel: threading.Event
    ) -> None:
        super().__init__(name=f"heartbeat-{job['id']}", daemon=True)
        self.client = client
        self.job_id = str(job["id"])
        self.cancel = cancel
        self.lost = False
        self._halt = threading.Event()
        expires = datetime.fromisoformat(str(job["lease_expires_at"]))
        self.interval = max(0.5, (expires - datetime.now(UTC)).total_seconds() / 3)

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                self.client.heartbeat_job(self.job_id)
            except RefusedError as exc:
                log.error("job %s: lease lost (%s); stopping work on it", self.job_id, exc)
                self.lost = True
                self.cancel.set()
                return
            except ReliquaryError as exc:  # transient: the lease has slack for two misses
                log.warning("job %s: heartbeat failed (%s); trying again", self.job_id, exc)

    def stop(self) -> None:
        self._halt.set()
        self.join()


class Worker:
    def __init__(
        self,
        client: RegistryClient,
        options: WorkerOptions,
        *,
        name: str | None = None,
        poll_seconds: float = 2.0,
        wait_seconds: float = 20.0,
    ) -> None:
        self.client = client
        self.options = options
        self.name = name or (
            f"{socket.gethostname()}/{options.profile.name}/{options.key.public.keyid[:12]}"
        )
        self.poll_seconds = poll_seconds
        self.wait_seconds = wait_seconds  # long poll per claim; 0: poll every poll_seconds
        self._waiting = False  # inside a long-polled claim, holding no job
        self.stopping = threading.Event()  # finish the current job, take no more
        self.aborting = threading.Event()  # give the current job back now
        self.done = 0

    def install_signal_handlers(self) -> None:
        def handle(signum: int, _: FrameType | None) -> None:
            if self.stopping.is_set():
                log.warning("second %s: giving the current job back", signal.Signals(signum).name)
                self.aborting.set()
            else:
                log.warning(
                    "%s: finishing the current job, then exiting (again to stop now)",
                    signal.Signals(signum).name,
                )
                self.stopping.set()
                if self._waiting:
                    raise _WaitInterruptedError

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def run(self, *, once: bool = False, max_jobs: int | None = None) -> int:
        """Work until stopped (``once``: until the queue is empty). The jobs handled."""
        log.info(
            "worker %s serving %s at %s", self.name, self.options.profile.name, self.client.base_url
        )
        while not self.stopping.is_set() and (max_jobs is None or self.done < max_jobs):
            wait = 0.0 if once else self.wait_seconds
            try:
                job = self._claim(wait)
            except _WaitInterruptedError:
                break
            except (TransportError, ReliquaryError) as exc:
                if wait and isinstance(exc, InvalidRequestError) and _refuses_long_poll(exc):
                    log.warning("the registry does not long-poll claims (%s); polling", exc)
                    self.wait_seconds = 0.0
                    continue
                log.warning("cannot claim a job (%s); retrying in %.0f s", exc, self.poll_seconds)
                self.stopping.wait(self.poll_seconds)
                continue
            if job is None:
                if once:
                    break
                if not wait:
                    self.stopping.wait(self.poll_seconds)
                continue
            self.handle(job)
            self.done += 1
        return self.done

    def _claim(self, wait: float) -> dict[str, Any] | None:
        """One claim; a long poll (``wait`` > 0) is cut short by a signal (it raises
        ``_WaitInterruptedError``)."""
        self._waiting = wait > 0
        try:
            if self.stopping.is_set():
                raise _WaitInterruptedError
            return self.client.claim_job([self.options.profile.name], self.name, wait_seconds=wait)
        finally:
            self._waiting = False

    def handle(self, job: dict[str, Any]) -> None:
        job_id = str(job["id"])
        task = job.get("task") or "reproduce"  # a registry before evaluation sends none
        log.info(
            "job %s: %s %s (attempt %s)",
            job_id,
            "evaluating" if task == "evaluate" else "verifying",
            job["artifact"],
            job.get("attempts"),
        )
        cancel = threading.Event()
        relay = threading.Thread(target=self._relay_abort, args=(cancel,), daemon=True)
        relay.start()
        heartbeat = Heartbeat(self.client, job, cancel)
        heartbeat.start()
        started = time.monotonic()
        try:
            envelope = _work(task)(self.client, self.options, job, cancel, log).run()
        except Refusal as refusal:
            heartbeat.stop()
            self._give_up(job_id, refusal, heartbeat.lost)
            return
        except Exception as exc:  # a worker bug or a local fault: the job goes back
            log.exception("job %s: the worker failed", job_id)
            heartbeat.stop()
            reason = f"the worker failed: {type(exc).__name__}: {exc}"
            self._give_up(job_id, Refusal(reason, retry=True), heartbeat.lost)
            return
        finally:
            cancel.set()  # ends the relay thread
            heartbeat.stop()
        if heartbeat.lost:
            log.error("job %s: lease lost; the result is discarded", job_id)
            return
        try:
            self.client.complete_job(job_id, envelope)
        except ReliquaryError as exc:
            log.error("job %s: the registry refused the statement: %s", job_id, exc)
            self._give_up(
                job_id, Refusal(f"the registry refused the statement: {exc}", retry=True), False
            )
            return
        log.info("job %s: attested in %.1f s", job_id, time.monotonic() - started)

    def _relay_abort(self, cancel: threading.Event) -> None:
        while not cancel.wait(0.2):
            if self.aborting.is_set():
                cancel.set()

    def _give_up(self, job_id: str, refusal: Refusal, lost: bool) -> None:
        if lost:
            return
        log.error("job %s: %s", job_id, refusal.reason)
        try:
            self.client.fail_job(
                job_id,
                refusal.reason,
                retry=refusal.retry,
                nondeterministic=refusal.nondeterministic,
            )
        except ReliquaryError as exc:  # the lease will expire and the job be redone
            log.error("job %s: could not report the failure (%s)", job_id, exc)
