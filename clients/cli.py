"""``reliquary``: push, pull, inspect and find artifacts from a shell.

Library code raises; only this module prints and exits. Exit codes:
0 done, 1 failed (network, server), 2 bad usage or request, 3 not found,
4 verification failed, 5 refused (version taken, missing blobs, policy),
6 authentication or role.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from clients.cache import BlobCache
from clients.client import RegistryClient
from clients.config import cache_root, load_config, save_login
from clients.errors import ReliquaryError
from clients.progress import TransferProgress
from clients.pull import fetch_manifest, pull
from clients.push import push_directory
from registry.core.quantity import format_size, parse_size

EXIT_CODES = """Exit codes: 0 done, 1 failed (network, server), 2 bad usage or request,
3 not found, 4 verification failed, 5 refused (version taken, missing blobs,
policy), 6 authentication or role."""

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _client(ctx: click.Context) -> RegistryClient:
    obj: dict[str, Any] = ctx.ensure_object(dict)
    try:
        config = load_config(obj.get("url"), obj.get("token"))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    client = RegistryClient(config.url, config.token)
    ctx.call_on_close(client.close)
    return client


def _emit(as_json: bool, data: dict[str, Any], text: Callable[[], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, sort_keys=True))
    else:
        text()


def _size(value: str) -> int:
    try:
        return parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@click.group(epilog=EXIT_CODES)
@click.option("--url", envvar="RELIQUARY_URL", default=None, help="Registry URL [RELIQUARY_URL].")
@click.option(
    "--token", envvar="RELIQUARY_TOKEN", default=None, help="Bearer token [RELIQUARY_TOKEN]."
)
@click.pass_context
def cli(ctx: click.Context, url: str | None, token: str | None) -> None:
    """Reliquary: content-addressed, signed, verified ML artifacts."""
    ctx.ensure_object(dict).update(url=url, token=token)


@cli.command()
@click.argument("url")
@click.option("--token", "login_token", prompt=True, hide_input=True, help="The bearer token.")
def login(url: str, login_token: str) -> None:
    """Check a token against URL and store both in the config file."""
    with RegistryClient(url.rstrip("/"), login_token) as client:
        client.list_artifacts(limit=1)
    path = save_login(url.rstrip("/"), login_token)
    err.print(f"logged in to {url}; saved to {path}")


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", required=True, help="Artifact name, e.g. veid/trust-score.")
@click.option("--version", "version", required=True, help="Immutable version, e.g. v20261122.")
@click.option(
    "--kind",
    default="model",
    show_default=True,
    type=click.Choice(["model", "image", "dataset", "reference-inputs"]),
)
@click.option("--label", "labels", multiple=True, help="key=value, repeatable.")
@click.option("--parallel", default=4, show_default=True, help="Blobs hashed/sent at once.")
@click.option("--chunk-size", default="64MiB", show_default=True, help="Resumable chunk size.")
@click.option(
    "--resumable-from",
    default="64MiB",
    show_default=True,
    help="Files this big or bigger go through resumable uploads.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def push(
    ctx: click.Context,
    directory: Path,
    name: str,
    version: str,
    kind: str,
    labels: tuple[str, ...],
    parallel: int,
    chunk_size: str,
    resumable_from: str,
    as_json: bool,
) -> None:
    """Publish DIRECTORY as NAME@VERSION; print the artifact digest."""
    parsed: dict[str, str] = {}
    for label in labels:
        key, sep, value = label.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{label!r} is not key=value", param_hint="--label")
        parsed[key] = value
    client = _client(ctx)
    with TransferProgress(enabled=not as_json) as progress:
        result = push_directory(
            client,
            directory,
            name=name,
            version=version,
            kind=kind,
            labels=parsed,
            cache=BlobCache(cache_root()),
            progress=progress,
            parallel=parallel,
            chunk_bytes=_size(chunk_size),
            resumable_from_bytes=_size(resumable_from),
        )

    def text() -> None:
        verb = "pushed" if result.created else "already there:"
        err.print(
            f"{verb} {result.name}@{result.version}: {result.files} files, "
            f"{format_size(result.total_bytes)}; sent {format_size(result.uploaded_bytes)} "
            f"({result.blobs_uploaded} blobs, {result.blobs_present} already stored)"
        )
        out.print(result.digest)

    _emit(as_json, asdict(result), text)


@cli.command("pull")
@click.argument("ref")
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write.",
)
@click.option("--verify-existing", is_flag=True, help="Keep files in DIR that already verify.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def pull_command(
    ctx: click.Context, ref: str, output: Path, verify_existing: bool, as_json: bool
) -> None:
    """Fetch REF (blake3:…, sha256:… or name@version), verify every byte, write it to DIR."""
    client = _client(ctx)
    with TransferProgress(enabled=not as_json) as progress:
        result = pull(
            client,
            ref,
            output,
            cache=BlobCache(cache_root()),
            progress=progress,
            verify_existing=verify_existing,
        )

    def text() -> None:
        err.print(
            f"pulled {result.name}@{result.version} into {output}: {result.files} files, "
            f"{format_size(result.total_bytes)} verified; downloaded "
            f"{format_size(result.downloaded_bytes)}"
        )
        out.print(result.digest)

    _emit(as_json, asdict(result), text)


@cli.command("ls")
@click.option("--name")
@click.option("--kind")
@click.option("--label", help="key=value")
@click.option("--limit", default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def ls(
    ctx: click.Context,
    name: str | None,
    kind: str | None,
    label: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List artifacts, newest first."""
    page = _client(ctx).list_artifacts(name=name, kind=kind, label=label, limit=limit)

    def text() -> None:
        table = Table("name@version", "kind", "size", "created", "digest", box=None)
        for a in page["artifacts"]:
            table.add_row(
                f"{a['name']}@{a['version']}",
                a["kind"],
                format_size(a["size_bytes"]),
                a["created_at"],
                a["digest"],
            )
        out.print(table)

    _emit(as_json, page, text)


@cli.command()
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def inspect(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Show REF's manifest (verified against its digest)."""
    digest, manifest = fetch_manifest(_client(ctx), ref)
    fields = manifest.to_dict()
    doc: dict[str, Any] = {"digest": str(digest), "manifest": fields}

    def text() -> None:
        out.print(f"{manifest.name}@{manifest.version}  ({manifest.kind})  {digest}")
        table = Table("path", "size", "blake3", box=None)
        for f in manifest.files:
            table.add_row(f.path, format_size(f.size), f"blake3:{f.blake3}")
        out.print(table)
        for key in ("runtime", "reference", "metrics", "labels", "parents"):
            value = fields.get(key)
            if value:
                out.print(f"{key}: {json.dumps(value, sort_keys=True)}")

    _emit(as_json, doc, text)


@cli.command()
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def resolve(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Print the digest NAME@VERSION is bound to."""
    name, sep, version = ref.rpartition("@")
    if not sep:
        raise click.BadParameter("give name@version", param_hint="REF")
    artifact = _client(ctx).resolve(name, version)
    _emit(as_json, artifact, lambda: out.print(artifact["digest"]))


def main() -> None:
    """Entry point: run the CLI and turn errors into messages and exit codes."""
    try:
        cli.main(standalone_mode=False)
    except ReliquaryError as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except OSError as exc:
        err.print(f"error: {exc}", markup=False)
        sys.exit(1)
