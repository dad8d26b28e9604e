"""``reliquary audit verify``: check the transparency log like an auditor, trusting only pins.

Library code (``clients.audit``) raises; this module prints. Any failed check exits
4 and leaves the state file as it was.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from clients._cli import cli, client_of, emit, say
from clients.audit import AuditReport, audit_verify, default_state_path


@cli.group()
def audit() -> None:
    """Audit the transparency log: signed checkpoints, consistency and inclusion proofs."""


@audit.command("verify")
@click.option(
    "--state-file",
    "state_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Pinned key and last checkpoint [~/.config/reliquary/audit-<sha256(url)[:16]>.json].",
)
@click.option(
    "--entry", "entries", type=int, multiple=True, help="Prove entry N is in the log; repeatable."
)
@click.option(
    "--all", "check_all", is_flag=True, help="Fetch every entry and rebuild the tree from them."
)
@click.option(
    "--state",
    "check_state",
    is_flag=True,
    help="Replay every channel move in the log and compare with the channels served "
    "(implies --all).",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def audit_verify_command(
    ctx: click.Context,
    state_path: Path | None,
    entries: tuple[int, ...],
    check_all: bool,
    check_state: bool,
    as_json: bool,
) -> None:
    """Verify the signed checkpoint extends the last one seen, then pin it.

    The first run pins the log key and checkpoint (trust on first use); later runs
    fail if the key changed or the new tree does not extend the pinned one.
    """
    client = client_of(ctx)
    path = state_path or default_state_path(client.base_url)
    report = audit_verify(
        client, path, entries=entries, check_all=check_all, check_state=check_state
    )
    emit(as_json, asdict(report), lambda: _print(report))


def _print(report: AuditReport) -> None:
    if report.previous_size is None:
        say(f"first run: pinned log key {report.log_key} in {report.state_file}")
    elif report.previous_size == report.size:
        say(f"the log still has {report.size} entries, with the pinned root")
    else:
        say(
            f"consistency proof verified: the log grew from {report.previous_size} "
            f"to {report.size} entries without rewriting history"
        )
    for index in report.entries:
        say(f"entry {index} is included in the checkpoint (inclusion proof verified)")
    if report.all_entries:
        say(f"all {report.size} entries hash to the checkpoint root")
    if report.channels is not None:
        say(f"{len(report.channels)} channel(s) served exactly as the log's moves left them")
    click.echo(f"{report.origin} {report.size} {report.root}")
