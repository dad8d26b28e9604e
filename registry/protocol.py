"""The HTTP/1.1 connection protocol ``reliquary-server serve`` runs: uvicorn's httptools
protocol with a deadline on request headers.

uvicorn bounds only idle keep-alive connections (``timeout_keep_alive``): a client
that opens a connection and sends nothing, or sends its request line and headers
a byte at a time, held the connection (and its file descriptor and memory) for as
long as it liked. Here every request's headers must be complete within
``RELIQUARY_HEADER_TIMEOUT`` (10 s) of the connection opening or of the request's
first byte, like nginx's ``client_header_timeout`` or Go's ``ReadHeaderTimeout``.
A late client gets ``408`` (problem+json) and the connection is closed.

Invariants:
- the deadline runs only while headers are awaited: from the connection opening,
  or from the first byte after the previous request's body, to the end of the
  headers. Bodies, responses being produced (a long-polled job claim) and idle
  keep-alive (uvicorn's own timeout) are not covered by it.
- a connection is closed by the deadline only when its headers are late; a
  request whose headers arrived is never cut by it.
- a request costs one clock read, not a timer: one sweep per event loop looks at the
  open connections every ``min(1 s, timeout / 4)`` and closes those whose headers are
  late, so a late client goes within the timeout plus that interval (a timer armed
  and cancelled per request cost ~8% of manifest GETs/s at 16 connections).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import weakref
from typing import Any

import msgspec
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from registry.problems import MEDIA_TYPE, problem_body, slug_for_status
from registry.settings import LimitSettings, SettingSource

log = logging.getLogger("reliquary.http")


@functools.cache
def header_timeout_seconds() -> float:
    """``RELIQUARY_HEADER_TIMEOUT`` of this process (``serve`` validated it before starting)."""
    return LimitSettings.from_env(SettingSource(os.environ)).header_timeout_seconds


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` that closes connections whose request headers are late."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout = header_timeout_seconds()
        self._awaiting_since: float | None = None  # loop time headers began to be awaited
        self._in_body = False  # between a request's headers and the end of its body

    # -- the deadline -------------------------------------------------------------
    def _arm(self) -> None:
        if self._awaiting_since is None:
            self._awaiting_since = self.loop.time()

    def _disarm(self) -> None:
        self._awaiting_since = None

    def _late(self, now: float) -> bool:
        since = self._awaiting_since
        return since is not None and now - since >= self.header_timeout

    def _headers_late(self) -> None:
        self._awaiting_since = None
        if self.transport.is_closing():
            return
        log.debug(
            "closing %s: request headers incomplete after %.1f s", self.client, self.header_timeout
        )
        if self.cycle is None or self.cycle.response_complete:
            seconds = f"{self.header_timeout:g}"
            body = msgspec.json.encode(
                problem_body(
                    408,
                    slug_for_status(408),
                    "Request timeout",
                    f"the request's headers did not arrive within {seconds} s "
                    "(RELIQUARY_HEADER_TIMEOUT); the connection is closed: send the request again",
                    "",
                    {},
                )
            )
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\n"
                + f"content-type: {MEDIA_TYPE}\r\ncontent-length: {len(body)}\r\n".encode()
                + b"connection: close\r\n\r\n"
                + body
            )
        self.transport.close()

    # -- uvicorn's protocol, with the deadline around header reception ---------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()
        _Sweeper.ensure(self.loop, self.server_state, self.header_timeout)

    def data_received(self, data: bytes) -> None:
        if not self._in_body:  # bytes of a request line or headers (or stray CRLFs)
            self._arm()
        super().data_received(data)

    def on_message_begin(self) -> None:
        self._arm()  # a pipelined request that began inside an earlier chunk
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._disarm()
        self._in_body = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


class _Sweeper:
    """One per event loop: closes the connections whose request headers are late."""

    _running: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Sweeper] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, state: ServerState, timeout: float):
        self._loop = loop
        self._state = state
        self._interval = min(1.0, timeout / 4)

    @classmethod
    def ensure(cls, loop: asyncio.AbstractEventLoop, state: ServerState, timeout: float) -> None:
        if loop not in cls._running:
            sweeper = cls._running[loop] = cls(loop, state, timeout)
            loop.call_later(sweeper._interval, sweeper.sweep)

    def sweep(self) -> None:
        now = self._loop.time()
        for connection in list(self._state.connections):
            if isinstance(connection, HeaderTimeoutProtocol) and connection._late(now):
                connection._headers_late()
        self._loop.call_later(self._interval, self.sweep)
