"""Which node writes: the elector, and the fence every snapshot transaction passes.

Any number of ``run`` processes may share one PostgreSQL database. Each runs an ``Elector``:
the one holding the leader lock (store/leader_lock.py) leads, the others stand by and try the
lock several times per lease. Taking the lock is not enough to write: the new leader first
moves the fencing epoch on (store/cluster.py ``claim_leadership``), which waits for every
transaction that checked the old epoch, and from then on every snapshot transaction checks the
epoch it was elected with (``fence``). An ex-leader that was frozen or cut off therefore fails
its next commit instead of writing beside the new leader.

On SQLite there is no lock to contend for: a second process is refused at start by a file lock,
and the one process leads from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import structlog
from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from vatsim_collector.cluster.node import Node, Role
from vatsim_collector.store import cluster as sql
from vatsim_collector.store.cluster import FencedOut
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.leader_lock import LeaderLock

log = structlog.get_logger(__name__)

# Tries of the lock (and standby observations) per lease.
TICKS_PER_LEASE = 5
# Claims of the epoch that may wait (a lease each) before the last one waits for good.
CLAIM_ATTEMPTS = 3


@dataclass(frozen=True)
class Observation:
    """What a standby last read of the cluster."""

    leader: str | None
    epoch: int
    newest_accepted_at: datetime | None
    read_at: datetime


class LeadershipListener(Protocol):
    """What the elector tells the collection loop (the poller is one)."""

    async def promote(self, epoch: int) -> None:
        """This node leads from now on: catch up from the database, fill the gap, write."""

    async def demote(self, reason: str) -> None:
        """This node no longer leads: stop writing, keep what was fetched."""

    async def observe(self, observation: Observation) -> None:
        """A standby's periodic look at the cluster (what the leader has stored)."""


@dataclass
class ElectorCounters:
    # Times this node became the leader, and stopped being it.
    elections: int = 0
    demotions: int = 0
    # Seconds from taking the lock to writing (epoch claimed, state restored, gap queued).
    last_takeover_seconds: float | None = None
    # Commits the fence refused on this node.
    fenced: int = 0


