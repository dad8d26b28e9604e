"""``reliquary``: push, pull, inspect and find artifacts from a shell.

Signing keys, ``sign`` and ``attestations`` live in ``clients.cli_trust``, ``audit`` in
``clients.cli_audit``, channels and policy (``status``, ``promote``, ``rollback``,
``history``, ``channels``, ``proposal``) in ``clients.cli_governance``; all hang on the
one group of ``clients._cli``.
Library code raises; only the CLI modules print, and only ``main`` exits. Exit codes:
0 done, 1 failed (network, server), 2 bad usage or request, 3 not found,
4 verification failed, 5 refused (version taken, missing blobs, policy),
6 authentication or role.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from clients import (  # noqa: F401 -- add their commands to `cli`
    cli_audit,
    cli_evaluation,
    cli_governance,
)
from clients._cli import cli, client_of, emit, err, out, say
from clients.cache import BlobCache
from clients.cli_trust import publish_options
from clients.client import RegistryClient
from clients.config import cache_root, save_login
from clients.datasets import DEFAULT_LABEL_NAME, DEFAULT_SOURCE, DEFAULT_SPLIT, describe_dataset
from clients.errors import ReliquaryError
from clients.governance import channel_digest
from clients.progress import TransferProgress
from clients.pull import fetch_manifest, fetch_parsed_manifest, pull
from clients.push import RESUMABLE_FROM, push_directory
from clients.signing import PublishSigner
from registry.core.images import pin_problem
from registry.core.manifest import Scalar
from registry.core.quantity import format_size, parse_size

__all__ = ["cli", "main"]


def _size(value: str) -> int:
    try:
        return parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


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
    # kind image is made by pushing an image to /v2 (skopeo copy … docker://HOST/NAME:TAG)
    type=click.Choice(["model", "dataset", "reference-inputs"]),
)
@click.option("--label", "labels", multiple=True, help="key=value, repeatable.")
@click.option(
    "--engine",
    help="runtime.engine: what runs the model (tensorflow-savedmodel, vllm); workers need it.",
)
@click.option(
    "--runtime",
    "runtime_fields",
    multiple=True,
    help="More runtime fields as key=value (signature=serving_default, dtype=float32); "
    "image=NAME@sha256:HEX pins the runtime image by digest (pushed to this registry first).",
)
@click.option(
    "--reference-inputs",
    "reference_inputs",
    help="The reference-inputs artifact workers run (name@version or digest).",
)
@click.option(
    "--features",
    "features",
    multiple=True,
    help="kind dataset: INPUT=PATH, a model input's file (.npy, or .json strings) "
    "[features.npy as 'features', or prompts.json as 'prompts'].",
)
@click.option(
    "--labels",
    "label_files",
    multiple=True,
    help="kind dataset: OUTPUT=PATH, expected values of a model output "
    "[labels.npy as --label-name, or expected.json as 'expected'].",
)
@click.option(
    "--label-name",
    default=DEFAULT_LABEL_NAME,
    show_default=True,
    help="kind dataset: the model output a bare labels.npy holds.",
)
@click.option("--split", default=DEFAULT_SPLIT, show_default=True, help="kind dataset: the split.")
@click.option(
    "--source", default=DEFAULT_SOURCE, show_default=True, help="kind dataset: where it came from."
)
@click.option("--parallel", default=4, show_default=True, help="Blobs hashed/sent at once.")
@click.option("--chunk-size", default="64MiB", show_default=True, help="Resumable chunk size.")
@click.option(
    "--resumable-from",
    default=RESUMABLE_FROM,
    show_default=True,
    help="Files this big or bigger go through resumable uploads.",
)
@click.option(
    "--sign-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Sign a publish/v1 statement about the pushed manifest with this key.",
)
@publish_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def push(
    ctx: click.Context,
    /,
    directory: Path,
    name: str,
    version: str,
    kind: str,
    labels: tuple[str, ...],
    engine: str | None,
    runtime_fields: tuple[str, ...],
    reference_inputs: str | None,
    features: tuple[str, ...],
    label_files: tuple[str, ...],
    label_name: str,
    split: str,
    source: str,
    parallel: int,
    chunk_size: str,
    resumable_from: str,
    sign_key: Path | None,
    as_json: bool,
    **publish: str | None,
) -> None:
    """Publish DIRECTORY as NAME@VERSION; print the artifact digest.

    With --sign-key, then sign and post a publish/v1 statement about it. A model that
    workers verify names its --engine and its --reference-inputs (pushed before with
    --kind reference-inputs). A model that runs in a container image pins it by digest
    with --runtime image=NAME@sha256:HEX (the image pushed to this registry first); a tag
    is refused. A dataset (--kind dataset) carries a description of its files, read
    from their headers before anything is sent: --features and --labels, or the defaults.
    """
    if sign_key is None and any(publish.values()):
        raise click.UsageError("--publisher and --source-*/--training-run need --sign-key")
    signer = PublishSigner.prepare(sign_key, **publish) if sign_key is not None else None
    client = client_of(ctx)
    runtime: dict[str, Scalar] = dict(_pairs(runtime_fields, "--runtime"))
    if engine:
        runtime["engine"] = engine
    if "image" in runtime and (why := pin_problem(str(runtime["image"]))) is not None:
        raise click.BadParameter(why, param_hint="--runtime")  # before hashing anything
    inputs_digest = None
    if reference_inputs is not None:
        inputs = fetch_parsed_manifest(client, reference_inputs)
        if inputs.manifest.kind != "reference-inputs":
            raise click.BadParameter(
                f"{reference_inputs} is a {inputs.manifest.kind!r} artifact; push the inputs "
                "with --kind reference-inputs",
                param_hint="--reference-inputs",
            )
        inputs_digest = str(inputs.digests.blake3)
    dataset = None
    if kind == "dataset":
        dataset = describe_dataset(
            directory,
            features=_pairs(features, "--features"),
            labels=_pairs(label_files, "--labels"),
            split=split,
            source=source,
            label_name=label_name,
        )
    elif features or label_files:
        raise click.UsageError("--features and --labels describe a --kind dataset")
    with TransferProgress(enabled=not as_json) as progress:
        result = push_directory(
            client,
            directory,
            name=name,
            version=version,
            kind=kind,
            labels=_pairs(labels, "--label"),
            runtime=runtime or None,
            reference_inputs=inputs_digest,
            dataset=dataset,
            cache=BlobCache(cache_root()),
            progress=progress,
            parallel=parallel,
            chunk_bytes=_size(chunk_size),
            resumable_from_bytes=_size(resumable_from),
        )
    signed = signer.sign(client, result.manifest_raw) if signer is not None else None

    def text() -> None:
        verb = "pushed" if result.created else "already there:"
        if dataset is not None:
            say(_dataset_line(dataset))
        err.print(
            f"{verb} {result.name}@{result.version}: {result.files} files, "
            f"{format_size(result.total_bytes)}; sent {format_size(result.uploaded_bytes)} "
            f"({result.blobs_uploaded} blobs, {result.blobs_present} already stored)"
        )
        if signed is not None:
            say(f"signed publish/v1 with {signed.keyid}: log index {signed.log_index}")
        out.print(result.digest)

    summary = result.summary()
    if signed is not None:
        summary["attestation"] = asdict(signed)
    emit(as_json, summary, text)


def _dataset_line(dataset: dict[str, Any]) -> str:
    roles = [
        f"{role}: "
        + ", ".join(
            f"{name}={spec['path']} ({spec['dtype']}{spec['shape']})"
            for name, spec in dataset[role].items()
        )
        for role in ("features", "labels")
    ]
    return f"dataset: {dataset['samples']} samples ({dataset['split']}); " + "; ".join(roles)


def _pairs(pairs: tuple[str, ...], option: str) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not key=value", param_hint=option)
        parsed[key] = value
    return parsed


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
@click.option("--channel", help="REF is a NAME: pull what its CHANNEL points at.")
@click.option(
    "--copy",
    is_flag=True,
    help="Write independent copies (default: hard links to the verified cache, where "
    "DIR is on the cache's filesystem; edit such files only by replacing them).",
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def pull_command(
    ctx: click.Context,
    ref: str,
    output: Path,
    verify_existing: bool,
    channel: str | None,
    copy: bool,
    as_json: bool,
) -> None:
    """Fetch REF (blake3:…, sha256:… or name@version), verify every byte, write it to DIR.

    With --channel C, REF is a NAME: the digest C points at is pulled and its manifest
    must carry NAME. Files are hard links to the local cache where possible (one write
    to disk); a cache entry edited in place is caught and fetched again next time.
    """
    client = client_of(ctx)
    name = None
    if channel is not None:
        if "@" in ref or ref.startswith(("blake3:", "sha256:")):
            raise click.UsageError("with --channel, give a NAME (e.g. veid/trust-score)")
        name, ref = ref, str(channel_digest(client, ref, channel))
    with TransferProgress(enabled=not as_json) as progress:
        result = pull(
            client,
            ref,
            output,
            cache=BlobCache(cache_root()),
            progress=progress,
            verify_existing=verify_existing,
            expect_name=name,
            link=not copy,
        )

    def text() -> None:
        err.print(
            f"pulled {result.name}@{result.version} into {output}: {result.files} files, "
            f"{format_size(result.total_bytes)} verified; downloaded "
            f"{format_size(result.downloaded_bytes)}"
        )
        out.print(result.digest)

    emit(as_json, asdict(result), text)


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
    page = client_of(ctx).list_artifacts(name=name, kind=kind, label=label, limit=limit)

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

    emit(as_json, page, text)


@cli.command()
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def inspect(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Show REF's manifest (verified against its digest)."""
    digest, manifest = fetch_manifest(client_of(ctx), ref)
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

    emit(as_json, doc, text)


@cli.command()
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def resolve(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Print the digest NAME@VERSION is bound to."""
    name, sep, version = ref.rpartition("@")
    if not sep:
        raise click.BadParameter("give name@version", param_hint="REF")
    artifact = client_of(ctx).resolve(name, version)
    emit(as_json, artifact, lambda: out.print(artifact["digest"]))


def main() -> None:
    """Entry point: run the CLI and turn errors into messages and exit codes."""
    try:
        cli.main(standalone_mode=False)
    except ReliquaryError as exc:
        err.print(f"error: {exc}", markup=False, soft_wrap=True)
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
