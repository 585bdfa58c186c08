"""``vatsim-collector worker``: registered handlers run out of process, from the events stream.

Each handler named on the command line is built from the handler registry
(``pipeline.handlers``) exactly as the collector's bus builds it, and fed by its durable pull
consumer (``brokers.nats.consumer``); any number of workers running one handler share its
messages. One message is one attempt:

* the handler is called under its timeout (``VATSIM_EVENT_HANDLER_TIMEOUT``); success acks;
* a failure before the last attempt is nak'ed with a delay that doubles per attempt (from the
  handler's retry policy), so JetStream redelivers it, to this worker or another;
* the last attempt (``VATSIM_EVENT_HANDLER_RETRIES``) failing puts the event in the dead-letter
  queue -- the same table the collector uses, so ``/api/events/dead-letters``, replay and
  discard work unchanged from any node -- and then terminates the message;
* a worker killed mid-attempt never answers: the ack wait runs out and JetStream redelivers.

While the handler's circuit breaker is open (too many dead letters in a row), the worker stops
pulling: the events wait in the stream instead of filling the dead-letter queue.

The process is a node of the cluster (role ``worker``): it beats in ``cluster_nodes`` with its
handlers' breakers, which a reset asked from any node reaches, and its error records name it.

SIGTERM or SIGINT: no more pulls; the attempts in flight finish (each bounded by the timeout)
and are answered, then the dead letters and error records still in memory are written.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import nats
import nats.errors
import structlog
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from vatsim_collector.brokers.nats.consumer import (
    ConsumerStats,
    ConsumerUnavailable,
    HandlerConsumer,
    Received,
    consumer_config,
    consumer_stats,
)
from vatsim_collector.cluster.node import Node, Role
from vatsim_collector.cluster.registry import NodeRegistry
from vatsim_collector.config import Settings
from vatsim_collector.errors.breaker import BreakerState
from vatsim_collector.errors.exceptions import Category, CollectorError, Severity
from vatsim_collector.errors.manager import ErrorManager
from vatsim_collector.errors.registry import BreakerRegistry
from vatsim_collector.errors.retry import RetryPolicy
from vatsim_collector.events.bus import BREAKER_PREFIX
from vatsim_collector.events.delivery import Delivery
from vatsim_collector.events.event import Event
from vatsim_collector.events.metrics import EventMetrics
from vatsim_collector.events.subscription import Subscription
from vatsim_collector.pipeline.handlers import HandlerContext, HandlerRegistry, build_registry
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.dead_letters import DeadLetterQueue
from vatsim_collector.store.error_records import ErrorRecordStore

__all__ = [
    "FETCH_WAIT_SECONDS",
    "AttemptAbandoned",
    "HandlerWorker",
    "WorkerProcess",
    "consumer_reader",
    "nak_delay",
    "run_worker",
]

log = structlog.get_logger(__name__)

# How long one pull waits for messages; also how soon a stop or an opened breaker is noticed.
FETCH_WAIT_SECONDS = 1.0
# Between tries to reach NATS, or to bind a consumer whose stream does not exist yet.
UNAVAILABLE_PAUSE_SECONDS = 2.0


class AttemptAbandoned(CollectorError):
    """The last attempt at a delivery never answered: its worker was killed, or the handler
    hung past the ack wait. The event goes to the dead-letter queue without another call."""

    category = Category.TIMEOUT
    severity = Severity.MEDIUM
    transient = True


def nak_delay(policy: RetryPolicy, attempt: int) -> float:
    """Seconds before attempt ``attempt + 1``: ``initial`` doubled per attempt, capped."""
    return float(min(policy.maximum, policy.initial * 2 ** (attempt - 1)))


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


class HandlerWorker:
    """One handler fed by its consumer: attempts, acknowledgements and dead letters."""

    def __init__(
        self,
        sub: Subscription,
        consumer: HandlerConsumer,
        delivery: Delivery,
        errors: ErrorManager,
    ) -> None:
        self.sub = sub
        self.consumer = consumer
        self.delivery = delivery
        self.errors = errors
        self.attempts = sub.options.retry.attempts
        self._paused = False

    @property
    def name(self) -> str:
        return self.sub.name

    async def run(self, stop: asyncio.Event) -> None:
        """Pull and deliver until ``stop`` is set; ``concurrency`` pulls at a time."""
        await asyncio.gather(
            *(self._loop(stop) for _ in range(self.sub.options.concurrency)),
        )

    async def _loop(self, stop: asyncio.Event) -> None:
        # A batch handler gets what is waiting, up to its batch size, in one call; a single
        # handler one event per pull, so no fetched message waits out its ack wait unhandled.
        size = self.sub.options.batch_size if self.sub.batch else 1
        while not stop.is_set():
            if self._breaker_open():
                await _pause(stop, FETCH_WAIT_SECONDS)
                continue
            try:
                batch = await self.consumer.fetch(size, FETCH_WAIT_SECONDS)
            except ConsumerUnavailable as exc:
                log.warning("cannot pull events; trying again", handler=self.name, error=str(exc))
                await _pause(stop, UNAVAILABLE_PAUSE_SECONDS)
                continue
            if not batch:
                continue
            try:
                await self.handle(batch)
            except (nats.errors.Error, OSError) as exc:
                # An answer lost with the connection: JetStream redelivers after the ack wait,
                # and the handlers are idempotent.
                log.warning("answer to NATS lost", handler=self.name, error=type(exc).__name__)
            except Exception:
                # The worker's own bug must not end the loop: the handler would starve. What
                # was not answered comes back after the ack wait.
                log.exception("event delivery failed inside the worker", handler=self.name)

    def _breaker_open(self) -> bool:
        is_open = self.sub.breaker.state is BreakerState.OPEN
        if is_open != self._paused:
            self._paused = is_open
            if is_open:
                log.error(
                    "handler breaker open: pulling paused, events wait in the stream",
                    handler=self.name,
                )
            else:
                log.info("handler breaker half-open: pulling again", handler=self.name)
        return is_open

    async def handle(self, batch: Sequence[Received]) -> None:
        """One attempt at ``batch`` (one pull's messages), answered message by message."""
        wanted: list[Received] = []
        for item in batch:
            event = item.event
            if event is None:
                await self._unreadable(item)
            elif not self.sub.matches(event.type):
                await item.ack()  # let through by the subject filter, not wanted by the patterns
            elif item.delivery > self.attempts:
                await self._abandoned(item, event)
            else:
                wanted.append(item)
        if not wanted:
            return
        events = [item.event for item in wanted if item.event is not None]
        try:
            await self.delivery.attempt(self.sub, events)
        except Exception as exc:
            await self._failed(wanted, events, exc)
            return
        await asyncio.gather(*(item.ack() for item in wanted))
        log.debug("events handled", handler=self.name, events=len(events))
        self.sub.breaker.on_success()
        self.sub.metrics.successes += len(events)
        delivered = self.delivery.metrics.delivered
        for event in events:
            delivered[event.type] += 1

    async def _failed(self, items: list[Received], events: list[Event], exc: Exception) -> None:
        last = [item for item in items if item.delivery >= self.attempts]
        for item in items:
            if item.delivery < self.attempts:
                self.sub.metrics.retries += 1
                await item.nak(nak_delay(self.sub.options.retry, item.delivery))
        log.info(
            "handler attempt failed",
            handler=self.name,
            events=len(items),
            attempt=max(item.delivery for item in items),
            of=self.attempts,
            error=type(exc).__name__,
        )
        if last:
            final = [item.event for item in last if item.event is not None]
            await self._dead_letter(last, final, exc)

    async def _abandoned(self, item: Received, event: Event) -> None:
        exc = AttemptAbandoned(
            f"delivery {item.delivery} of event {event.id} to {self.name}: the last of"
            f" {self.attempts} attempts never answered (worker stopped, or past the ack wait)"
        )
        await self._dead_letter([item], [event], exc)

    async def _dead_letter(
        self, items: list[Received], events: list[Event], exc: BaseException
    ) -> None:
        # The letter is written before the message is terminated; the ack wait restarts first,
        # so JetStream does not hand the message to another worker meanwhile.
        await asyncio.gather(*(item.in_progress() for item in items))
        now = datetime.now(UTC)
        failure = self.delivery.failure(self.sub, events, exc, attempts=self.attempts, first=now)
        await self.delivery.fail(self.sub, events, failure, dead_letter=True)
        self.sub.breaker.on_failure(exc)
        await asyncio.gather(*(item.term() for item in items))

    async def _unreadable(self, item: Received) -> None:
        # Not an event at all: nothing a handler or a replay could do with it.
        error = item.error
        if error is not None:
            self.errors.record(
                error,
                service="events",
                operation=f"worker.{self.name}",
                context={"handler": self.name, "stream_sequence": item.sequence},
            )
        await item.term()


@dataclass
class WorkerProcess:
    """The handlers of one ``worker`` process, with what they share: the database, the error
    manager, the breakers and the dead-letter queue."""

    settings: Settings
    db: DatabaseService
    errors: ErrorManager
    dead_letters: DeadLetterQueue
    workers: list[HandlerWorker]
    # This process in cluster_nodes (role worker, its handler breakers), beating while it runs.
    node: NodeRegistry

    @classmethod
    def build(
        cls,
        settings: Settings,
        db: DatabaseService,
        js: JetStreamContext,
        names: Sequence[str],
        *,
        registry: HandlerRegistry | None = None,
    ) -> WorkerProcess:
        registry = registry if registry is not None else build_registry(settings)
        specs = [registry.get(name) for name in dict.fromkeys(names)]  # raises UnknownHandler
        node = Node(settings.node, Role.WORKER)
        errors = ErrorManager(
            ErrorRecordStore(db), window_size=settings.error_window_size, node=node.name
        )
        breakers = BreakerRegistry.from_settings(settings)
        dead_letters = DeadLetterQueue(db, max_entries=settings.dead_letter_max)
        metrics = EventMetrics()
        delivery = Delivery(metrics, errors, dead_letters)
        context = HandlerContext(settings, db)
        workers = []
        for spec in specs:
            options = spec.options(settings)
            sub = Subscription(
                spec.name,
                spec.patterns,
                spec.build(context),
                batch=spec.batch,
                options=options,
                breaker=breakers.get_or_create(BREAKER_PREFIX + spec.name, options.breaker),
                metrics=metrics.handler(spec.name),
            )
            config = consumer_config(
                spec.name,
                spec.patterns,
                prefix=settings.nats_subject_prefix,
                timeout=options.timeout,
                attempts=options.retry.attempts,
            )
            consumer = HandlerConsumer(js, settings.nats_stream, config)
            workers.append(HandlerWorker(sub, consumer, delivery, errors))
        heartbeat = NodeRegistry(
            db, node, breakers, interval=settings.node_heartbeat_seconds, errors=errors
        )
        return cls(settings, db, errors, dead_letters, workers, heartbeat)

    async def bind(self, stop: asyncio.Event) -> bool:
        """Set up every consumer, waiting while NATS or the stream is not there; False if
        stopped first."""
        for worker in self.workers:
            while True:
                try:
                    await worker.consumer.bind()
                    break
                except ConsumerUnavailable as exc:
                    log.warning("consumer not ready; trying again", error=str(exc))
                    await _pause(stop, UNAVAILABLE_PAUSE_SECONDS)
                    if stop.is_set():
                        return False
            log.info(
                "handler consuming",
                handler=worker.name,
                consumer=worker.consumer.durable,
                subject=worker.consumer.config.filter_subject,
                ack_wait=worker.consumer.config.ack_wait,
                max_deliver=worker.consumer.config.max_deliver,
            )
        return True

    async def run(self, stop: asyncio.Event) -> None:
        flusher = asyncio.create_task(
            self.errors.run_flusher(self.settings.error_flush_interval, stop),
            name="error-records",
        )
        heartbeat = asyncio.create_task(self.node.run(stop), name="heartbeat")
        try:
            if await self.bind(stop):
                await asyncio.gather(*(worker.run(stop) for worker in self.workers))
        finally:
            stop.set()
            for worker in self.workers:
                await worker.consumer.close()
            await asyncio.to_thread(self.dead_letters.flush)
            await flusher
            await heartbeat
            for worker in self.workers:
                log.info("handler stopped", handler=worker.name, **_counts(worker))


def _counts(worker: HandlerWorker) -> dict[str, int]:
    report = worker.sub.metrics.as_dict()
    return {key: report[key] for key in ("successes", "retries", "timeouts", "dead_lettered")}


async def _connect(settings: Settings, stop: asyncio.Event) -> NatsClient | None:
    # The one place a worker opens its connection; None if stopped before NATS answered.
    url = settings.nats_url.get_secret_value()

    async def on_error(exc: Exception) -> None:
        log.warning("NATS connection error", error=type(exc).__name__)

    async def on_disconnected() -> None:
        if not stop.is_set():  # not the worker's own close
            log.warning("NATS disconnected; reconnecting")

    async def on_reconnected() -> None:
        log.info("NATS reconnected")

    while not stop.is_set():
        try:
            client: NatsClient = await nats.connect(
                url,
                name=f"vatsim-collector worker {settings.node}",
                max_reconnect_attempts=-1,
                reconnect_time_wait=1,
                error_cb=on_error,
                disconnected_cb=on_disconnected,
                reconnected_cb=on_reconnected,
            )
            return client
        except (nats.errors.Error, OSError) as exc:
            # The URL may hold a password: only the error's type is logged.
            log.warning("NATS not reachable; trying again", error=type(exc).__name__)
            await _pause(stop, UNAVAILABLE_PAUSE_SECONDS)
    return None


async def serve(settings: Settings, db: DatabaseService, names: Sequence[str]) -> None:
    """Run the handlers ``names`` until SIGTERM or SIGINT."""
    registry = build_registry(settings)
    for name in names:
        registry.get(name)  # an unknown name fails before anything connects
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    client = await _connect(settings, stop)
    if client is None:
        return
    try:
        process = WorkerProcess.build(settings, db, client.jetstream(), names, registry=registry)
        log.info("worker started", node=settings.node, handlers=list(names))
        await process.run(stop)
    finally:
        with contextlib.suppress(nats.errors.Error, OSError):
            await client.drain()
        log.info("worker stopped", node=settings.node)


def consumer_reader(
    settings: Settings,
    jetstream: Callable[[], JetStreamContext],
    registry: HandlerRegistry | None = None,
) -> Callable[[], Awaitable[Mapping[str, ConsumerStats]]]:
    """For ``/metrics`` (``ServiceMetrics.watch_consumers``): reads the consumer of every
    registered handler that a worker has run. ``jetstream`` is asked for the context at each
    read, so a connection made (or remade) later is used; it may raise a ``CollectorError``
    while NATS is down, as the read itself then does."""
    names = (registry if registry is not None else build_registry(settings)).names()

    async def read() -> Mapping[str, ConsumerStats]:
        return await consumer_stats(jetstream(), settings.nats_stream, names)

    return read


def run_worker(settings: Settings, names: Sequence[str]) -> None:
    """The ``worker`` command: migrations applied, then :func:`serve` until stopped."""
    from vatsim_collector.store.migrate import upgrade

    db = DatabaseService.from_settings(settings)
    try:
        upgrade(db.engine)
        asyncio.run(serve(settings, db, names))
    finally:
        db.dispose()
