"""This process as a member of the cluster: its heartbeat in ``cluster_nodes``, and the breaker
resets other nodes ask of it.

Every ``interval`` seconds the registry, in one transaction, takes the breaker resets addressed
to this node (``breaker_resets``), applies them to its own breakers, and upserts its row: name,
role, host, pid, start and heartbeat times, and the snapshots of its breakers. So any node can
show the breakers of every node (its own live, the others' as last reported), and a reset
asked on one node reaches the owner within one heartbeat. A reset is applied before the
transaction commits: if the commit fails, the request is still there and is applied again on
the next beat (closing a breaker twice is harmless), so no request is lost.

A node whose heartbeat is older than ``STALE_AFTER_BEATS`` intervals is reported stale (it
crashed, is paused, or cannot reach the database). One silent for ``FORGET_AFTER`` is removed,
with the resets still waiting for it, so that nodes named after host and pid (the default) do
not pile up across restarts. A clean stop removes this node's row at once.

Heartbeats carry each node's own wall-clock time, so the nodes' clocks are expected to agree
(NTP); a skew of more than a couple of intervals shows a live node as stale.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from vatsim_collector.cluster.node import Node
from vatsim_collector.errors.breaker import BreakerSnapshot
from vatsim_collector.errors.exceptions import DataRejected
from vatsim_collector.errors.manager import ErrorManager
from vatsim_collector.errors.registry import BreakerRegistry
from vatsim_collector.errors.scrub import scrub_text
from vatsim_collector.store.cluster import (
    NodeRow,
    forget_silent_nodes,
    list_nodes,
    remove_node,
    request_breaker_reset,
    take_breaker_resets,
    upsert_node,
)
from vatsim_collector.store.database import DatabaseService

__all__ = [
    "FORGET_AFTER",
    "STALE_AFTER_BEATS",
    "ClusterView",
    "NodeRegistry",
    "NodeState",
    "ResetOutcome",
    "UnknownBreaker",
    "UnknownNode",
]

log = structlog.get_logger(__name__)

STALE_AFTER_BEATS = 3
FORGET_AFTER = timedelta(hours=1)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class UnknownNode(DataRejected):
    """A reset named a node the cluster does not know (never registered, stopped or forgotten)."""

    def __init__(self, node: str) -> None:
        super().__init__(f"no node named {node!r} in the cluster")
        self.node = node


class UnknownBreaker(DataRejected):
    """A reset named a breaker the node does not have (or has not reported yet)."""

    def __init__(self, node: str, breaker: str) -> None:
        super().__init__(f"node {node!r} has no circuit breaker named {breaker!r}")
        self.node = node
        self.breaker = breaker


@dataclass(frozen=True)
class NodeState:
    """One node as the cluster sees it; its breakers live for this node (``local``), as last
    reported for the others."""

    name: str
    role: str
    host: str
    pid: int
    started_at: datetime
    # The last heartbeat stored; None for this node before its first one was.
    heartbeat_at: datetime | None
    stale: bool
    local: bool
    breakers: list[BreakerSnapshot]


@dataclass(frozen=True)
class ClusterView:
    nodes: list[NodeState]
    # False: the table could not be read; ``nodes`` holds this node alone.
    complete: bool


@dataclass(frozen=True)
class ResetOutcome:
    node: NodeState
    # The breaker after the reset (this node's), or as its owner last reported it.
    breaker: BreakerSnapshot
    # True: closed here and now; False: asked of the owner, which applies it on its next beat.
    applied: bool


class NodeRegistry:
    def __init__(
        self,
        db: DatabaseService,
        node: Node,
        breakers: BreakerRegistry,
        *,
        interval: float,
        errors: ErrorManager | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.db = db
        self.node = node
        self.breakers = breakers
        self.interval = interval
        self.errors = errors
        self._clock = clock
        self.beats = 0
        self.failures = 0
        self.resets_applied = 0
        self.last_beat_at: datetime | None = None
        self._failing = False

    @property
    def stale_after(self) -> timedelta:
        return timedelta(seconds=self.interval * STALE_AFTER_BEATS)

    # -- the heartbeat -----------------------------------------------------------------------

    def beat(self) -> list[str]:
        """One heartbeat: apply the resets asked of this node, store its row, forget nodes
        long silent. The breakers reset."""
        now = self._clock()
        name = self.node.name
        with self.db.write("cluster.heartbeat") as conn:
            applied = self._apply(take_breaker_resets(conn, name))
            upsert_node(conn, self._row(now))
            forgotten = forget_silent_nodes(conn, now - FORGET_AFTER)
        self.beats += 1
        self.last_beat_at = now
        self.resets_applied += len(applied)
        if forgotten:
            log.info("silent nodes forgotten", nodes=forgotten, silent_for=str(FORGET_AFTER))
        return applied

    def _apply(self, asked: Sequence[str]) -> list[str]:
        applied: list[str] = []
        for breaker in dict.fromkeys(asked):  # asked twice before one beat: one reset
            if self.breakers.reset(breaker):
                applied.append(breaker)
                log.info("circuit breaker reset at another node's request", breaker=breaker)
            else:
                log.warning("reset asked for a breaker this node does not have", breaker=breaker)
        return applied

    def _row(self, now: datetime) -> NodeRow:
        node = self.node
        return NodeRow(
            node=node.name,
            role=node.role.value,
            host=node.host,
            pid=node.pid,
            started_at=node.started_at,
            heartbeat_at=now,
            breakers=[s.as_dict() for s in self.breakers.snapshots()],
        )

    def leave(self) -> None:
        """Remove this node's row: it stopped in order."""
        with self.db.write("cluster.leave") as conn:
            remove_node(conn, self.node.name)

    async def run(self, stop: asyncio.Event) -> None:
        """Beat now and every ``interval`` seconds until ``stop`` is set; then leave."""
        try:
            while not stop.is_set():
                await asyncio.to_thread(self._beat_surviving)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.interval)
        finally:
            try:
                await asyncio.to_thread(self.leave)
            except Exception as exc:
                # Not fatal: the row goes stale, and is forgotten in time.
                log.warning("node row not removed", error=_describe(exc))

    def _beat_surviving(self) -> None:
        try:
            self.beat()
        except Exception as exc:  # the database is down or refuses: try again next interval
            self.failures += 1
            if not self._failing:
                self._failing = True
                log.warning("node heartbeat failed; retrying every interval", error=_describe(exc))
                if self.errors is not None:
                    self.errors.record(exc, service="cluster", operation="heartbeat")
            return
        if self._failing:
            self._failing = False
            log.info("node heartbeat stored again")

    # -- what every node sees ----------------------------------------------------------------

    def view(self) -> ClusterView:
        """Every registered node, this one with its live breakers; never raises: without the
        table, this node alone (``complete`` False)."""
        try:
            with self.db.read("cluster.nodes") as conn:
                rows = list_nodes(conn)
        except Exception as exc:
            log.warning("cluster nodes not read", error=_describe(exc))
            return ClusterView([self._local(None)], complete=False)
        nodes: list[NodeState] = []
        seen_local = False
        for row in rows:
            if row.node == self.node.name:
                nodes.append(self._local(row.heartbeat_at))
                seen_local = True
            else:
                nodes.append(self._state(row))
        if not seen_local:
            nodes.append(self._local(None))
            nodes.sort(key=lambda n: n.name)
        return ClusterView(nodes, complete=True)

    def _local(self, heartbeat_at: datetime | None) -> NodeState:
        node = self.node
        return NodeState(
            name=node.name,
            role=node.role.value,
            host=node.host,
            pid=node.pid,
            started_at=node.started_at,
            heartbeat_at=heartbeat_at,
            stale=heartbeat_at is not None and self._is_stale(heartbeat_at),
            local=True,
            breakers=self.breakers.snapshots(),
        )

    def _state(self, row: NodeRow) -> NodeState:
        return NodeState(
            name=row.node,
            role=row.role,
            host=row.host,
            pid=row.pid,
            started_at=row.started_at,
            heartbeat_at=row.heartbeat_at,
            stale=self._is_stale(row.heartbeat_at),
            local=False,
            breakers=_reported(row.node, row.breakers),
        )

    def _is_stale(self, heartbeat_at: datetime) -> bool:
        return self._clock() - heartbeat_at > self.stale_after

    def reset(self, node: str, breaker: str) -> ResetOutcome:
        """Close ``breaker`` of ``node``: here and now if it is this node's, else ask its
        owner (a ``breaker_resets`` row it applies on its next heartbeat). Raises
        ``UnknownNode`` or ``UnknownBreaker``."""
        if node == self.node.name:
            found = self.breakers.get(breaker)
            if found is None:
                raise UnknownBreaker(node, breaker)
            found.reset()
            return ResetOutcome(self._local(self.last_beat_at), found.snapshot(), True)
        with self.db.write("cluster.breaker_reset") as conn:
            row = next((r for r in list_nodes(conn) if r.node == node), None)
            if row is None:
                raise UnknownNode(node)
            state = self._state(row)
            reported = next((b for b in state.breakers if b.name == breaker), None)
            if reported is None:
                raise UnknownBreaker(node, breaker)
            request_breaker_reset(conn, node, breaker, self._clock())
        log.info("circuit breaker reset asked of its node", node=node, breaker=breaker)
        return ResetOutcome(state, reported, False)


def _reported(node: str, entries: list[dict[str, Any]] | None) -> list[BreakerSnapshot]:
    """The breakers a node stored; an entry this version cannot read is left out, logged."""
    found: list[BreakerSnapshot] = []
    for entry in entries or []:
        try:
            found.append(BreakerSnapshot.from_dict(entry))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("a breaker another node reported is left out", node=node, error=str(exc))
    return found


def _describe(exc: BaseException) -> str:
    return scrub_text(f"{type(exc).__name__}: {exc}")[:500]
