"""The outbox relay: publishes the outbox to JetStream, oldest first, and deletes what the
server acknowledged.

Each round reads a batch of rows (in a thread), publishes them all with ``Nats-Msg-Id`` = the
event id and awaits the acknowledgements, then deletes the acknowledged rows. NATS down, a
timeout, a database outage: the rows stay, the relay backs off (up to ``backoff_max`` seconds)
and tries again, forever. Delivery is at least once: a relay that dies between the server's
acknowledgement and the delete publishes those rows again, and the server drops them as
duplicates of ids it saw within the stream's duplicate window.

**Order.** Messages are stored in outbox order, which is snapshot order. A batch is pipelined,
and on one connection it arrives in order, but a connection lost mid-batch may lose the first
messages with the socket while later ones, still buffered by the client, go out after the
reconnect. So each message but the first of a round also carries ``Nats-Expected-Last-Msg-Id``
= the id of the row before it: the server stores it only right after that one, and refuses
every later message of a batch once one is missing (or once anything else was stored in
between). The next round starts from the first row not acknowledged. The first message of a
round expects the last row the previous round stored, when that round stored all its rows;
after a failure it goes unchecked, which is safe: every row before it was acknowledged. (The
server looks for a duplicate id before it checks the expectation, so a re-published row is
acknowledged as a duplicate whatever it expected.)

The relay is a component with ``start``/``stop`` (or ``run(stop)``), so that a node runs it
only while it leads.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import APIError
from sqlalchemy.exc import SQLAlchemyError

from vatsim_collector.brokers.nats.connection import NatsConnection, NatsUnavailable
from vatsim_collector.brokers.nats.stream import StreamSpec, ensure_stream
from vatsim_collector.config import Settings
from vatsim_collector.errors.exceptions import CollectorError
from vatsim_collector.store import outbox
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.outbox import OutboxBacklog, OutboxRow

__all__ = ["MSG_ID", "OutboxRelay", "RelayStats"]

log = structlog.get_logger(__name__)

MSG_ID = "Nats-Msg-Id"
EXPECTED_LAST_MSG_ID = "Nats-Expected-Last-Msg-Id"
# A batch is in flight at once; nats-py allows 4,000 unacknowledged asynchronous publishes.
MAX_BATCH = 4000
# JetStream's "wrong last msg ID": the message before it was not the stream's last one.
WRONG_LAST_MSG_ID = 10070


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RelayStats:
    running: bool
    connected: bool
    # Events JetStream stored; re-published ones it recognised by id and dropped.
    published: int
    duplicates: int
    # Rounds that ended before every row of their batch was acknowledged.
    failed_rounds: int
    # Rows waiting as the relay last counted them (None before it first looked).
    backlog: int | None
    # Seconds since the oldest row still waiting was written; 0 when none waits.
    lag_seconds: float
    last_error: str | None


class _RoundFailed(CollectorError):
    """A round published nothing; ``last_error`` already says why."""


class OutboxRelay:
    def __init__(
        self,
        db: DatabaseService,
        connection: NatsConnection,
        stream: StreamSpec,
        *,
        batch_size: int = 500,
        ack_timeout: float = 5.0,
        idle_interval: float = 1.0,
        backoff_initial: float = 0.25,
        backoff_max: float = 10.0,
        count_interval: float = 5.0,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be from 1 to {MAX_BATCH}")
        self.db = db
        self.connection = connection
        self.stream = stream
        self.batch_size = batch_size
        self.ack_timeout = ack_timeout
        self.idle_interval = idle_interval
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.count_interval = count_interval
        self._clock = clock
        self.published = 0
        self.duplicates = 0
        self.failed_rounds = 0
        self.backlog: int | None = None
        self.oldest_waiting: datetime | None = None
        self.last_error: str | None = None
        self.running = False
        # The id the stream's last message has, as far as this relay knows (None: unknown),
        # and whether the stream was seen to exist with the settings wanted.
        self._last_id: str | None = None
        self._stream_ready = False
        # Rows acknowledged but not yet deleted (the delete failed): deleted before any read.
        self._acked: list[int] = []
        self._counted_at: datetime | None = None
        self._wake: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, db: DatabaseService, connection: NatsConnection, stream: StreamSpec
    ) -> OutboxRelay:
        return cls(
            db,
            connection,
            stream,
            batch_size=settings.outbox_batch_size,
            ack_timeout=settings.nats_ack_timeout,
        )

    # ----- what the service, health and metrics read --------------------------------------

    def lag_seconds(self) -> float:
        oldest = self.oldest_waiting
        if oldest is None:
            return 0.0
        return max(0.0, (self._clock() - oldest).total_seconds())

    def stats(self) -> RelayStats:
        return RelayStats(
            running=self.running,
            connected=self.connection.connected,
            published=self.published,
            duplicates=self.duplicates,
            failed_rounds=self.failed_rounds,
            backlog=self.backlog,
            lag_seconds=round(self.lag_seconds(), 3),
            last_error=self.last_error,
        )

    # ----- running -------------------------------------------------------------------------

    def wake(self) -> None:
        """New rows were committed: look now rather than at the next idle poll. Call on the
        relay's event loop."""
        if self._wake is not None:
            self._wake.set()

    def start(self) -> None:
        """Run in a task until ``stop``; starting a running relay does nothing."""
        if self._task is not None and not self._task.done():
            return
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self.run(self._stop), name="outbox-relay")

    async def stop(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109 (drain deadline)
        """Finish the round in flight (its acknowledged rows deleted) and stop."""
        task, stop = self._task, self._stop
        self._task = None
        if task is None or stop is None:
            return
        stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            log.error("outbox relay did not stop in time; cancelled", timeout=timeout)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def request_stop(self) -> None:
        """Stop after the round in flight, without waiting for it."""
        if self._stop is not None:
            self._stop.set()

    # ----- leadership (the shape of cluster.leadership.LeadershipListener) -----------------
    # Only the leader relays; an ex-leader's round in flight may still finish: what it
    # publishes the server de-duplicates, and the outbox is the same database.

    async def promote(self, epoch: int) -> None:
        """This node leads: relay, once a round a demotion left in flight has ended."""
        task, stop = self._task, self._stop
        if task is not None and not task.done() and stop is not None and stop.is_set():
            done, _ = await asyncio.wait([task], timeout=self.ack_timeout * 2)
            if not done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self.start()

    async def demote(self, reason: str) -> None:
        self.request_stop()

    async def observe(self, observation: object) -> None:
        return None

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set; survives every failure by backing off."""
        self._wake = asyncio.Event()
        self.running = True
        delay = 0.0
        log.info("outbox relay started", stream=self.stream.name)
        try:
            while not stop.is_set():
                try:
                    busy = await self._round()
                except Exception as exc:
                    delay = min(self.backoff_max, max(self.backoff_initial, delay * 2))
                    self._failed(exc, delay)
                    await self._pause(stop, delay, wakeable=False)
                    continue
                if delay:
                    log.info("outbox relay resumed", stream=self.stream.name)
                    self.last_error = None
                delay = 0.0
                if not busy:
                    await self._pause(stop, self.idle_interval, wakeable=True)
        finally:
            self.running = False
            log.info("outbox relay stopped", published=self.published, duplicates=self.duplicates)

    async def _pause(self, stop: asyncio.Event, seconds: float, *, wakeable: bool) -> None:
        waits = [asyncio.ensure_future(stop.wait())]
        wake = self._wake
        if wakeable and wake is not None:
            waits.append(asyncio.ensure_future(wake.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()
        if wake is not None:
            wake.clear()

    def _failed(self, exc: Exception, delay: float) -> None:
        if isinstance(exc, _RoundFailed):
            reason = self.last_error
        elif isinstance(exc, NatsUnavailable):
            reason = self.last_error = "NATS is not connected"
        else:
            reason = self.last_error = _describe(exc)
        if delay <= self.backoff_initial:
            # The first failure of a run of them: the next ones are the same story.
            if isinstance(exc, _RoundFailed | NatsUnavailable | SQLAlchemyError):
                log.warning("outbox relay paused; rows stay in the outbox", reason=reason)
            else:
                log.error("outbox relay round failed", reason=reason, exc_info=exc)

    # ----- one round -----------------------------------------------------------------------

    async def _round(self) -> bool:
        """Publish one batch; whether there was anything to publish."""
        if self._acked:
            await asyncio.to_thread(self._delete, self._acked)
            self._acked = []
        rows, counted = await asyncio.to_thread(self._read)
        self._observe(rows, counted)
        if not rows:
            return False
        js = self.connection.jetstream()
        acked = await self._publish(js, rows)
        if acked:
            self._acked = [row.id for row in rows[:acked]]
            await asyncio.to_thread(self._delete, self._acked)
            self._acked = []
            if self.backlog is not None:
                self.backlog = max(0, self.backlog - acked)
            if acked < len(rows):
                self.oldest_waiting = rows[acked].created_at
            elif len(rows) < self.batch_size:
                self.oldest_waiting = None  # the batch was the whole outbox
            else:
                # The next row is younger; the next round, at once, reads it.
                self.oldest_waiting = rows[-1].created_at
        return True

    def _read(self) -> tuple[list[OutboxRow], OutboxBacklog | None]:
        with self.db.read("outbox.read") as conn:
            rows = outbox.read_batch(conn, self.batch_size)
            counted = None
            now = self._clock()
            due = (
                self._counted_at is None
                or (now - self._counted_at).total_seconds() >= self.count_interval
            )
            if len(rows) == self.batch_size and due:
                counted = outbox.backlog(conn)
                self._counted_at = now
        return rows, counted

    def _observe(self, rows: Sequence[OutboxRow], counted: OutboxBacklog | None) -> None:
        if len(rows) < self.batch_size:
            self.backlog = len(rows)  # the whole outbox is in hand
        elif counted is not None:
            self.backlog = counted.rows
        self.oldest_waiting = rows[0].created_at if rows else None

    def _delete(self, ids: Sequence[int]) -> None:
        with self.db.write("outbox.delete") as conn:
            outbox.delete_rows(conn, ids)

    async def _publish(self, js: JetStreamContext, rows: Sequence[OutboxRow]) -> int:
        """Publish ``rows`` in order; how many of them, from the first, the server stored or
        recognised as duplicates. Raises ``_RoundFailed`` when none, unless only the first
        row's expectation was stale (the next round sends it unchecked at once)."""
        if not self._stream_ready:
            await ensure_stream(js, self.stream)
            self._stream_ready = True
        checked_first = self._last_id is not None
        futures: list[asyncio.Future[PubAck]] = []
        problem: BaseException | None = None
        previous = self._last_id
        try:
            # One deadline for the whole batch (a stall per message would cost a timer each).
            async with asyncio.timeout(self.ack_timeout):
                for row in rows:
                    headers = {MSG_ID: row.event_id}
                    if previous is not None:
                        headers[EXPECTED_LAST_MSG_ID] = previous
                    previous = row.event_id
                    futures.append(await js.publish_async(row.subject, row.body, headers=headers))
        except Exception as exc:  # the connection went away mid-batch, say, or a stall
            problem = exc
        if futures:
            await asyncio.wait(futures, timeout=self.ack_timeout)
        acked, last_duplicate = 0, False
        for future in futures:
            if not future.done() or future.cancelled():
                problem = problem or TimeoutError("no acknowledgement in time")
                break
            error = future.exception()
            if error is not None:
                problem = error
                break
            ack = future.result()
            acked += 1
            last_duplicate = bool(ack.duplicate)
            if last_duplicate:
                self.duplicates += 1
            else:
                self.published += 1
        for future in futures:
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()  # retrieved, so asyncio does not report it as lost
        if acked == len(rows):
            # A duplicate was stored some time ago: what is last in the stream is unknown.
            self._last_id = None if last_duplicate else rows[-1].event_id
            self.last_error = None
            return acked
        self._last_id = None
        self.failed_rounds += 1
        self.last_error = _describe(problem) if problem is not None else None
        if not isinstance(problem, APIError):
            self._stream_ready = False  # a timeout or a lost connection: look again first
        stale_expectation = (
            checked_first
            and isinstance(problem, APIError)
            and problem.err_code == WRONG_LAST_MSG_ID
        )
        if acked == 0 and not stale_expectation:
            raise _RoundFailed
        return acked


def _describe(exc: BaseException) -> str:
    if isinstance(exc, APIError):
        if exc.err_code == WRONG_LAST_MSG_ID:
            return "the message before was not stored (the rest is sent again, in order)"
        return f"{type(exc).__name__} (err_code {exc.err_code})"
    return type(exc).__name__
