"""A handler's durable pull consumer on the events stream, and the consumers' figures.

One durable consumer per handler, named after it (``handler-<name>``): every worker running
that handler binds to the same consumer, so JetStream shares the messages between them and
redelivers to any of them what one did not acknowledge. Messages are the outbox relay's: the
subject ``<prefix>.<event type>``, the event id as ``Nats-Msg-Id``, the body
``events.event.encode_event(event)``.

nats-server 2.9 gives a consumer one filter subject, so a handler's fnmatch patterns become the
narrowest single subject that covers them all (``pilot.disconnected`` and
``controller.disconnected`` → ``<prefix>.*.disconnected``); the worker acknowledges, without a
call, what the subject lets through and the patterns do not want.

Delivery counting: the consumer's ``max_deliver`` is the handler's attempts plus one. The worker
dead-letters a message itself when its last attempt fails; the spare delivery exists for the
message whose last attempt never answered (its worker was killed, or hung past the ack wait):
it arrives once more and goes straight to the dead-letter queue, instead of JetStream dropping
it silently.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import nats.errors
import nats.js.errors
import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from vatsim_collector.errors.exceptions import Category, CollectorError, Severity
from vatsim_collector.events.event import Event, EventCodecError, decode_event

__all__ = [
    "ACK_GRACE_SECONDS",
    "ConsumerStats",
    "ConsumerUnavailable",
    "HandlerConsumer",
    "Received",
    "consumer_config",
    "consumer_stats",
    "durable_name",
    "event_subject",
    "filter_subject",
    "wants",
]

log = structlog.get_logger(__name__)

# Added to the handler's timeout for the ack wait: the worker enforces the timeout itself, and
# needs a moment after it to answer (nak, or dead-letter and terminate) before JetStream would
# redeliver on its own. JetStream redelivering on its own means the worker stopped answering.
ACK_GRACE_SECONDS = 1.0

DURABLE_PREFIX = "handler-"
_WILDCARDS = frozenset("*?[")


class ConsumerUnavailable(CollectorError):
    """The stream or the consumer cannot be reached or set up right now (NATS down, the stream
    not created yet); the worker waits and tries again."""

    category = Category.NETWORK
    severity = Severity.MEDIUM
    transient = True


def event_subject(prefix: str, event_type: str) -> str:
    """The subject an event of ``event_type`` is published on."""
    return f"{prefix}.{event_type}"


def durable_name(handler: str) -> str:
    """The durable consumer of ``handler`` (registry names are already safe consumer names)."""
    return DURABLE_PREFIX + handler


def _pattern_tokens(pattern: str) -> list[str]:
    """NATS subject tokens matching at least every event type that fnmatch ``pattern`` does.

    fnmatch's ``*`` also matches dots, so a wildcard token is only kept as ``*`` when nothing
    before it needs more (a trailing one becomes ``>``, any number of tokens); anything else
    falls back to ``>`` from there.
    """
    tokens: list[str] = []
    parts = pattern.split(".")
    for position, part in enumerate(parts):
        if not _WILDCARDS & set(part):
            tokens.append(part)
            continue
        if position == len(parts) - 1 and part == "*":
            tokens.append(">")
            return tokens
        # "*.disconnected": fnmatch would also match "a.b.disconnected"; every known event
        # type has two tokens, so "*" is exact for them, and the worker checks the patterns.
        if part == "*" and all(not _WILDCARDS & set(rest) for rest in parts[position + 1 :]):
            tokens.append("*")
            continue
        tokens.append(">")
        return tokens
    return tokens


def _merge(a: list[str], b: list[str]) -> list[str]:
    """The narrowest subject tokens covering both."""
    merged: list[str] = []
    for position in range(max(len(a), len(b))):
        left = a[position] if position < len(a) else None
        right = b[position] if position < len(b) else None
        if left == ">" or right == ">" or left is None or right is None:
            # One ends here (or takes any rest): from the last shared position on, anything.
            if left is None or right is None:
                merged = merged[:-1] if merged else merged
            merged.append(">")
            return merged
        merged.append(left if left == right else "*")
    return merged


def filter_subject(prefix: str, patterns: Sequence[str]) -> str:
    """One subject covering every event type ``patterns`` match (see the module docstring)."""
    if not patterns:
        raise ValueError("no patterns")
    tokens = _pattern_tokens(patterns[0])
    for pattern in patterns[1:]:
        tokens = _merge(tokens, _pattern_tokens(pattern))
    return f"{prefix}.{'.'.join(tokens)}"


def consumer_config(
    handler: str,
    patterns: Sequence[str],
    *,
    prefix: str,
    timeout: float,
    attempts: int,
) -> ConsumerConfig:
    durable = durable_name(handler)
    return ConsumerConfig(
        name=durable,
        durable_name=durable,
        description=f"vatsim-collector handler {handler}",
        # A consumer created after events were published still gets them: the stream's own
        # limits, not the moment a worker first started, decide what is kept.
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=timeout + ACK_GRACE_SECONDS,
        max_deliver=attempts + 1,  # the spare: see the module docstring
        filter_subject=filter_subject(prefix, patterns),
    )


@dataclass
class Received:
    """One fetched message: its event (None if the body is not an event), and which delivery
    of it this is (1 for the first)."""

    msg: Msg
    event: Event | None
    delivery: int
    error: EventCodecError | None = None

    @property
    def sequence(self) -> int:
        return int(self.msg.metadata.sequence.stream)

    async def ack(self) -> None:
        await self.msg.ack()

    async def nak(self, delay: float | None = None) -> None:
        await self.msg.nak(delay=delay)

    async def term(self) -> None:
        await self.msg.term()

    async def in_progress(self) -> None:
        """Restart this delivery's ack wait."""
        await self.msg.in_progress()


