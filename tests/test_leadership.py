"""Issue 12, deliverable 1: one leader per database, fenced by an epoch.

In-process electors on the real database; the multi-process failover tests are in
tests/test_failover.py.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from vatsim_collector.cluster.leadership import Elector
from vatsim_collector.cluster.node import Node, Role
from vatsim_collector.config import load_settings
from vatsim_collector.store import cluster as sql
from vatsim_collector.store.cluster import FencedOut
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.leader_lock import DatabaseInUse, LeaderLock, SqliteFileLock

LEASE = 1.0


def postgresql_only(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("leadership among several nodes needs PostgreSQL (SQLite takes one process)")


def elector(engine: Engine, name: str, lease: float = LEASE) -> Elector:
    db = DatabaseService.for_engine(engine)
    return Elector(
        db, Node(name, Role.STANDBY), LeaderLock(engine, lease_seconds=lease), lease_seconds=lease
    )


def tick(e: Elector) -> None:
    asyncio.run(e._tick())


def leadership(engine: Engine) -> sql.Leadership:
    with engine.connect() as conn:
        return sql.read_leadership(conn)


def wait_for(predicate: object, timeout: float) -> bool:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())


def test_one_node_leads_and_the_other_stands_by(engine: Engine) -> None:
    postgresql_only(engine)
    a, b = elector(engine, "a"), elector(engine, "b")
    try:
        tick(a)
        tick(b)
        assert (a.node.role, b.node.role) == (Role.LEADER, Role.STANDBY)
        assert a.epoch == 1
        assert b.epoch is None
        assert leadership(engine).leader_node == "a"
        # The standby looked at the cluster instead: who leads, what is stored.
        assert b.last_observation is not None
        assert b.last_observation.leader == "a"
        with engine.begin() as conn:
            assert a.fence(conn) == 1
        with engine.begin() as conn, pytest.raises(FencedOut):
            b.fence(conn)
    finally:
        for e in (a, b):
            asyncio.run(e._resign())


def test_a_leader_that_stops_answering_loses_the_lock_and_is_fenced_out(engine: Engine) -> None:
    """A leader that does not tick (a frozen process) loses its lock session after one lease;
    the standby takes over with a new epoch, and the old leader's next commit is refused."""
    postgresql_only(engine)
    a, b = elector(engine, "a"), elector(engine, "b")
    try:
        tick(a)
        assert a.epoch == 1
        tick(b)
        assert b.epoch is None  # the lock is held
        # a stays silent: PostgreSQL ends its lock session after the lease.
        assert wait_for(lambda: (tick(b), b.epoch is not None)[1], timeout=LEASE * 10)
        assert b.epoch == 2
        assert leadership(engine).leader_node == "b"
        with engine.begin() as conn, pytest.raises(FencedOut, match=r"epoch 1.*epoch is 2"):
            a.fence(conn)
        assert a.counters.fenced == 1
        # a notices at its next tick and stands by.
        tick(a)
        assert a.node.role is Role.STANDBY
        assert a.epoch is None
    finally:
        for e in (a, b):
            asyncio.run(e._resign())


def test_an_ex_leader_frozen_inside_a_snapshot_transaction_cannot_block_or_commit(
    engine: Engine,
) -> None:
    """The old leader checked its epoch and froze before committing: its transaction holds
    the leadership row. The new leader does not wait for it forever: it ends that session,
    and the frozen transaction can never commit."""
    postgresql_only(engine)
    a, b = elector(engine, "a"), elector(engine, "b")
    frozen = engine.connect()
    try:
        tick(a)
        frozen.begin()
        assert a.fence(frozen) == 1
        frozen.execute(text("CREATE TEMP TABLE written_by_a (x int)"))
        started = time.monotonic()
        assert wait_for(lambda: (tick(b), b.epoch is not None)[1], timeout=LEASE * 20)
        assert b.epoch == 2
        # Lease for the lock, a lease of waiting, then the session is ended: bounded.
        assert time.monotonic() - started < LEASE * 15
        with pytest.raises(DBAPIError):
            frozen.commit()
    finally:
        frozen.invalidate()
        frozen.close()
        for e in (a, b):
            asyncio.run(e._resign())


def test_a_leader_stopping_in_order_hands_over_at_once(engine: Engine) -> None:
    postgresql_only(engine)
    a, b = elector(engine, "a"), elector(engine, "b")
    try:
        tick(a)
        asyncio.run(a._resign())
        assert leadership(engine).leader_node is None
        tick(b)
        assert b.epoch == 2
        assert leadership(engine).leader_node == "b"
    finally:
        for e in (a, b):
            asyncio.run(e._resign())


def test_a_second_collector_on_one_sqlite_file_is_refused(tmp_path: Path) -> None:
    database = tmp_path / "one.db"
    first = SqliteFileLock(database)
    first.acquire()
    try:
        with pytest.raises(DatabaseInUse, match=r"another collector \(pid \d+\).*one\.db"):
            SqliteFileLock(database).acquire()
    finally:
        first.release()
    # Released: the next one may start.
    again = SqliteFileLock(database)
    again.acquire()
    again.release()


def test_run_refuses_a_sqlite_file_another_collector_runs_on(tmp_path: Path) -> None:
    """The command, end to end: a clear message and exit status 2, nothing migrated."""
    database = tmp_path / "busy.db"
    holder = SqliteFileLock(database)
    holder.acquire()
    try:
        settings = load_settings(database_url=f"sqlite:///{database}")
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "vatsim_collector",
                "run",
                "--database-url",
                settings.database_url,
                "--port",
                "0",
                "--status-url",
                "http://127.0.0.1:9/x",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        holder.release()
    assert result.returncode == 2, result.stderr
    assert "another collector" in result.stderr
    assert "busy.db" in result.stderr
    assert not database.exists()  # refused before the migrations touched it
