"""``reliquary keys …``, ``sign`` and ``attestations``: signing keys and signed statements.

Library code (``clients.signing``, ``clients.trust``) raises; this module prints.
``attestations --verify`` checks every envelope offline against a pinned trust
root and exits 4 naming each one that fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.table import Table
from rich.text import Text

from clients._cli import cli, client_of, emit, out, say
from clients.errors import InvalidRequestError, VerificationError
from clients.pull import fetch_parsed_manifest
from clients.signing import (
    approval_predicate,
    attest,
    evaluation_predicate,
    generate_key_files,
    load_predicate_file,
    load_public_key,
    load_signing_key,
    publish_predicate,
)
from clients.trust import AttestationCheck, TrustRoot, check_attestations
from registry.core.errors import CoreError
from registry.core.keys import SigningKey
from registry.core.manifest import ParsedManifest
from registry.core.predicates import APPROVAL, EVALUATION, PUBLISH, Predicate, short_name
from registry.core.roles import KEY_ROLES

F = TypeVar("F", bound=Callable[..., Any])
KEY_ROLE_NAMES = sorted(r.value for r in KEY_ROLES)
SIGNABLE = {"publish": PUBLISH, "evaluation": EVALUATION, "approval": APPROVAL}
"""``sign --predicate`` kinds and their predicate types (a worker signs reproducibility/v1)."""

_PUBLISH_OPTIONS = (
    click.option("--publisher", help="publish/v1 'publisher' [the signing keyid]."),
    click.option("--source-repository", help="Source repository (give --source-commit too)."),
    click.option("--source-commit", help="Commit the artifact was built from."),
    click.option("--training-run", help="Training run identifier."),
)


def publish_options(command: F) -> F:
    """Add --publisher, --source-repository, --source-commit and --training-run."""
    for option in reversed(_PUBLISH_OPTIONS):
        command = option(command)
    return command


# -- keys -----------------------------------------------------------------------------
@cli.group()
def keys() -> None:
    """Signing keys: generate one locally, register (admin), list, revoke (admin)."""


@keys.command("generate")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
def keys_generate(out_path: Path, as_json: bool) -> None:
    """Write a new Ed25519 key to OUT (PKCS8 PEM, 0600) and its public key to OUT's .pub.pem."""
    try:
        key, public_path = generate_key_files(out_path)
    except FileExistsError as exc:
        raise click.UsageError(
            f"{exc.filename} already exists; keys are never overwritten: choose another --out"
        ) from exc
    data = {"keyid": key.public.keyid, "private_key": str(out_path), "public_key": str(public_path)}

    def text() -> None:
        say(f"wrote private key {out_path} (0600) and public key {public_path}")
        roles = "|".join(KEY_ROLE_NAMES)
        say(f"register it (admin): reliquary keys register {public_path} --role {roles}")
        click.echo(key.public.keyid)

    emit(as_json, data, text)


