"""The cluster's tables: who leads with which fencing epoch, which nodes run, breaker resets.

Only SQL lives here; the election loop that holds the lock is ``cluster.leadership``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from vatsim_collector.errors.exceptions import Category, CollectorError, Severity
from vatsim_collector.store import schema as t

_ROW = 1  # cluster_leadership holds one row


@dataclass(frozen=True)
class Leadership:
    epoch: int
    leader_node: str | None
    elected_at: datetime | None


class FencedOut(CollectorError):
    """The leadership epoch moved on: this node no longer leads and must not commit.

    Not an outage (the database answered) and not the data's fault: the snapshot is the new
    leader's to store."""

    category = Category.DATABASE
    severity = Severity.MEDIUM

    def __init__(self, mine: int, current: int) -> None:
        super().__init__(f"fenced out: elected with epoch {mine}, the current epoch is {current}")
        self.mine = mine
        self.current = current


def read_leadership(conn: Connection) -> Leadership:
    row = conn.execute(
        select(
            t.cluster_leadership.c.epoch,
            t.cluster_leadership.c.leader_node,
            t.cluster_leadership.c.elected_at,
        ).where(t.cluster_leadership.c.id == _ROW)
    ).one()
    return Leadership(int(row.epoch), row.leader_node, row.elected_at)


def claim_leadership(
    conn: Connection, node: str, now: datetime, *, wait_seconds: float | None = None
) -> int:
    """Move the epoch on and name ``node`` the leader; the new epoch.

    Waits for every open transaction that checked the old epoch (they hold the row FOR
    SHARE), so each of them has committed or rolled back before the new leader writes. On
    PostgreSQL, ``wait_seconds`` bounds that wait (the statement then fails with SQLSTATE
    55P03, and ``end_fenced_transactions`` ends what blocked it)."""
    if wait_seconds is not None and conn.dialect.name == "postgresql":
        conn.execute(text(f"SET LOCAL lock_timeout = {max(1, int(wait_seconds * 1000))}"))
    c = t.cluster_leadership.c
    epoch = conn.execute(
        update(t.cluster_leadership)
        .where(c.id == _ROW)
        .values(epoch=c.epoch + 1, leader_node=node, elected_at=now)
        .returning(c.epoch)
    ).scalar_one()
    return int(epoch)


def end_fenced_transactions(conn: Connection) -> int:
    """Terminate the sessions whose open transaction checked the epoch (an ex-leader frozen
    in the middle of a snapshot, which would block the new leader's claim until it woke up);
    how many. Only for a node that holds the leader lock: everyone else is fenced."""
    if conn.dialect.name != "postgresql":
        return 0
    return len(
        conn.execute(
            text(
                "SELECT pg_terminate_backend(l.pid) FROM pg_locks l"
                " WHERE l.relation = 'cluster_leadership'::regclass"
                " AND l.mode = 'RowShareLock' AND l.granted AND l.pid <> pg_backend_pid()"
            )
        ).all()
    )


def is_claim_timeout(exc: BaseException) -> bool:
    """Whether a claim failed because its ``wait_seconds`` ran out (SQLSTATE 55P03)."""
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) == "55P03"


def release_leadership(conn: Connection, node: str, epoch: int) -> None:
    """A leader stepping down in order: no leader named until the next one is elected."""
    c = t.cluster_leadership.c
    conn.execute(
        update(t.cluster_leadership)
        .where(c.id == _ROW, c.epoch == epoch, c.leader_node == node)
        .values(leader_node=None)
    )


def check_epoch(conn: Connection, epoch: int) -> None:
    """Raise ``FencedOut`` unless ``epoch`` is still current; first in a snapshot transaction.

    On PostgreSQL the row is read FOR SHARE and stays locked until this transaction ends, so
    no new leader can be elected between this check and the commit."""
    stmt = select(t.cluster_leadership.c.epoch).where(t.cluster_leadership.c.id == _ROW)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(read=True)
    current = int(conn.execute(stmt).scalar_one())
    if current != epoch:
        raise FencedOut(epoch, current)


@dataclass(frozen=True)
class NodeRow:
    node: str
    role: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    # Breaker snapshots as the node reported them (``BreakerSnapshot.as_dict`` each).
    breakers: list[dict[str, Any]] | None = None


def upsert_node(conn: Connection, row: NodeRow) -> None:
    values = {
        "node": row.node,
        "role": row.role,
        "host": row.host,
        "pid": row.pid,
        "started_at": row.started_at,
        "heartbeat_at": row.heartbeat_at,
        "breakers": None if row.breakers is None else json.dumps(row.breakers, default=str),
    }
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = dialect_insert(t.cluster_nodes).values(values)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["node"], set_={k: v for k, v in values.items() if k != "node"}
        )
    )


def remove_node(conn: Connection, node: str) -> None:
    conn.execute(delete(t.cluster_nodes).where(t.cluster_nodes.c.node == node))


def list_nodes(conn: Connection) -> list[NodeRow]:
    n = t.cluster_nodes.c
    rows = conn.execute(
        select(n.node, n.role, n.host, n.pid, n.started_at, n.heartbeat_at, n.breakers).order_by(
            n.node
        )
    ).all()
    return [
        NodeRow(
            r.node,
            r.role,
            r.host,
            int(r.pid),
            r.started_at,
            r.heartbeat_at,
            None if r.breakers is None else json.loads(r.breakers),
        )
        for r in rows
    ]


def request_breaker_reset(conn: Connection, node: str, breaker: str, now: datetime) -> None:
    conn.execute(insert(t.breaker_resets).values(node=node, breaker=breaker, requested_at=now))


def take_breaker_resets(conn: Connection, node: str) -> Sequence[str]:
    """The breakers other nodes asked ``node`` to reset, removed as they are taken."""
    r = t.breaker_resets.c
    rows = conn.execute(select(r.id, r.breaker).where(r.node == node).order_by(r.id)).all()
    if rows:
        conn.execute(delete(t.breaker_resets).where(r.id.in_([row.id for row in rows])))
    return [row.breaker for row in rows]


def newest_accepted_at(conn: Connection) -> datetime | None:
    """The update timestamp of the newest snapshot stored: what a standby's gap fill must
    start after."""
    s = t.snapshots.c
    return conn.execute(
        select(s.update_timestamp)
        .where(s.status == "accepted")
        .order_by(s.update_timestamp.desc())
        .limit(1)
    ).scalar_one_or_none()


def forget_silent_nodes(conn: Connection, before: datetime) -> list[str]:
    """Remove the nodes whose last heartbeat is older than ``before``, and the breaker resets
    still waiting for them; the names removed."""
    n = t.cluster_nodes.c
    gone = [
        str(name) for name in conn.execute(select(n.node).where(n.heartbeat_at < before)).scalars()
    ]
    if gone:
        # The heartbeat again: a node that beat meanwhile stays.
        conn.execute(delete(t.cluster_nodes).where(n.node.in_(gone), n.heartbeat_at < before))
        conn.execute(delete(t.breaker_resets).where(t.breaker_resets.c.node.in_(gone)))
    return gone
