"""Slow clients: a connection that does not finish its request's headers in time is closed.

uvicorn times out an idle keep-alive connection, but not one that is sending its headers: a
client that opens a connection and trickles a header line now and then (or sends nothing at
all) holds it, and a few hundred such clients hold the server. ``HeaderTimeoutProtocol`` is
uvicorn's httptools protocol with one more timer: armed when a connection opens and when the
first bytes of each further request arrive, cancelled when that request's headers are complete.
When it fires, the client gets ``408 Request Timeout`` and the connection is closed. The time
allowed is ``SALIENCE_HEADER_TIMEOUT_S``; the body has its own limit (``body_timeout_s``,
``service.core.guard``).

``salience serve`` passes the class to uvicorn (``http=HeaderTimeoutProtocol``), so every
worker process uses it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .config import get_settings

_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: application/problem+json\r\n"
    b"connection: close\r\n"
    b"content-length: %d\r\n\r\n%s"
)


def _body(seconds: float) -> bytes:
    detail = f"the request's headers did not arrive within {seconds:g} s"
    return (
        b'{"type":"urn:salience:problem:header-timeout","title":"Request timeout",'
        b'"status":408,"detail":"' + detail.encode() + b'"}'
    )


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a deadline on each request's headers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = get_settings().header_timeout_s
        self._header_timer: asyncio.TimerHandle | None = None
        self._awaiting_headers = True

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that never sends a byte is a slow client too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers and self._header_timer is None:
            self._arm()
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._awaiting_headers = True  # the next request's bytes arm the timer again

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if not self._awaiting_headers or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a response is still being written: the request it answers arrived whole
        body = _body(self.header_timeout_s)
        self.transport.write(_TIMEOUT_RESPONSE % (len(body), body))
        self.transport.close()
