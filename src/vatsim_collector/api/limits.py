"""Request limits as pure ASGI middleware: body size and a per-client rate limit.

Pure ASGI rather than ``BaseHTTPMiddleware``, which buffers streaming responses and runs
background tasks late. Both answer with problem documents, like the rest of the app.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass

from fastapi import status
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vatsim_collector.api.auth import KeyRing, offered_key
from vatsim_collector.api.problems import RATE_LIMITED, REQUEST_TOO_LARGE, problem_response


class BodySizeLimit:
    """413 for a request body over ``max_bytes``.

    A declared Content-Length over the limit is refused before anything is read. Otherwise the
    body (chunked or not) is read here, counting as it arrives and stopping at the limit, then
    handed to the app in one message. Reading it here, rather than counting where the app
    reads, also covers endpoints that never read their body; the buffer is at most the limit.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must not be negative, got {max_bytes!r}")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(Headers(scope=scope))
        if declared is not None and declared > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before its body was complete: nobody to answer
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # from here on only http.disconnect can come
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"the request body is larger than {self.max_bytes} bytes",
            instance=scope["path"],
            kind=REQUEST_TOO_LARGE,
        )
        await response(scope, receive, send)


def _content_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    if value is None or not value.strip().isdigit():
        return None  # absent, or malformed (the server refuses those itself)
    return int(value)


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """One token bucket per client: ``capacity`` tokens, refilled at ``per_second``.

    At most ``max_clients`` buckets are kept. A new client takes the place of the least
    recently used one only if that bucket has refilled completely, so dropping it forgets
    nothing; otherwise every new client shares one overflow bucket until a place frees. Memory
    stays bounded, and a flood of fresh identities never buys fresh tokens: past the table's
    size they all draw on the same bucket.
    """

    def __init__(
        self,
        capacity: float,
        per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        if capacity < 1 or per_second <= 0 or max_clients < 1:
            raise ValueError("capacity >= 1, per_second > 0 and max_clients >= 1 are needed")
        self.capacity = capacity
        self.per_second = per_second
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: OrderedDict[Hashable, _Bucket] = OrderedDict()
        self._overflow = _Bucket(capacity, clock())
        self.overflowed = 0  # requests charged to the shared bucket, for tests and operators

    def take(self, client: Hashable) -> float:
        """Spend a token: 0.0 if there was one, else the seconds until there will be."""
        now = self.clock()
        bucket = self._buckets.get(client)
        if bucket is not None:
            self._buckets.move_to_end(client)
        elif len(self._buckets) < self.max_clients or self._evict_refilled(now):
            bucket = self._buckets[client] = _Bucket(self.capacity, now)
        else:
            self.overflowed += 1
            bucket = self._overflow
        self._refill(bucket, now)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.per_second

    def _refill(self, bucket: _Bucket, now: float) -> None:
        # max(): a clock that steps back must not drain the bucket.
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(self.capacity, bucket.tokens + elapsed * self.per_second)
        bucket.updated = now

    def _evict_refilled(self, now: float) -> bool:
        """Drop the least recently used bucket if it is full again by now."""
        oldest = next(iter(self._buckets.values()))
        self._refill(oldest, now)
        if oldest.tokens < self.capacity:
            return False
        self._buckets.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._buckets)


class RateLimit:
    """429 with Retry-After once a client has used up its bucket.

    A client is the API key when one is sent and configured (by its position, never the key
    itself), else the peer address: unauthenticated guessing of keys is limited per address.
    An IPv6 peer counts by its /64 network, which one subscriber usually holds whole. Behind
    a proxy the peer is the proxy unless it is a configured trusted proxy (``ForwardedClient``
    in ``api/forwarded.py`` resolves the client before this runs).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        per_minute: int,
        ring: KeyRing,
        clock: Callable[[], float] = time.monotonic,
        exempt: Collection[str] = ("/health",),
    ) -> None:
        if per_minute < 1:
            raise ValueError(f"per_minute must be at least 1, got {per_minute!r}")
        self.app = app
        self.per_minute = per_minute
        self.ring = ring
        self.exempt = frozenset(exempt)
        self.buckets = TokenBuckets(per_minute, per_minute / 60, clock=clock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        wait = self.buckets.take(self._client(scope))
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            response = problem_response(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"more than {self.per_minute} requests per minute; retry in {retry_after} s",
                instance=scope["path"],
                kind=RATE_LIMITED,
                headers={"Retry-After": str(retry_after)},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _client(self, scope: Scope) -> Hashable:
        found = self.ring.match(offered_key(Headers(scope=scope)))
        if found is not None:
            return ("key", found.position)
        peer = scope.get("client")
        return ("address", _address_group(peer[0] if peer else ""))


def _address_group(peer: str) -> str:
    """The unit one party controls: an IPv4 address, or an IPv6 address's /64 network."""
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return peer  # a Unix socket path or a test client's name: one client each
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
