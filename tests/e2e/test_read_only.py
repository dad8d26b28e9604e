"""A newcomer starts the registry where it cannot write: one clear line, never a traceback.

The commands run as real subprocesses. The suite runs as root, for whom permission
bits stop nothing, so a path is made read-only with the immutable flag
(``chattr +i``), which stops root too; as another user, ``chmod a-w`` does.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.server import SERVER, free_port

pytestmark = pytest.mark.slow


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` cannot be written (or, for a directory, have entries created) inside."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        try:
            yield
        finally:
            path.chmod(mode)
        return
    if shutil.which("chattr") is None:
        pytest.skip("running as root without chattr: cannot make a path read-only for root")
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"this filesystem has no immutable flag for root: {made.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def server_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELIQUARY_")}
    return subprocess.run(
        [SERVER, *args],
        env={**env, "RELIQUARY_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=30,
    )


def assert_one_clear_line(
    done: subprocess.CompletedProcess[str],
    path: Path,
    says: str,
    remedy: str = "RELIQUARY_DATA_DIR",
) -> None:
    assert done.returncode != 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "unable to open database file" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert str(path) in lines[0]
    assert says in lines[0]
    assert remedy in lines[0]  # what to do


COMMANDS = [
    ("db", "upgrade"),
    ("token", "create", "--role", "admin"),
    ("serve", "--port", "0"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_read_only_data_directory_is_named_not_a_traceback(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with read_only(data):
        done = server_cli(data, *command)
    assert_one_clear_line(done, data, "not writable")
    assert list(data.iterdir()) == []


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_data_directory_under_a_read_only_parent_is_named(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    parent = tmp_path / "ro"
    parent.mkdir()
    data = parent / "missing" / "data"
    with read_only(parent):
        done = server_cli(data, *command)
    assert_one_clear_line(done, data, "cannot be created")
    assert str(parent) in done.stderr


def test_a_migrated_data_directory_made_read_only_stops_serve_and_token_create(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    assert server_cli(data, "db", "upgrade").returncode == 0
    with read_only(data):  # SQLite cannot create its WAL and journal files here
        for command in COMMANDS[1:]:
            assert_one_clear_line(server_cli(data, *command), data, "not writable")


def test_a_read_only_database_file_is_named(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert server_cli(data, "db", "upgrade").returncode == 0
    database = data / "registry.db"
    with read_only(database):
        for command in (*COMMANDS, ("serve", "--port", str(free_port()))):
            assert_one_clear_line(server_cli(data, *command), database, "not writable")


def test_a_read_only_blob_directory_is_named(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert server_cli(data, "db", "upgrade").returncode == 0
    blobs = data / "blobs"
    blobs.mkdir()
    with read_only(blobs):
        done = server_cli(data, "serve", "--port", str(free_port()))
    assert_one_clear_line(done, blobs, "not writable", "RELIQUARY_BLOB_DIR")


def test_a_read_only_key_directory_needs_a_writable_witness(tmp_path: Path) -> None:
    """The log key may be a read-only secret; the witness beside it must then be put
    where it can grow (RELIQUARY_LOG_WITNESS_FILE), and serve says so before starting."""
    data = tmp_path / "data"
    assert server_cli(data, "db", "upgrade").returncode == 0
    keys = tmp_path / "keys"
    keys.mkdir()
    assert (
        server_cli(data, "log-key", "create", "--log-key-file", str(keys / "k.pem")).returncode == 0
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELIQUARY_")}
    env |= {"RELIQUARY_DATA_DIR": str(data), "RELIQUARY_LOG_KEY_FILE": str(keys / "k.pem")}
    with read_only(keys):
        done = subprocess.run(
            [SERVER, "serve", "--port", str(free_port())],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert_one_clear_line(done, keys, "not writable", "RELIQUARY_LOG_WITNESS_FILE")
