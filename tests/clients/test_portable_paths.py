"""Paths that collide or cannot exist on other filesystems stop ``push`` and ``pull``.

A training job on Linux can hold ``A`` beside ``a/b``, a file named ``CON`` or
``notes.``; a validator on Windows or macOS could not install them as named. ``push``
refuses such a directory before it hashes or sends anything, and ``pull`` refuses a
manifest naming such paths (a lying server's), with the manifest validator's messages.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from registry.core.manifest import path_set_problems
from tests.support.content import digests, manifest_bytes
from tests.support.server import CLI

COLLIDING = {"A": b"upper", "a/b": b"lower dir", "CON": b"device", "notes.": b"dot"}


def _env(url: str, home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "RELIQUARY_URL": url,
        "RELIQUARY_TOKEN": "rlq_x",
        "RELIQUARY_CACHE": str(home / "cache"),
        "RELIQUARY_CONFIG": str(home / "config.toml"),
    }


def test_push_refuses_a_directory_other_filesystems_cannot_hold_before_sending(
    tmp_path: Path,
) -> None:
    model = tmp_path / "model"
    for rel, data in COLLIDING.items():
        (model / rel).parent.mkdir(parents=True, exist_ok=True)
        (model / rel).write_bytes(data)
    with (model / "weights.bin").open("wb") as sparse:  # 1 TiB of holes: hours to hash
        sparse.truncate(2**40)
    nothing_listens = "http://127.0.0.1:9"  # a push that got as far as the network fails 1
    done = subprocess.run(
        [CLI, "push", str(model), "--name", "acme/m", "--version", "v1"],
        env=_env(nothing_listens, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,  # refused before hashing, or this times out
    )
    assert done.returncode == 2, done.stderr
    expected = path_set_problems(sorted(COLLIDING))
    assert len(expected) == 3  # the collision, the device name, the trailing dot
    stderr = " ".join(done.stderr.split())  # the console wraps long lines
    for problem in expected:
        assert " ".join(problem.split()) in stderr


def test_pull_refuses_a_manifest_other_filesystems_cannot_hold(
    liar: tuple[str, dict[str, tuple[int, str, bytes]]],
    tmp_path: Path,
) -> None:
    url, answers = liar
    raw = manifest_bytes("acme/m", "v1", COLLIDING)
    digest = digests(raw).blake3
    answers[f"/v1/artifacts/{digest}"] = (200, "application/json", raw)
    out = tmp_path / "out"
    done = subprocess.run(
        [CLI, "pull", str(digest), "-o", str(out)],
        env=_env(url, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 4, done.stderr
    stderr = " ".join(done.stderr.split())
    assert "collide on case-insensitive filesystems" in stderr
    assert "Windows device name" in stderr
    assert not out.exists()
