"""The proxy's one connection pool to its upstream (aiohttp: about 0.7 ms per local round trip
here against httpx's 2.0 ms — bench/proxy.py measures the proxy as a whole).

Bounded: at most ``max_connections`` requests are in flight; one more waits up to
``pool_timeout_s`` for a slot and then fails as ``busy``. Timed: connecting and each read have
their own limits (a stream may last long, but never stall longer than ``timeout_s``). Every
failure is an ``UpstreamError`` whose ``kind`` says how to answer: ``unreachable`` (502),
``timeout`` (504), ``busy`` (503).

Credentials in the URL (``http://user:token@host/v1``) are taken out of it: they become the
request's Basic auth where the request carries no ``Authorization`` of its own, and every message
that names the upstream shows ``shown``, the URL without them (and any text that would quote
the secret has it replaced by ``***``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Literal
from urllib.parse import unquote, urlsplit, urlunsplit

import aiohttp

Kind = Literal["unreachable", "timeout", "busy"]


def split_credentials(url: str) -> tuple[str, aiohttp.BasicAuth | None, tuple[str, ...]]:
    """``url`` without its user information, the Basic auth that information stands for (None
    if there is none), and the secrets a message must never show."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None, ()
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    secrets = tuple(
        s for s in {parts.password or "", password, parts.username or "", user} if len(s) >= 3
    )
    return clean, aiohttp.BasicAuth(user, password), secrets


class UpstreamError(Exception):
    def __init__(self, kind: Kind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _classify(error: BaseException) -> UpstreamError:
    if isinstance(error, UpstreamError):
        return error
    if isinstance(error, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamError("timeout", f"the upstream did not answer in time ({error!r})")
    return UpstreamError(
        "unreachable",
        f"the upstream could not be reached or broke the connection ({type(error).__name__}: "
        f"{error})",
    )


class UpstreamResponse:
    """Status and headers of an answer whose body is still to be read (or streamed)."""

    def __init__(self, response: aiohttp.ClientResponse, slot: asyncio.Semaphore) -> None:
        self._response = response
        self._slot: asyncio.Semaphore | None = slot
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except (TimeoutError, aiohttp.ClientError) as error:
            raise _classify(error) from error

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as error:
            raise _classify(error) from error

    def close(self) -> None:
        """Give the connection back (or drop it, if the body was not read to the end: the
        upstream then sees the disconnect) and free the slot."""
        self._response.close()
        if self._slot is not None:
            self._slot.release()
            self._slot = None


class Upstream:
    def __init__(
        self,
        url: str,
        timeout_s: float,
        connect_timeout_s: float,
        max_connections: int,
        pool_timeout_s: float = 5.0,
    ) -> None:
        clean, self.auth, self._secrets = split_credentials(url)
        self.url = clean.rstrip("/")
        self.shown = self.url  # what messages and logs may print
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_connections = max_connections
        self.pool_timeout_s = pool_timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._slots = asyncio.Semaphore(max_connections)

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:  # created inside the running loop, on first use
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections, ttl_dns_cache=300),
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self.connect_timeout_s, sock_read=self.timeout_s
                ),
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def redact(self, text: str) -> str:
        """``text`` with every secret of the URL replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def redacted(self, error: UpstreamError) -> UpstreamError:
        return UpstreamError(error.kind, self.redact(str(error)))

    async def send(
        self, method: str, path: str, content: bytes | None, headers: Mapping[str, str]
    ) -> UpstreamResponse:
        """Send a request; return once the answer's headers are in."""
        try:
            await asyncio.wait_for(self._slots.acquire(), self.pool_timeout_s)
        except TimeoutError:
            raise UpstreamError(
                "busy", f"all {self.max_connections} upstream connections are in use"
            ) from None
        sent = dict(headers)
        # the URL's credentials where the request brings none of its own
        own = any(k.lower() == "authorization" for k in sent)
        auth = None if own else self.auth
        try:
            response = await self.session().request(
                method, f"{self.url}/{path}", data=content, headers=sent, auth=auth
            )
        except BaseException as error:
            self._slots.release()
            if isinstance(error, aiohttp.ClientError | asyncio.TimeoutError | ValueError):
                raise self.redacted(_classify(error)) from None
            raise
        return UpstreamResponse(response, self._slots)
