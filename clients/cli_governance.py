"""``reliquary status``, ``promote``, ``rollback``, ``history``, ``channels``, ``proposal``.

Governance tooling and auditors (ARCHITECTURE §1): policy status, moving channels,
and the history of every move. Library code (``clients.governance``) raises; this
module prints. Every REF is fetched and verified (``fetch_parsed_manifest``) before
anything is said or done about it. ``status`` and a refused ``promote`` exit 5 when
a requirement is unmet, naming each one.
"""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from clients._cli import cli, client_of, emit, out, say
from clients.cli_evaluation import evaluation_lines, metrics_table, workers_table
from clients.errors import PolicyUnmetError, RefusedError
from clients.governance import build_proposal, history_record, walk_history
from clients.pull import fetch_parsed_manifest
from registry.core.manifest import ParsedManifest

CHANNEL = click.option("--channel", required=True, help="The channel, e.g. production.")
REASON = click.option("--reason", required=True, help="Why (logged, shown to everyone).")
AS_JSON = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


def _subject(parsed: ParsedManifest) -> str:
    m = parsed.manifest
    return f"{m.name}@{m.version} ({parsed.digests.blake3})"


def _short(digest: object) -> str:
    return "(nothing)" if digest is None else str(digest)[:19] + "…"


def _print_table(table: Table) -> None:
    """Print ``table``; into a pipe or file at its natural width, never cut (so it greps)."""
    if out.is_terminal:
        out.print(table)
        return
    natural = out.measure(table, options=out.options.update(max_width=10_000)).maximum
    Console(highlight=False, width=max(out.width, natural)).print(table)


def _print_requirements(requirements: list[dict[str, Any]]) -> None:
    if not requirements:
        say("the channel's policy has no requirements")
        return
    table = Table("requirement", "status", "reason", box=None)
    for r in requirements:
        met = "met" if r.get("met") is True else "UNMET"
        table.add_row(*(Text(str(v)) for v in (r.get("requirement"), met, r.get("reason"))))
    _print_table(table)


def _print_verification(profiles: list[dict[str, Any]]) -> None:
    """Where verification stands per profile: queued / running (by whom) / attested / ..."""
    if not profiles:
        return
    table = Table("profile", "verification", "detail", box=None)
    for p in profiles:
        state = str(p.get("state"))
        if state == "attested":
            detail = f"{p.get('agreeing_workers')} worker(s) agree on {p.get('output')}"
        elif state == "disagree":
            detail = str(p.get("finding"))
        elif state == "running":
            detail = "by " + ", ".join(str(w) for w in p.get("running") or [])
        elif state == "failed":
            detail = "; ".join(str(e) for e in p.get("failed") or [])
        elif state == "queued":
            detail = f"{p.get('queued')} job(s) waiting for a worker"
        else:
            detail = "no job: request one with POST /v1/artifacts/DIGEST/verify"
        extra = []
        if state != "queued" and p.get("queued"):
            extra.append(f"{p.get('queued')} more queued")
        if state != "running" and p.get("running"):
            extra.append("running by " + ", ".join(str(w) for w in p["running"]))
        if extra:
            detail += f" ({'; '.join(extra)})"
        table.add_row(Text(str(p.get("profile"))), Text(state), Text(detail))
    _print_table(table)


def _print_evaluation(section: object) -> None:
    """What workers measured on the policy's dataset, beside its thresholds (nothing when
    the registry sends no ``evaluation`` section)."""
    if not isinstance(section, dict):
        return
    heading, lines = evaluation_lines(section)
    out.print(Text(heading))
    if section.get("metrics") or section.get("changes"):
        _print_table(metrics_table(section))
    for line in lines:
        out.print(Text(line))
    workers = workers_table(section)
    if workers is not None:
        _print_table(workers)


def _say_unmet(requirements: list[dict[str, Any]]) -> None:
    for r in requirements:
        if r.get("met") is not True:
            say(f"unmet: {r.get('requirement')}: {r.get('reason')}")


def _print_event(event: dict[str, Any]) -> None:
    say(
        f"{event['action']} {event['name']}:{event['channel']}: "
        f"{event.get('from_digest') or '(nothing)'} → {event.get('to_digest')} "
        f"(log index {event['log_index']}): {event.get('reason')}"
    )
    click.echo(event["log_index"])


@cli.command("status")
@click.argument("ref")
@CHANNEL
@AS_JSON
@click.pass_context
def status_command(ctx: click.Context, ref: str, channel: str, as_json: bool) -> None:
    """Whether REF may be promoted to CHANNEL: every requirement, met or not, and why.

    REF is blake3:…, sha256:… or name@version (its manifest is verified first).
    Exits 0 when every requirement is met, 5 when any is not.
    """
    client = client_of(ctx)
    parsed = fetch_parsed_manifest(client, ref)
    status = client.status(parsed.digests.blake3, channel)
    requirements: list[dict[str, Any]] = status["requirements"]
    profiles: list[dict[str, Any]] = status.get("verification") or []

    def text() -> None:
        _print_requirements(requirements)
        _print_verification(profiles)
        _print_evaluation(status.get("evaluation"))

    emit(as_json, status, text)
    unmet = [r for r in requirements if r.get("met") is not True]
    if unmet:
        raise RefusedError(
            f"{_subject(parsed)} cannot be promoted to {channel}: "
            f"{len(unmet)} of {len(requirements)} requirements unmet"
        )
    say(f"{_subject(parsed)} may be promoted to {channel}")


