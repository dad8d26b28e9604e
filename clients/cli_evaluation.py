"""``reliquary verify`` (ask workers to reproduce or measure an artifact) and the
``evaluation`` part of ``reliquary status`` (what workers measured, beside the policy).

The status answer's ``evaluation`` section (ARCHITECTURE §13; absent from older
registries and for channels whose policy names no dataset, and then nothing is printed):
``{source, dataset (NAME@VERSION), digest, samples, min_samples, profile, min_workers,
state, queued, running, workers: [{keyid, predictions, samples, metrics}], metrics:
{name: {value, rule, met}}, changes: {name: delta vs the holder}, drift: {against,
mean_abs_diff, max_abs_diff, moved, tolerance, bounds, met}, finding, failed}``. Rendering reads what is there and
prints ``-`` for what is not, so a registry one field ahead or behind still renders.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from clients._cli import cli, client_of, emit, out, say
from clients.pull import fetch_parsed_manifest


def _number(value: object, *, signed: bool = False) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-" if value is None else str(value)
    return f"{value:+.4g}" if signed else f"{value:.4g}"


def _met(value: object) -> str:
    return "met" if value is True else ("UNMET" if value is False else "-")


def _short(digest: object) -> str:
    text = str(digest or "")
    return text[:19] + "…" if len(text) > 20 else (text or "-")


def _bounds(bounds: object) -> str:
    if isinstance(bounds, Mapping):
        return ", ".join(f"{k} {_number(v)}" for k, v in sorted(bounds.items())) or "none"
    return "none" if bounds is None else str(bounds)


def evaluation_lines(section: Mapping[str, Any]) -> tuple[str, list[str]]:
    """The heading and the drift/finding/failure lines of an ``evaluation`` section."""
    state = section.get("state", "-")
    if section.get("source") != "worker":
        return f"evaluation: {state} — the publisher's signed metrics ({section.get('source')})", []
    ref = section.get("dataset_ref") or section.get("dataset")
    heading = (
        f"evaluation: {state} — dataset {ref or '-'} ({_short(section.get('digest'))}), "
        f"{_number(section.get('samples'))} samples (min {_number(section.get('min_samples'))}), "
        f"measured by {_number(section.get('min_workers'))} {section.get('profile') or '-'} workers"
    )
    doing = []
    if section.get("queued"):
        doing.append(f"{section['queued']} job(s) queued")
    if section.get("running"):
        doing.append("running by " + ", ".join(str(w) for w in section["running"]))
    if doing:
        heading += f" ({'; '.join(doing)})"
    lines = []
    drift = section.get("drift")
    if isinstance(drift, Mapping):
        moved = drift.get("moved")
        share = f"{moved:.1%}" if isinstance(moved, float | int) else "-"
        lines.append(
            f"drift vs {_short(drift.get('against'))}: mean |Δ| "
            f"{_number(drift.get('mean_abs_diff'))}, max |Δ| {_number(drift.get('max_abs_diff'))}, "
            f"moved {share} (by more than {_number(drift.get('tolerance'))}); bounds: "
            f"{_bounds(drift.get('bounds'))}: {_met(drift.get('met'))}"
        )
    if section.get("finding"):
        lines.append(f"finding: {section['finding']}")
    for error in section.get("failed") or []:
        lines.append(f"failed: {error}")
    return heading, lines


def metrics_table(section: Mapping[str, Any]) -> Table:
    """metric | measured | threshold | met | change vs live, one row per metric."""
    table = Table("metric", "measured", "threshold", "met", "change vs live", box=None)
    metrics = section.get("metrics") or {}
    changes = section.get("changes") or {}
    for name in sorted(set(metrics) | set(changes)):
        row = metrics.get(name) or {}
        cells = (
            name,
            _number(row.get("value")),
            str(row.get("rule") or "-"),
            _met(row.get("met")),
            _number(changes.get(name), signed=True),
        )
        table.add_row(*(Text(c) for c in cells))
    return table


def workers_table(section: Mapping[str, Any]) -> Table | None:
    """worker key | predictions digest | samples, or None when no worker measured yet."""
    workers = section.get("workers") or []
    if not workers:
        return None
    table = Table("worker key", "predictions", "samples", box=None)
    for w in workers:
        samples = w.get("samples", (w.get("metrics") or {}).get("samples"))
        table.add_row(Text(str(w.get("keyid"))), Text(str(w.get("predictions"))), _number(samples))
    return table


@cli.command("verify")
@click.argument("ref")
@click.option(
    "--profile", help="The worker profile, e.g. cpu-tensorflow [--evaluate: the policy's]."
)
@click.option("--count", default=1, show_default=True, type=click.IntRange(1, 16))
@click.option(
    "--evaluate",
    is_flag=True,
    help="Measure REF on --channel's policy dataset instead of reproducing its reference run.",
)
@click.option("--channel", help="--evaluate: the channel whose policy names dataset and rules.")
@click.option("--json", "as_json", is_flag=True, help="Print the queued jobs as JSON.")
@click.pass_context
def verify(
    ctx: click.Context,
    ref: str,
    profile: str | None,
    count: int,
    evaluate: bool,
    channel: str | None,
    as_json: bool,
) -> None:
    """Queue COUNT more worker jobs for REF; print their ids.

    Without --evaluate, workers of --profile reproduce REF's reference run. With
    --evaluate --channel C, they predict C's policy dataset and sign what they measured;
    the profile defaults to the one C's policy names (read from REF's status). Needs a
    publisher or governor token.
    """
    client = client_of(ctx)
    parsed = fetch_parsed_manifest(client, ref)
    digest = parsed.digests.blake3
    if evaluate and channel is None:
        raise click.UsageError("--evaluate needs --channel C (its policy names the dataset)")
    if not evaluate and channel is not None:
        raise click.UsageError("--channel goes with --evaluate")
    if profile is None:
        if not evaluate:
            raise click.UsageError("give --profile (e.g. cpu-tensorflow)")
        assert channel is not None
        section = client.status(digest, channel).get("evaluation")
        named = section.get("profile") if isinstance(section, Mapping) else None
        if not named or section is None or section.get("source") != "worker":
            raise click.UsageError(
                f"the policy of channel {channel} has no worker evaluation to read a profile "
                "from; check the channel, or give --profile"
            )
        profile = str(named)
    jobs = client.request_verification(
        digest, profile, count, task="evaluate" if evaluate else None, channel=channel
    )

    def text() -> None:
        m = parsed.manifest
        what = f"evaluate job(s) on {channel}'s dataset" if evaluate else "verification job(s)"
        say(f"queued {len(jobs)} {profile} {what} for {m.name}@{m.version} ({digest})")
        for job in jobs:
            out.print(str(job.get("id")))

    emit(as_json, jobs, text)
