"""skopeo, as its users run it, against a live registry on both deployments.

It logs in with any user name and a Reliquary token as the password (the Bearer token
dance), copies an OCI image layout in, inspects it, copies it back out byte for byte;
it cannot move a tag nor delete anything; and the image pushed is an artifact that
``reliquary pull`` writes as a layout skopeo reads.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.interop import Layout, Registry
from tests.support.server import CLI

pytestmark = pytest.mark.slow

NAME = "interop/app"
Skopeo = Callable[..., subprocess.CompletedProcess[str]]


def push(
    skopeo: Skopeo, registry: Registry, layout: Layout, *creds: str
) -> subprocess.CompletedProcess[str]:
    return skopeo(
        "copy",
        "--dest-tls-verify=false",
        *creds,
        f"oci:{layout.path}:{layout.tag}",
        f"docker://{registry.host}/{NAME}:{layout.tag}",
    )


def assert_same_blobs(layout: Layout, out: Path) -> None:
    """``out`` is an OCI layout holding exactly ``layout``'s blobs, byte for byte, under
    an index naming the same manifest."""
    index = json.loads((out / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [layout.digest]
    held = {p.name: p.read_bytes() for p in (out / "blobs" / "sha256").iterdir()}
    assert held == layout.blobs


def test_skopeo_logs_in_with_a_token_copies_in_inspects_and_copies_out_byte_for_byte(
    registry: Registry, skopeo: Skopeo, make_layout: Callable[[str, str], Layout], tmp_path: Path
) -> None:
    layout = make_layout("v1", "hello")
    anonymous = push(skopeo, registry, layout)
    assert anonymous.returncode != 0  # no credentials, no anonymous push
    assert registry.manifest(NAME, "v1").status_code == 404
    reader = push(skopeo, registry, layout, "--dest-creds", f"any:{registry.reader}")
    assert reader.returncode != 0  # a reader's token is granted pull only
    assert registry.manifest(NAME, "v1").status_code == 404

    pushed = push(skopeo, registry, layout, "--dest-creds", f"any:{registry.publisher}")
    assert pushed.returncode == 0, pushed.stderr
    answer = registry.manifest(NAME, "v1")
    assert answer.status_code == 200
    assert answer.content == layout.manifest  # the exact bytes pushed
    assert answer.headers["docker-content-digest"] == layout.digest

    source = f"docker://{registry.host}/{NAME}:v1"
    creds = ("--tls-verify=false", "--creds", f"any:{registry.reader}")
    inspected = skopeo("inspect", *creds, source)
    assert inspected.returncode == 0, inspected.stderr
    facts = json.loads(inspected.stdout)
    assert facts["Digest"] == layout.digest
    assert facts["Layers"] == layout.layers
    assert (facts["Architecture"], facts["Os"]) == ("amd64", "linux")
    raw = skopeo("inspect", "--raw", *creds, source)
    assert raw.returncode == 0, raw.stderr
    assert raw.stdout.encode() == layout.manifest

    out = tmp_path / "out"
    copied = skopeo(
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--src-creds",
        f"any:{registry.reader}",
        source,
        f"oci:{out}:v1",
    )
    assert copied.returncode == 0, copied.stderr
    assert_same_blobs(layout, out)


def test_a_tag_is_never_moved_and_nothing_is_deleted(
    registry: Registry, skopeo: Skopeo, make_layout: Callable[[str, str], Layout]
) -> None:
    first, other = make_layout("v1", "hello"), make_layout("v1", "another image")
    assert first.digest != other.digest
    creds = ("--dest-creds", f"any:{registry.publisher}")
    assert push(skopeo, registry, first, *creds).returncode == 0
    again = push(skopeo, registry, first, *creds)
    assert again.returncode == 0, again.stderr  # the same image again: idempotent

    moved = push(skopeo, registry, other, *creds)
    assert moved.returncode != 0
    assert "denied" in moved.stderr.lower(), moved.stderr  # 409 DENIED, naming both digests
    assert first.digest in moved.stderr or "409" in moved.stderr, moved.stderr
    assert registry.manifest(NAME, "v1").content == first.manifest

    deleted = skopeo(
        "delete",
        "--tls-verify=false",
        "--creds",
        f"any:{registry.publisher}",
        f"docker://{registry.host}/{NAME}:v1",
    )
    assert deleted.returncode != 0
    assert "405" in deleted.stderr or "unsupported" in deleted.stderr.lower(), deleted.stderr
    assert registry.manifest(NAME, "v1").content == first.manifest
    assert registry.manifest(NAME, first.digest).content == first.manifest


def test_a_pushed_image_is_an_artifact_reliquary_pull_writes_as_a_layout_skopeo_reads(
    registry: Registry, skopeo: Skopeo, make_layout: Callable[[str, str], Layout], tmp_path: Path
) -> None:
    layout = make_layout("v1", "hello")
    pushed = push(skopeo, registry, layout, "--dest-creds", f"any:{registry.publisher}")
    assert pushed.returncode == 0, pushed.stderr

    out = tmp_path / "pulled"
    env = {
        **os.environ,
        "RELIQUARY_URL": registry.process.url,
        "RELIQUARY_TOKEN": registry.reader,
        "RELIQUARY_CACHE": str(tmp_path / "cache"),
        "RELIQUARY_CONFIG": str(tmp_path / "config.toml"),
    }
    pulled = subprocess.run(
        [CLI, "pull", f"{NAME}@v1", "-o", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert pulled.returncode == 0, pulled.stderr
    raw = skopeo("inspect", "--raw", f"oci:{out}:v1")
    assert raw.returncode == 0, raw.stderr
    assert raw.stdout.encode() == layout.manifest
    copied = skopeo("copy", "--preserve-digests", f"oci:{out}:v1", f"oci:{tmp_path / 'copy'}:v1")
    assert copied.returncode == 0, copied.stderr
    assert_same_blobs(layout, tmp_path / "copy")
