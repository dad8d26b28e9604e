"""``reliquary-worker run --profile P --key KEY``: a verification worker.

It talks to the registry only over HTTP (``clients``), with a worker-role token
(``--token`` / ``RELIQUARY_TOKEN``) and a registered worker signing key. It refuses to
start when its profile's engine is not installed or its key is not a registered,
unrevoked worker key: fail-closed before the first claim, not on every job.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from clients.cache import BlobCache
from clients.client import RegistryClient
from clients.config import cache_root, load_config
from clients.errors import ReliquaryError
from clients.signing import load_signing_key, public_key_path
from workers.loop import Worker
from workers.profiles import PROFILES
from workers.runs import WorkerOptions

EXIT_REFUSED = 5


def _fail(message: str, code: int = EXIT_REFUSED) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@click.group()
def main() -> None:
    """Reliquary verification worker."""


@main.command()
@click.option("--profile", type=click.Choice(sorted(PROFILES)), required=True)
@click.option(
    "--key",
    "key_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Worker signing key (PEM), registered with role worker.",
)
@click.option("--url", envvar="RELIQUARY_URL", default=None, help="Registry URL [RELIQUARY_URL].")
@click.option(
    "--token", envvar="RELIQUARY_TOKEN", default=None, help="Worker token [RELIQUARY_TOKEN]."
)
@click.option(
    "--runs",
    type=click.IntRange(2, 20),
    default=3,
    show_default=True,
    help="Reference runs per job, each in a fresh process.",
)
@click.option("--once", is_flag=True, help="Exit when no job is queued.")
@click.option("--max-jobs", type=click.IntRange(1), default=None, help="Exit after this many jobs.")
@click.option(
    "--poll",
    "poll_seconds",
    type=float,
    default=2.0,
    show_default=True,
    help="Seconds between claims while the queue is empty (registries that do not long-poll).",
)
@click.option(
    "--wait",
    "wait_seconds",
    type=click.FloatRange(0, 30),
    default=20.0,
    show_default=True,
    help="Seconds the registry may hold a claim until a job comes (long poll; 0: poll).",
)
@click.option(
    "--run-timeout", type=float, default=1800.0, show_default=True, help="Seconds one run may take."
)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Scratch space for pulled artifacts [cache dir/worker/KEYID].",
)
@click.option("--name", default=None, help="How this worker is shown in job status.")
def run(
    profile: str,
    key_path: Path,
    url: str | None,
    token: str | None,
    runs: int,
    once: bool,
    max_jobs: int | None,
    poll_seconds: float,
    wait_seconds: float,
    run_timeout: float,
    work_dir: Path | None,
    name: str | None,
) -> None:
    """Claim verification jobs for PROFILE and attest what the reference runs produce."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    chosen = PROFILES[profile]
    if not chosen.installed():
        _fail(
            f"{profile} needs the {chosen.module!r} package, which is not installed: {chosen.install}"
        )
    try:
        key = load_signing_key(key_path)
    except (ReliquaryError, OSError) as exc:
        _fail(str(exc), 2)
    config = load_config(url, token)
    if config.token is None:
        _fail(
            "a worker token is needed: --token or RELIQUARY_TOKEN (reliquary-server token create --role worker)",
            6,
        )
    # one cache per worker key: two processes never write the same partial download
    home = (work_dir or cache_root() / "worker" / key.public.keyid[:16]).absolute()
    options = WorkerOptions(
        profile=chosen,
        key=key,
        work_dir=home / "jobs",
        cache=BlobCache(home / "cache"),
        runs=runs,
        run_timeout_seconds=run_timeout,
    )
    with RegistryClient(config.url, config.token) as client:
        try:
            registered = {k.get("keyid"): k for k in client.keys(role="worker")}
        except ReliquaryError as exc:
            _fail(f"cannot reach the registry at {config.url}: {exc}", 1)
        entry = registered.get(key.public.keyid)
        if entry is None or entry.get("revoked_at"):
            _fail(
                f"key {key.public.keyid} is not a registered, unrevoked worker key; register it: "
                f"reliquary keys register {public_key_path(key_path)} --role worker"
            )
        worker = Worker(
            client, options, name=name, poll_seconds=poll_seconds, wait_seconds=wait_seconds
        )
        worker.install_signal_handlers()
        handled = worker.run(once=once, max_jobs=max_jobs)
    logging.getLogger("reliquary.worker").info("stopped after %d job(s)", handled)
