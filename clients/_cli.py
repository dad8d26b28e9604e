"""What every ``reliquary`` command module shares: the group, the consoles, the client.

Only the CLI modules (``clients.cli``, ``clients.cli_trust``, ``clients.cli_audit``,
``clients.cli_governance``) print; they write results to stdout and messages to stderr.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console

from clients.client import RegistryClient
from clients.config import load_config

EXIT_CODES = """Exit codes: 0 done, 1 failed (network, server), 2 bad usage or request,
3 not found, 4 verification failed, 5 refused (version taken, missing blobs,
policy, unregistered or wrong-role key), 6 authentication or role."""

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def client_of(ctx: click.Context) -> RegistryClient:
    """The client for the group's --url/--token (or the environment and config file)."""
    obj: dict[str, Any] = ctx.ensure_object(dict)
    try:
        config = load_config(obj.get("url"), obj.get("token"))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    client = RegistryClient(config.url, config.token)
    ctx.call_on_close(client.close)
    return client


def say(message: str) -> None:
    """A message on stderr, printed literally and never wrapped (so it greps)."""
    err.print(message, markup=False, highlight=False, soft_wrap=True)


def emit(as_json: bool, data: Any, text: Callable[[], None]) -> None:
    """Print ``data`` as one line of JSON, or call ``text`` to print it for people."""
    if as_json:
        click.echo(json.dumps(data, sort_keys=True))
    else:
        text()


@click.group(epilog=EXIT_CODES)
@click.option("--url", envvar="RELIQUARY_URL", default=None, help="Registry URL [RELIQUARY_URL].")
@click.option(
    "--token", envvar="RELIQUARY_TOKEN", default=None, help="Bearer token [RELIQUARY_TOKEN]."
)
@click.pass_context
def cli(ctx: click.Context, url: str | None, token: str | None) -> None:
    """Reliquary: content-addressed, signed, verified ML artifacts."""
    ctx.ensure_object(dict).update(url=url, token=token)