@keys.command("register")
@click.argument("public_key", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--role", required=True, type=click.Choice(KEY_ROLE_NAMES))
@click.option("--description", default="", help="Who or what holds the key.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def keys_register(
    ctx: click.Context, public_key: Path, role: str, description: str, as_json: bool
) -> None:
    """Register PUBLIC_KEY (a .pub.pem) with ROLE; needs an admin token."""
    pem = load_public_key(public_key).to_pem().decode()
    key = client_of(ctx).register_key(pem, role, description)

    def text() -> None:
        say(f"registered {key['keyid']} as {key['role']} (log index {key.get('log_index')})")
        click.echo(key["keyid"])

    emit(as_json, key, text)


@keys.command("list")
@click.option("--role", type=click.Choice(KEY_ROLE_NAMES))
@click.option(
    "--json", "as_json", is_flag=True, help='{"keys": [...]}: a trust root, once reviewed.'
)
@click.pass_context
def keys_list(ctx: click.Context, role: str | None, as_json: bool) -> None:
    """List registered keys, revoked ones included."""
    found = client_of(ctx).keys(role)

    def text() -> None:
        for k in found:
            revoked = k.get("revoked_at")
            status = f"revoked {revoked}: {k.get('revoked_reason')}" if revoked else "active"
            click.echo(f"{k['keyid']}  {k['role']:<9}  {status}  {k.get('description', '')}")

    emit(as_json, {"keys": found}, text)


@keys.command("revoke")
@click.argument("keyid")
@click.option("--reason", required=True, help="Why (logged, shown to everyone).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def keys_revoke(ctx: click.Context, keyid: str, reason: str, as_json: bool) -> None:
    """Revoke KEYID for good; needs an admin token."""
    key = client_of(ctx).revoke_key(keyid, reason)

    def text() -> None:
        say(f"revoked {key['keyid']} at {key.get('revoked_at')}: {key.get('revoked_reason')}")
        click.echo(key["keyid"])

    emit(as_json, key, text)


# -- sign -----------------------------------------------------------------------------
def _predicate(kind: str, key: SigningKey, options: dict[str, Any]) -> Predicate:
    """The predicate the options describe; only the options of ``kind`` may be given.

    Raises:
        click.UsageError: options of another kind, or a needed option missing.
        InvalidRequestError: the predicate is not of its type's shape.
    """
    try:
        return _build(kind, key, options)
    except CoreError as exc:
        raise InvalidRequestError(f"cannot make this statement: {exc}") from exc


def _build(kind: str, key: SigningKey, options: dict[str, Any]) -> Predicate:
    allowed = {
        "publish": {"publisher", "source_repository", "source_commit", "training_run"},
        "evaluation": {"metrics"},
        "approval": {"channel", "comment"},
    }[kind]
    given = {k for k, v in options.items() if v not in (None, ())}

    def flags(names: set[str]) -> str:
        return ", ".join("--" + n.replace("_", "-") for n in sorted(names))

    if "predicate_file" in given and len(given) > 1:
        raise click.UsageError(
            f"--predicate-file replaces the other predicate options; drop "
            f"{flags(given - {'predicate_file'})}"
        )
    stray = given - allowed - {"predicate_file"}
    if stray:
        raise click.UsageError(f"{flags(stray)} cannot be used with --predicate {kind}")
    if options["predicate_file"] is not None:
        return load_predicate_file(options["predicate_file"], SIGNABLE[kind])
    if kind == "evaluation":
        if not options["metrics"]:
            raise click.UsageError("--predicate evaluation needs --metrics name=value")
        return evaluation_predicate(options["metrics"])
    if kind == "approval":
        if options["channel"] is None:
            raise click.UsageError("--predicate approval needs --channel")
        return approval_predicate(options["channel"], options["comment"])
    return publish_predicate(
        options["publisher"] or key.public.keyid,
        options["source_repository"],
        options["source_commit"],
        options["training_run"],
    )


@cli.command()
@click.argument("ref")
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--predicate", "kind", required=True, type=click.Choice(list(SIGNABLE)))
@click.option(
    "--predicate-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The predicate as a JSON object, instead of the options below.",
)
@click.option("--metrics", multiple=True, help="evaluation: name=value, repeatable.")
@click.option("--channel", help="approval: the channel approved for.")
@click.option("--comment", help="approval: a comment.")
@publish_options
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def sign(
    ctx: click.Context, /, ref: str, key_path: Path, kind: str, as_json: bool, **options: Any
) -> None:
    """Sign a statement about REF (verified first) with KEY and post it; print its log index."""
    key = load_signing_key(key_path)
    predicate = _predicate(kind, key, options)
    client = client_of(ctx)
    manifest = fetch_parsed_manifest(client, ref)
    signed = attest(client, manifest, predicate, key)

    def text() -> None:
        again = "" if signed.created else " (already recorded)"
        say(
            f"signed {short_name(signed.predicate_type)} for {signed.subject} "
            f"({signed.artifact}) with {signed.keyid}: log index {signed.log_index}{again}"
        )
        click.echo(signed.log_index)

    emit(as_json, asdict(signed), text)


# -- attestations ---------------------------------------------------------------------
@cli.command()
@click.argument("ref")
@click.option("--verify", is_flag=True, help="Verify every envelope offline (needs --trust-root).")
@click.option(
    "--trust-root",
    envvar="RELIQUARY_TRUST_ROOT",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help='Pinned keys: {"keys": [{keyid, public_key, role}]}, e.g. reviewed `keys list --json`.',
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def attestations(
    ctx: click.Context, ref: str, verify: bool, trust_root: Path | None, as_json: bool
) -> None:
    """List the signed statements about REF; with --verify, trust only pinned keys."""
    if verify and trust_root is None:
        raise click.UsageError("--verify needs --trust-root FILE (or RELIQUARY_TRUST_ROOT)")
    root = TrustRoot.load(trust_root) if verify and trust_root is not None else None
    client = client_of(ctx)
    manifest = fetch_parsed_manifest(client, ref)
    listed = client.attestations(manifest.digests.blake3)
    subject = f"{manifest.manifest.name}@{manifest.manifest.version}"
    doc: dict[str, Any] = {"digest": str(manifest.digests.blake3), "subject": subject}
    if root is None:
        emit(as_json, {**doc, "attestations": listed}, lambda: _print_listed(listed))
        return
    checks = check_attestations(listed, manifest, root)
    failed = [c for c in checks if not c.verified]
    doc.update(verified=len(checks) - len(failed), failed=len(failed))
    emit(as_json, {**doc, "checks": [asdict(c) for c in checks]}, lambda: _print_checks(checks))
    _conclude(checks, failed, manifest)


def _print_listed(listed: list[dict[str, Any]]) -> None:
    table = Table("log index", "predicate", "keyid", "created", box=None)
    for a in listed:
        cells = (
            a.get("log_index"),
            short_name(str(a.get("predicate_type"))),
            str(a.get("keyid"))[:16] + "…",
            a.get("created_at"),
        )
        table.add_row(*(Text(str(c)) for c in cells))
    out.print(table)


def _print_checks(checks: list[AttestationCheck]) -> None:
    table = Table("log index", "predicate", "verdict", "why", box=None)
    for c in checks:
        verdict = "verified" if c.verified else "FAILED"
        table.add_row(*(Text(str(v)) for v in (c.log_index, c.predicate_type, verdict, c.reason)))
    out.print(table)


def _conclude(
    checks: list[AttestationCheck], failed: list[AttestationCheck], manifest: ParsedManifest
) -> None:
    subject = f"{manifest.manifest.name}@{manifest.manifest.version} ({manifest.digests.blake3})"
    for c in failed:
        say(f"attestation at log index {c.log_index} ({c.predicate_type}) failed: {c.reason}")
    if failed:
        raise VerificationError(
            f"{len(failed)} of {len(checks)} attestations about {subject} failed verification "
            "against the trust root"
        )
    say(f"verified {len(checks)} of {len(checks)} attestations about {subject}")
