"""A node's connection to NATS: connected in the background, reconnected forever.

``start`` returns at once; the connection keeps trying, every ``reconnect_wait`` seconds, until
the server answers, and after a loss it reconnects the same way, so a NATS server that is down
or restarting never stops the collector. Whoever uses the connection checks ``connected`` and
treats ``NatsUnavailable`` as "not now".

The URL may carry credentials (``nats://user:password@host``, ``nats://token@host``): only
``redact_url`` of it is ever logged or reported, and errors are logged by their class alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from urllib.parse import urlsplit, urlunsplit

import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from pydantic import SecretStr

from vatsim_collector.config import Settings
from vatsim_collector.errors.exceptions import Category, CollectorError, Severity

__all__ = ["NatsConnection", "NatsUnavailable", "redact_url", "server_urls"]

log = structlog.get_logger(__name__)

# A server that stays unreachable is logged again at most this often.
FAILURE_LOG_INTERVAL = 60.0


class NatsUnavailable(CollectorError):
    """NATS cannot be reached right now; what was to be sent stays where it is."""

    category = Category.NETWORK
    severity = Severity.MEDIUM
    transient = True


def server_urls(url: str) -> list[str]:
    """The comma-separated server URLs of a setting, blanks dropped."""
    return [part.strip() for part in url.split(",") if part.strip()]


def _redact_one(url: str) -> str:
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    if "@" not in parts.netloc:
        return urlunsplit(parts)
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


def redact_url(url: str | SecretStr) -> str:
    """``url`` with every user, password or token replaced by ``***``: safe to log."""
    raw = url.get_secret_value() if isinstance(url, SecretStr) else url
    return ",".join(_redact_one(part) for part in server_urls(raw))


class NatsConnection:
    """One NATS connection with JetStream, for the relay and the workers of one process."""

    def __init__(
        self,
        url: str | SecretStr,
        *,
        name: str,
        reconnect_wait: float = 2.0,
        connect_timeout: float = 2.0,
        request_timeout: float = 5.0,
    ) -> None:
        secret = url if isinstance(url, SecretStr) else SecretStr(url)
        if not server_urls(secret.get_secret_value()):
            raise ValueError("a NATS connection needs a server URL")
        self._url = secret
        self.name = name
        self.redacted_url = redact_url(secret)
        self.reconnect_wait = reconnect_wait
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self._task: asyncio.Task[None] | None = None
        # Connections made (the first one and every reconnect) and lost, for health and tests.
        self.connects = 0
        self.disconnects = 0
        self.last_error: str | None = None
        self._last_failure_log = -FAILURE_LOG_INTERVAL
        self._failures_unlogged = 0
        self._closing = False

    @classmethod
    def from_settings(cls, settings: Settings, *, name: str | None = None) -> NatsConnection:
        return cls(
            settings.nats_url,
            name=name or f"vatsim-collector {settings.node}",
            request_timeout=settings.nats_ack_timeout,
        )

    @property
    def connected(self) -> bool:
        client = self._client
        return client is not None and client.is_connected

    @property
    def client(self) -> Client:
        """The nats-py client; raises ``NatsUnavailable`` unless connected."""
        client = self._client
        if client is None or not client.is_connected:
            raise NatsUnavailable("NATS is not connected")
        return client

    def jetstream(self) -> JetStreamContext:
        """The JetStream context; raises ``NatsUnavailable`` unless connected."""
        client = self.client
        if self._js is None:
            self._js = client.jetstream(timeout=self.request_timeout)
        return self._js

    async def start(self) -> None:
        """Begin connecting in the background; returns at once."""
        if self._task is None:
            self._closing = False
            self._task = asyncio.create_task(self._connect(), name="nats-connect")

    async def wait_connected(self, timeout: float) -> bool:  # noqa: ASYNC109 (a poll bound)
        """Whether the connection is up within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not self.connected:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def close(self) -> None:
        self._closing = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        client, self._client, self._js = self._client, None, None
        if client is not None and not client.is_closed:
            with contextlib.suppress(Exception):  # closing a half-open client may fail; it is gone
                await client.close()

    async def _connect(self) -> None:
        client = Client()
        self._client = client
        # max_reconnect_attempts=-1: the first connection and every reconnection are tried
        # forever, reconnect_wait apart.
        await client.connect(
            servers=server_urls(self._url.get_secret_value()),
            name=self.name,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=self.reconnect_wait,  # type: ignore[arg-type]
            connect_timeout=self.connect_timeout,  # type: ignore[arg-type]
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_connected,
        )
        await self._on_connected()

    async def _on_connected(self) -> None:
        self.connects += 1
        self.last_error = None
        self._failures_unlogged = 0
        log.info("NATS connected", server=self.redacted_url, connects=self.connects)

    async def _on_disconnected(self) -> None:
        self.disconnects += 1
        if self._closing:
            log.info("NATS connection closed", server=self.redacted_url)
        else:
            log.warning("NATS disconnected; reconnecting", server=self.redacted_url)

    async def _on_error(self, exc: Exception) -> None:
        # The class only: a message may quote the server's address with its credentials.
        self.last_error = type(exc).__name__
        self._failures_unlogged += 1
        now = time.monotonic()
        if now - self._last_failure_log >= FAILURE_LOG_INTERVAL:
            self._last_failure_log = now
            log.warning(
                "NATS connection error",
                server=self.redacted_url,
                error=self.last_error,
                errors_since_last_logged=self._failures_unlogged,
            )
            self._failures_unlogged = 0
