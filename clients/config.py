"""Where the CLI finds the registry and its token, and where it caches blobs.

Precedence: command-line flags, then ``RELIQUARY_URL`` / ``RELIQUARY_TOKEN``, then
``~/.config/reliquary/config.toml`` (``$XDG_CONFIG_HOME``, or ``RELIQUARY_CONFIG``
for another file) as written by ``reliquary login``. The file is private (0600).
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True, slots=True)
class ClientConfig:
    url: str
    token: str | None


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if "RELIQUARY_CONFIG" in env:
        return Path(env["RELIQUARY_CONFIG"])
    base = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "reliquary" / "config.toml"


def cache_root(env: Mapping[str, str] | None = None) -> Path:
    """``RELIQUARY_CACHE``, else ``$XDG_CACHE_HOME/reliquary`` or ``~/.cache/reliquary``."""
    env = os.environ if env is None else env
    if "RELIQUARY_CACHE" in env:
        return Path(env["RELIQUARY_CACHE"])
    return Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "reliquary"


def load_config(
    url: str | None = None, token: str | None = None, env: Mapping[str, str] | None = None
) -> ClientConfig:
    """Resolve the registry URL and token.

    Raises:
        ValueError: the config file exists but is not valid TOML.
    """
    env = os.environ if env is None else env
    stored: dict[str, object] = {}
    path = config_path(env)
    if path.is_file():
        try:
            stored = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(
                f"{path} is not valid TOML: {exc}; run `reliquary login` again"
            ) from exc
    stored_url = stored.get("url")
    stored_token = stored.get("token")
    return ClientConfig(
        url=(
            url
            or env.get("RELIQUARY_URL")
            or (stored_url if isinstance(stored_url, str) else None)
            or DEFAULT_URL
        ).rstrip("/"),
        token=token
        or env.get("RELIQUARY_TOKEN")
        or (stored_token if isinstance(stored_token, str) else None),
    )


def save_login(url: str, token: str, env: Mapping[str, str] | None = None) -> Path:
    """Write the URL and token to the config file (mode 0600); its path."""
    path = config_path(env)
    path.parent.mkdir(parents=True, exist_ok=True)
    # JSON string escapes are valid TOML basic strings
    text = f"url = {json.dumps(url)}\ntoken = {json.dumps(token)}\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    path.chmod(0o600)
    return path