@cli.command()
@click.argument("ref")
@CHANNEL
@REASON
@AS_JSON
@click.pass_context
def promote(ctx: click.Context, ref: str, channel: str, reason: str, as_json: bool) -> None:
    """Point CHANNEL of REF's name at REF; print the move and its log index.

    REF is blake3:…, sha256:… or name@version (its manifest is verified first).
    Needs a governor token (else exit 6). When the channel's policy is not met,
    nothing moves: every unmet requirement is printed and the exit code is 5.
    """
    client = client_of(ctx)
    parsed = fetch_parsed_manifest(client, ref)
    try:
        event = client.promote(parsed.manifest.name, channel, parsed.digests.blake3, reason)
    except PolicyUnmetError as exc:
        _say_unmet(exc.requirements)
        raise
    emit(as_json, event, lambda: _print_event(event))


@cli.command()
@click.argument("name")
@CHANNEL
@REASON
@click.option(
    "--to",
    "target",
    help="Go back to this REF (blake3:…, sha256:… or name@version) [the previous digest].",
)
@AS_JSON
@click.pass_context
def rollback(
    ctx: click.Context, name: str, channel: str, reason: str, target: str | None, as_json: bool
) -> None:
    """Move NAME's CHANNEL back to a digest it held before; print the move and its log index.

    Needs a governor token. A target the channel never held is refused (exit 5).
    """
    client = client_of(ctx)
    digest = None
    if target is not None:
        parsed = fetch_parsed_manifest(client, target)
        if parsed.manifest.name != name:
            raise click.UsageError(
                f"--to {target} is {_subject(parsed)}, not an artifact of {name}"
            )
        digest = parsed.digests.blake3
    event = client.rollback(name, channel, reason, digest)
    emit(as_json, event, lambda: _print_event(event))


@cli.command()
@click.argument("name")
@click.option("--channel", help="Only this channel [every channel of NAME].")
@click.option("--jsonl", is_flag=True, help="One JSON object per move and line (JSON Lines).")
@click.option(
    "--limit",
    default=100,
    show_default=True,
    type=click.IntRange(1, 500),
    help="Moves per request; every page is fetched.",
)
@click.pass_context
def history(ctx: click.Context, name: str, channel: str | None, jsonl: bool, limit: int) -> None:
    """Every promote and rollback of NAME, newest first: who, when, from → to, why, log index."""
    events = walk_history(client_of(ctx), name, channel, limit)
    if jsonl:
        for event in events:
            click.echo(json.dumps(history_record(event), sort_keys=True))
        return
    records = [history_record(e) for e in events]
    if not records:
        say(f"{name} has no promotions or rollbacks" + (f" in {channel}" if channel else ""))
        return
    table = Table("log index", "at", "channel", "action", "from → to", "by", "reason", box=None)
    for e in records:
        moved = f"{_short(e['from'])} → {_short(e['to'])}"
        cells = (e["log_index"], e["at"], e["channel"], e["action"], moved, e["actor"], e["reason"])
        table.add_row(*(Text(str(c)) for c in cells))
    _print_table(table)


@cli.command()
@click.argument("name")
@AS_JSON
@click.pass_context
def channels(ctx: click.Context, name: str, as_json: bool) -> None:
    """The channels of NAME and the digest each points at now."""
    pointers = client_of(ctx).channels(name)

    def text() -> None:
        table = Table("channel", "digest", "since", "log index", box=None)
        for p in pointers:
            cells = (p.get("channel"), p.get("digest"), p.get("updated_at"), p.get("log_index"))
            table.add_row(*(Text(str(c)) for c in cells))
        _print_table(table)

    emit(as_json, {"name": name, "channels": pointers}, text)


@cli.command()
@click.argument("ref")
@CHANNEL
@click.pass_context
def proposal(ctx: click.Context, ref: str, channel: str) -> None:
    """Print a JSON proposal to move CHANNEL to REF, for a governance vote.

    REF's manifest is verified first; the document holds its identity and digests,
    what CHANNEL holds now, the URLs of the manifest and every blob, the accepted
    attestations, and the policy status. Keys are sorted.
    """
    client = client_of(ctx)
    parsed = fetch_parsed_manifest(client, ref)
    doc = build_proposal(client, parsed, channel)
    click.echo(json.dumps(doc, sort_keys=True, indent=2))
    policy = doc["policy"]
    unmet = sum(1 for r in policy["requirements"] if r.get("met") is not True)
    verdict = "promotable" if policy["promotable"] else f"not promotable yet ({unmet} unmet)"
    say(f"proposal: {channel} → {_subject(parsed)}: {verdict}")