class Elector:
    def __init__(
        self,
        db: DatabaseService,
        node: Node,
        lock: LeaderLock | None,
        *,
        lease_seconds: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.db = db
        self.node = node
        # None: SQLite, one process (already refused a second one at start): lead at once.
        self.lock = lock
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.listener: LeadershipListener | None = None
        self.counters = ElectorCounters()
        # The epoch this node was elected with; None while it does not lead.
        self.epoch: int | None = None
        self.last_observation: Observation | None = None
        self._step_down: str | None = None
        self._wake = asyncio.Event()

    @property
    def leading(self) -> bool:
        return self.epoch is not None

    # -- fencing (called in the ingest thread) ---------------------------------------------

    def fence(self, conn: Connection) -> int:
        """First statement of every snapshot transaction: refuse to write without the
        current epoch; the epoch the snapshot is stored under."""
        epoch = self.epoch
        if epoch is None:
            self.counters.fenced += 1
            raise FencedOut(-1, -1)
        if self.lock is None:
            return epoch  # one process on SQLite: nobody else can move the epoch on
        try:
            sql.check_epoch(conn, epoch)
        except FencedOut:
            self.counters.fenced += 1
            raise
        return epoch

    def fenced_out(self, reason: str) -> None:
        """The poller's commit was refused: give up the leadership at the next tick."""
        self._step_down = reason
        self._wake.set()

    # -- the loop ---------------------------------------------------------------------------

    @property
    def tick_seconds(self) -> float:
        return max(0.1, self.lease_seconds / TICKS_PER_LEASE)

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    await self._tick()
                except Exception:
                    # The elector must outlive any bug; a failed tick is tried again.
                    log.exception("leader election tick failed")
                self._wake.clear()
                waiters = [
                    asyncio.ensure_future(stop.wait()),
                    asyncio.ensure_future(self._wake.wait()),
                ]
                try:
                    await asyncio.wait(
                        waiters, timeout=self.tick_seconds, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    for waiter in waiters:
                        waiter.cancel()
        finally:
            await self._resign()

    async def _tick(self) -> None:
        if self.leading:
            reason = self._step_down
            if (
                reason is None
                and self.lock is not None
                and not await asyncio.to_thread(self.lock.keepalive)
            ):
                reason = "the leader lock was lost (session ended)"
            if reason is not None:
                await self._demote(reason)
            return
        self._step_down = None
        if self.lock is not None and not await asyncio.to_thread(self.lock.try_acquire):
            await self._observe()
            return
        await self._take_over()

    def lead_if_free(self) -> bool:
        """At start, before the loops run: lead at once if nobody does (one process, or the
        first node up), so the collector writes from its first snapshot. The caller
        rebuilds the state from the database afterwards, under the claimed epoch."""
        if self.lock is not None and not self.lock.try_acquire():
            return False
        epoch = self._claim_or_let_go()
        if epoch is None:
            return False
        self._lead(epoch)
        self.counters.elections += 1
        return True

    def _claim_or_let_go(self) -> int | None:
        """With the lock taken: the claimed epoch, or None (and the lock given back) when the
        database would not take the claim."""
        try:
            return self._claim()
        except SQLAlchemyError as exc:
            log.warning(
                "leader lock taken but the epoch could not be claimed", error=type(exc).__name__
            )
            if self.lock is not None:
                self.lock.release()
            return None

    def _lead(self, epoch: int) -> None:
        self.epoch = epoch
        self.node.role = Role.LEADER
        log.info("this node leads", node=self.node.name, epoch=epoch)

    async def _take_over(self) -> None:
        started = time.perf_counter()
        epoch = await asyncio.to_thread(self._claim_or_let_go)
        if epoch is None:
            return
        self._lead(epoch)
        if self.listener is not None:
            try:
                await self.listener.promote(epoch)
            except Exception as exc:
                # Most likely the database went away while catching up: try again later.
                log.warning("taking over failed; standing by", error=type(exc).__name__)
                await self._demote(f"taking over failed: {type(exc).__name__}")
                return
        self.counters.elections += 1
        self.counters.last_takeover_seconds = time.perf_counter() - started

    def _claim(self) -> int:
        for _ in range(CLAIM_ATTEMPTS - 1):
            try:
                with self.db.write("cluster.claim_leadership") as conn:
                    return sql.claim_leadership(
                        conn, self.node.name, self.clock(), wait_seconds=self.lease_seconds
                    )
            except OperationalError as exc:
                if not sql.is_claim_timeout(exc):
                    raise
            # An ex-leader's snapshot transaction is still open (it froze mid-write): it can
            # never commit, since this node holds the lock; end it rather than wait for it.
            with self.db.write("cluster.end_fenced_transactions") as conn:
                ended = sql.end_fenced_transactions(conn)
            log.warning("ended an ex-leader's open transactions", sessions=ended)
        with self.db.write("cluster.claim_leadership") as conn:
            return sql.claim_leadership(conn, self.node.name, self.clock())

    async def _demote(self, reason: str) -> None:
        # The epoch first: from here on the fence refuses every commit of this node.
        self.epoch = None
        self.node.role = Role.STANDBY
        self.counters.demotions += 1
        log.warning("this node no longer leads", node=self.node.name, reason=reason)
        if self.lock is not None:
            await asyncio.to_thread(self.lock.release)
        if self.listener is not None:
            await self.listener.demote(reason)

    async def _observe(self) -> None:
        try:
            observation = await asyncio.to_thread(self._read_cluster)
        except SQLAlchemyError:
            return  # the database is away: nothing learnt, everything fetched is kept
        self.last_observation = observation
        if self.listener is not None:
            await self.listener.observe(observation)

    def _read_cluster(self) -> Observation:
        with self.db.read("cluster.observe") as conn:
            leadership = sql.read_leadership(conn)
            newest = sql.newest_accepted_at(conn)
        return Observation(leadership.leader_node, leadership.epoch, newest, self.clock())

    async def _resign(self) -> None:
        """Stopping in order: let the next leader be elected at once."""
        epoch, self.epoch = self.epoch, None
        if epoch is not None:
            # The lock's end is what counts; if the row cannot be cleared, the next leader
            # overwrites it.
            with contextlib.suppress(SQLAlchemyError):
                await asyncio.to_thread(self._release_row, epoch)
        if self.lock is not None:
            await asyncio.to_thread(self.lock.close)

    def _release_row(self, epoch: int) -> None:
        with self.db.write("cluster.release_leadership") as conn:
            sql.release_leadership(conn, self.node.name, epoch)