def _received(msg: Msg) -> Received:
    delivery = int(msg.metadata.num_delivered)
    try:
        return Received(msg, decode_event(msg.data), delivery)
    except EventCodecError as exc:
        return Received(msg, None, delivery, exc)


class HandlerConsumer:
    """The durable consumer of one handler on ``stream``, bound for pulling."""

    def __init__(self, js: JetStreamContext, stream: str, config: ConsumerConfig) -> None:
        self.js = js
        self.stream = stream
        self.config = config
        self._sub: JetStreamContext.PullSubscription | None = None

    @property
    def durable(self) -> str:
        return str(self.config.durable_name)

    async def bind(self) -> None:
        """Create the consumer, or bring an existing one to this configuration (a changed
        timeout or retry setting), and subscribe to pull from it."""
        try:
            await self.js.add_consumer(self.stream, self.config)
            self._sub = await self.js.pull_subscribe_bind(durable=self.durable, stream=self.stream)
        except (nats.errors.Error, nats.js.errors.Error, OSError) as exc:
            raise ConsumerUnavailable(
                f"consumer {self.durable} on stream {self.stream}: {type(exc).__name__}: {exc}"
            ) from exc

    async def fetch(self, batch: int, wait: float) -> list[Received]:
        """Up to ``batch`` messages, waiting at most ``wait`` seconds for the first; [] if
        none came."""
        if self._sub is None:
            await self.bind()
        assert self._sub is not None
        try:
            msgs = await self._sub.fetch(batch, timeout=wait)
        except (TimeoutError, nats.errors.TimeoutError):
            return []
        except (nats.errors.Error, nats.js.errors.Error, OSError) as exc:
            # Bound again on the next fetch: the consumer may have been deleted, or the
            # server replaced.
            await self.close()
            raise ConsumerUnavailable(
                f"fetch from {self.durable}: {type(exc).__name__}: {exc}"
            ) from exc
        return [_received(msg) for msg in msgs]

    async def close(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.unsubscribe()
            except (nats.errors.Error, OSError) as exc:
                log.info("pull subscription not closed cleanly", error=type(exc).__name__)


def wants(patterns: Sequence[str], event_type: str) -> bool:
    return any(fnmatch.fnmatchcase(event_type, pattern) for pattern in patterns)


@dataclass(frozen=True)
class ConsumerStats:
    """A consumer's backlog as JetStream counts it."""

    num_pending: int  # in the stream, not yet delivered
    num_ack_pending: int  # delivered, not yet acknowledged
    num_redelivered: int  # delivered more than once and not yet acknowledged

    def as_dict(self) -> dict[str, int]:
        return {
            "num_pending": self.num_pending,
            "num_ack_pending": self.num_ack_pending,
            "num_redelivered": self.num_redelivered,
        }


async def consumer_stats(
    js: JetStreamContext, stream: str, handlers: Sequence[str]
) -> Mapping[str, ConsumerStats]:
    """The figures of each handler's consumer, by handler name; a handler whose consumer does
    not exist (no worker has run it yet) is left out. Raises ``ConsumerUnavailable`` if NATS
    does not answer."""
    found: dict[str, ConsumerStats] = {}
    for handler in handlers:
        durable = durable_name(handler)
        try:
            info = await js.consumer_info(stream, durable)
        except nats.js.errors.NotFoundError:
            continue
        except (nats.errors.Error, nats.js.errors.Error, OSError) as exc:
            raise ConsumerUnavailable(f"consumer {durable}: {type(exc).__name__}: {exc}") from exc
        found[handler] = ConsumerStats(
            num_pending=info.num_pending or 0,
            num_ack_pending=info.num_ack_pending or 0,
            num_redelivered=info.num_redelivered or 0,
        )
    return found
