"""Issue 12, acceptance: a hot standby takes over with nothing lost, nothing split, nothing
written twice, and a frozen ex-leader commits nothing.

Two ``vatsim-collector run`` processes share one PostgreSQL database and poll the project's
simulator over real HTTP. The test ticks the simulator itself and keeps every document it
served, so a single uninterrupted in-process run over the same documents is the reference.
PostgreSQL only: one SQLite file takes one collector.
"""

from __future__ import annotations

import random
import signal
import statistics
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import Engine, func, select

from cluster_nodes import TICK, Feed, NodeProcess, NodeSet, Ticker, simulated_feed, wait_until
from vatsim_collector.config import load_settings
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor
from vatsim_collector.store import cluster as sql
from vatsim_collector.store import schema as t
from vatsim_collector.store.engine import create_db_engine
from vatsim_collector.store.migrate import upgrade

POLL = 0.2
LEASE = 2.0
NODE_ENV = {"VATSIM_LEADER_LEASE_SECONDS": str(LEASE), "VATSIM_FEED_CADENCE_SECONDS": "15"}


@pytest.fixture
def feed() -> Iterator[Feed]:
    with simulated_feed(seed=12) as sim:
        yield sim


def node(nodes: NodeSet, name: str, database_url: str, feed: Feed, tmp_path: Path) -> NodeProcess:
    return nodes.add(NodeProcess(name, database_url, feed.status_url, tmp_path, POLL, NODE_ENV))


def leadership(engine: Engine) -> sql.Leadership:
    with engine.connect() as conn:
        return sql.read_leadership(conn)


def stored(engine: Engine) -> list[datetime]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(t.snapshots.c.update_timestamp)
                .where(t.snapshots.c.status == "accepted")
                .order_by(t.snapshots.c.update_timestamp)
            ).scalars()
        )


def finish(feed: Feed, engine: Engine) -> None:
    """Three more ticks, then wait until the last is stored."""
    last = None
    for _ in range(3):
        last = feed.tick()
        time.sleep(TICK)
    assert wait_until(lambda: last in stored(engine), timeout=60), "the last tick was not stored"


def reference(feed: Feed, first: datetime, tmp_path: Path) -> Engine:
    """One uninterrupted run over the same documents, in order, from the first stored one."""
    engine = create_db_engine(f"sqlite:///{tmp_path}/reference.db")
    upgrade(engine)
    ingestor = Ingestor(engine, IngestConfig.from_settings(load_settings(sanity_min_pilots=1)))
    ingestor.restore()
    for stamp in sorted(s for s in feed.served if s >= first):
        data, transceivers = feed.served[stamp]
        result = ingestor.ingest(data, transceivers_raw=transceivers)
        assert result.outcome.value == "ingested", result
    return engine


def history(engine: Engine) -> dict[str, Any]:
    """Sessions, flights and positions per session, by natural keys (ids differ)."""
    p, f, pos = t.pilot_sessions, t.flights, t.positions
    with engine.connect() as conn:
        sessions = set(
            conn.execute(
                select(
                    p.c.cid,
                    p.c.callsign,
                    p.c.logon_time,
                    p.c.first_seen_at,
                    p.c.last_seen_at,
                    p.c.ended_at,
                )
            ).all()
        )
        flights = set(
            conn.execute(
                select(
                    f.c.cid, f.c.callsign, f.c.started_at, f.c.ended_at, f.c.departure, f.c.arrival
                )
            ).all()
        )
        positions = dict(
            ((row.cid, row.callsign, row.logon_time), row.n)
            for row in conn.execute(
                select(p.c.cid, p.c.callsign, p.c.logon_time, func.count().label("n"))
                .join(pos, pos.c.pilot_session_id == p.c.id)
                .group_by(p.c.cid, p.c.callsign, p.c.logon_time)
            )
        )
        controllers = set(
            conn.execute(
                select(
                    t.controller_sessions.c.cid,
                    t.controller_sessions.c.callsign,
                    t.controller_sessions.c.logon_time,
                    t.controller_sessions.c.ended_at,
                )
            ).all()
        )
    return {
        "sessions": sessions,
        "flights": flights,
        "positions": positions,
        "controllers": controllers,
    }


def assert_same_history(engine: Engine, feed: Feed, tmp_path: Path) -> None:
    times = stored(engine)
    assert len(times) == len(set(times))
    # Every document served from the first stored one on is stored: none lost.
    assert times == sorted(s for s in feed.served if s >= times[0])
    ref = reference(feed, times[0], tmp_path)
    try:
        mine, theirs = history(engine), history(ref)
        for key in ("sessions", "flights", "positions", "controllers"):
            assert mine[key] == theirs[key], key
    finally:
        ref.dispose()


