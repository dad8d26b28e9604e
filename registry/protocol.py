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
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import msgspec
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from registry.problems import MEDIA_TYPE, problem_body, slug_for_status
from registry.settings import Settings

log = logging.getLogger("reliquary.http")


@functools.cache
def header_timeout_seconds() -> float:
    """``RELIQUARY_HEADER_TIMEOUT`` of this process (``serve`` validated it before starting)."""
    return Settings.from_env().limits.header_timeout_seconds


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
        self._header_deadline: asyncio.TimerHandle | None = None
        self._in_body = False  # between a request's headers and the end of its body

    # -- the deadline -------------------------------------------------------------
    def _arm(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_late(self) -> None:
        self._header_deadline = None
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