@pytest.mark.slow
def test_kill_9_the_leader_ten_times_loses_nothing_and_splits_nothing(
    postgresql: Engine, database_url: str, feed: Feed, nodes: NodeSet, tmp_path: Path
) -> None:
    a = node(nodes, "a", database_url, feed, tmp_path)
    a.start()
    a.wait_up()
    assert wait_until(lambda: leadership(postgresql).leader_node == "a", timeout=30)
    b = node(nodes, "b", database_url, feed, tmp_path)
    b.start()
    b.wait_up()
    chance = random.Random(2026)
    takeovers: list[float] = []
    with Ticker(feed):
        for _ in range(10):
            time.sleep(chance.uniform(1.0, 3.0))  # a random moment of the leader's work
            before = leadership(postgresql)
            leader = nodes.nodes[str(before.leader_node)]
            killed_at = time.monotonic()
            leader.kill9()
            assert wait_until(
                lambda epoch=before.epoch: leadership(postgresql).epoch > epoch,  # type: ignore[misc]
                timeout=30,
                interval=0.02,
            ), "no standby took over"
            takeovers.append(time.monotonic() - killed_at)
            leader.start()
            leader.wait_up()
    finish(feed, postgresql)
    assert_same_history(postgresql, feed, tmp_path)
    for n in nodes.nodes.values():
        # uvicorn re-raises the SIGTERM it handled once shutdown is complete.
        assert n.stop() in (0, -signal.SIGTERM)
        assert "collector stopped" in n.output()
    print(
        f"takeover after kill -9: p50 {statistics.median(takeovers):.2f} s,"
        f" max {max(takeovers):.2f} s over {len(takeovers)} kills"
    )


@pytest.mark.slow
def test_a_frozen_leader_commits_nothing_after_the_takeover_and_the_gap_is_filled(
    postgresql: Engine, database_url: str, feed: Feed, nodes: NodeSet, tmp_path: Path
) -> None:
    a = node(nodes, "a", database_url, feed, tmp_path)
    a.start()
    a.wait_up()
    assert wait_until(lambda: leadership(postgresql).leader_node == "a", timeout=30)
    b = node(nodes, "b", database_url, feed, tmp_path)
    b.start()
    b.wait_up()
    for _ in range(3):
        feed.tick()
        time.sleep(TICK)
    epoch_a = leadership(postgresql).epoch
    a.signal(signal.SIGSTOP)
    try:
        # Ticks while a is frozen: only b fetches them.
        frozen_ticks = [feed.tick()]
        for _ in range(int(3 * LEASE / TICK) + 1):
            time.sleep(TICK)
            frozen_ticks.append(feed.tick())
        assert wait_until(lambda: leadership(postgresql).leader_node == "b", timeout=30)
        by_a_at_takeover = a_epoch_rows(postgresql, epoch_a)
        assert wait_until(lambda: set(frozen_ticks) <= set(stored(postgresql)), timeout=30)
    finally:
        a.signal(signal.SIGCONT)
    finish(feed, postgresql)
    time.sleep(3 * POLL + LEASE)
    # a woke up as an ex-leader: nothing more carries its epoch.
    assert a_epoch_rows(postgresql, epoch_a) == by_a_at_takeover
    assert leadership(postgresql).leader_node == "b"
    assert a.alive()
    # b stored what a never did: the ticks of the freeze, from its own fetches.
    gaps = [e.get("gap", 0) for e in b.log_events("taking over")]
    assert gaps
    assert max(gaps) >= 1
    assert metric(b, "vatsim_gap_fill_snapshots_total") >= 1
    assert metric(b, "vatsim_leader") == 1
    # a found out (its next commit was refused, or its lock session was gone) and stood by.
    assert wait_until(lambda: metric(a, "vatsim_leader") == 0, timeout=30)
    assert metric(a, "vatsim_leader_demotions_total") >= 1
    assert_same_history(postgresql, feed, tmp_path)


def metric(n: NodeProcess, name: str) -> float:
    body = httpx2.get(f"{n.url}/metrics", timeout=10).text
    values = [float(line.split()[-1]) for line in body.splitlines() if line.startswith(name + " ")]
    assert values, f"{name} not on /metrics of {n.name}"
    return values[0]


def a_epoch_rows(engine: Engine, epoch: int) -> set[int]:
    with engine.connect() as conn:
        return set(
            conn.execute(
                select(t.snapshots.c.id).where(t.snapshots.c.leader_epoch == epoch)
            ).scalars()
        )
