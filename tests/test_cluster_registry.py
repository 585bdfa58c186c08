"""The node registry (cluster/registry.py) on a real database, SQLite or PostgreSQL: heartbeats,
stale nodes, breaker states of every node, resets that reach the owner, error records that
name their node and analytics across nodes -- directly and through the API of two nodes.

Several registries and apps in one process stand for several nodes here; tests/
test_multinode_errors.py runs real `vatsim-collector run` processes on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, func, select

from feeds import SMALL
from vatsim_collector.api import create_app
from vatsim_collector.api.context import ErrorLayer
from vatsim_collector.cluster.node import Node, Role
from vatsim_collector.cluster.registry import (
    FORGET_AFTER,
    NodeRegistry,
    UnknownBreaker,
    UnknownNode,
)
from vatsim_collector.errors.breaker import BreakerConfig, BreakerSnapshot, BreakerState
from vatsim_collector.errors.manager import ErrorManager
from vatsim_collector.errors.registry import BreakerRegistry
from vatsim_collector.feed.client import FeedConnectionError, FeedTimeout
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor
from vatsim_collector.store import schema as t
from vatsim_collector.store.cluster import NodeRow, list_nodes, upsert_node
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.error_records import ErrorRecordStore
from vatsim_collector.store.migrate import upgrade

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
INTERVAL = 5.0
KEY = "cluster-admin-key"
ADMIN = {"X-API-Key": KEY}


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def open_breakers() -> BreakerRegistry:
    """Breakers as a collector has them, feed.status opened by a refused connection; their
    clocks stand still, so snapshots compare equal and the cooldown never ends."""
    breakers = BreakerRegistry(
        BreakerConfig(failure_threshold=1, cooldown=3600),
        clock=lambda: 1000.0,
        wall_clock=lambda: T0,
    )
    breakers.get_or_create("database")
    status = breakers.get_or_create("feed.status")
    probe = status.before_call()
    status.on_failure(FeedConnectionError("connection refused"), probe=probe)
    assert status.state is BreakerState.OPEN
    return breakers


@dataclass
class Member:
    node: Node
    breakers: BreakerRegistry
    registry: NodeRegistry
    errors: ErrorManager


def member(db: DatabaseService, name: str, clock: Clock, role: Role = Role.LEADER) -> Member:
    node = Node(name, role, started_at=clock.now)
    breakers = open_breakers()
    errors = ErrorManager(ErrorRecordStore(db), clock=clock, node=name)
    registry = NodeRegistry(db, node, breakers, interval=INTERVAL, errors=errors, clock=clock)
    return Member(node, breakers, registry, errors)


@pytest.fixture
def db(engine: Engine) -> DatabaseService:
    return DatabaseService.for_engine(engine)


def rows(db: DatabaseService) -> dict[str, NodeRow]:
    with db.read("test.nodes") as conn:
        return {row.node: row for row in list_nodes(conn)}


def pending_resets(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t.breaker_resets)).scalar_one())


# -- the heartbeat -------------------------------------------------------------------------


def test_a_heartbeat_stores_the_node_its_role_and_its_breakers(db: DatabaseService) -> None:
    clock = Clock()
    a = member(db, "node-a", clock, Role.STANDBY)
    assert a.registry.beat() == []
    row = rows(db)["node-a"]
    assert (row.role, row.host, row.pid) == ("standby", a.node.host, a.node.pid)
    assert (row.started_at, row.heartbeat_at) == (T0, T0)
    assert row.breakers is not None
    stored = {b["name"]: BreakerSnapshot.from_dict(b) for b in row.breakers}
    assert stored == {s.name: s for s in a.breakers.snapshots()}
    assert stored["feed.status"].state is BreakerState.OPEN

    # The elector changes the role in place: the next beat says so.
    a.node.role = Role.LEADER
    clock.now += timedelta(seconds=INTERVAL)
    a.registry.beat()
    row = rows(db)["node-a"]
    assert (row.role, row.heartbeat_at) == ("leader", clock.now)
    assert a.registry.beats == 2


def test_a_node_three_intervals_silent_is_stale(db: DatabaseService) -> None:
    clock_a, clock_b = Clock(), Clock()
    a = member(db, "node-a", clock_a)
    b = member(db, "node-b", clock_b)
    a.registry.beat()
    b.registry.beat()
    clock_b.now = T0 + timedelta(seconds=3 * INTERVAL)
    view = b.registry.view()
    assert view.complete
    assert [(n.name, n.local, n.stale) for n in view.nodes] == [
        ("node-a", False, False),
        ("node-b", True, False),
    ]
    clock_b.now += timedelta(milliseconds=1)
    by_name = {n.name: n for n in b.registry.view().nodes}
    assert by_name["node-a"].stale
    assert by_name["node-a"].heartbeat_at == T0
    # A's breakers as A reported them; B's own read live.
    assert {s.name for s in by_name["node-a"].breakers} == {"database", "feed.status"}
    b.breakers.get_or_create("late")
    own = next(n for n in b.registry.view().nodes if n.local)
    assert "late" in {s.name for s in own.breakers}, "this node's breakers are read live"


def test_this_node_is_listed_before_its_first_heartbeat(db: DatabaseService) -> None:
    a = member(db, "node-a", Clock())
    view = a.registry.view()
    assert [(n.name, n.local, n.heartbeat_at, n.stale) for n in view.nodes] == [
        ("node-a", True, None, False)
    ]
    assert rows(db) == {}


def test_a_clean_stop_removes_the_row(db: DatabaseService) -> None:
    clock = Clock()
    a, b = member(db, "node-a", clock), member(db, "node-b", clock)
    a.registry.beat()
    b.registry.beat()
    a.registry.leave()
    assert set(rows(db)) == {"node-b"}


def test_a_long_silent_node_and_its_pending_resets_are_forgotten(
    db: DatabaseService, engine: Engine
) -> None:
    clock = Clock()
    a, b = member(db, "node-a", clock), member(db, "node-b", clock)
    a.registry.beat()
    b.registry.beat()
    b.registry.reset("node-a", "feed.status")
    assert pending_resets(engine) == 1
    clock.now += FORGET_AFTER
    b.registry.beat()
    assert set(rows(db)) == {"node-a", "node-b"}, "silent exactly FORGET_AFTER: still kept"
    clock.now += timedelta(seconds=1)
    b.registry.beat()
    assert set(rows(db)) == {"node-b"}
    assert pending_resets(engine) == 0
    with pytest.raises(UnknownNode):
        b.registry.reset("node-a", "feed.status")


def test_a_breaker_entry_this_version_cannot_read_is_left_out(db: DatabaseService) -> None:
    clock = Clock()
    b = member(db, "node-b", clock)
    good = b.breakers.snapshots()[0].as_dict()
    with db.write("test.odd_node") as conn:
        upsert_node(
            conn,
            NodeRow(
                "odd",
                "worker",
                "h",
                1,
                T0,
                T0,
                [good, {"name": "x", "state": "melted"}, {"state": "open"}, "text"],  # type: ignore[list-item]
            ),
        )
    odd = next(n for n in b.registry.view().nodes if n.name == "odd")
    assert [s.name for s in odd.breakers] == [good["name"]]


# -- resets that reach the owner ------------------------------------------------------------


def test_a_reset_asked_on_one_node_is_applied_by_the_owner_on_its_next_beat(
    db: DatabaseService, engine: Engine
) -> None:
    clock = Clock()
    a, b = member(db, "node-a", clock), member(db, "node-b", clock)
    a.registry.beat()
    b.registry.beat()
    owned = b.breakers.get("feed.status")
    assert owned is not None

    outcome = a.registry.reset("node-b", "feed.status")
    assert not outcome.applied
    assert (outcome.node.name, outcome.breaker.name) == ("node-b", "feed.status")
    assert outcome.breaker.state is BreakerState.OPEN, "the state B last reported"
    assert owned.state is BreakerState.OPEN, "nothing happens to B before its beat"
    a_own = a.breakers.get("feed.status")
    assert a_own is not None
    assert a_own.state is BreakerState.OPEN, "A's breaker of the same name is not B's"
    # Asked twice before B beats: closed once.
    a.registry.reset("node-b", "feed.status")
    assert pending_resets(engine) == 2

    assert b.registry.beat() == ["feed.status"]
    assert owned.state is BreakerState.CLOSED
    assert owned.snapshot().resets == 1
    assert b.registry.resets_applied == 1
    assert pending_resets(engine) == 0
    seen_from_a = next(n for n in a.registry.view().nodes if n.name == "node-b")
    shown = {s.name: s for s in seen_from_a.breakers}["feed.status"]
    assert (shown.state, shown.resets) == (BreakerState.CLOSED, 1)
    assert b.registry.beat() == [], "a request is applied once"
    assert owned.snapshot().resets == 1


def test_a_reset_of_this_nodes_breaker_is_applied_at_once(
    db: DatabaseService, engine: Engine
) -> None:
    a = member(db, "node-a", Clock())
    outcome = a.registry.reset("node-a", "feed.status")
    assert outcome.applied
    assert (outcome.breaker.state, outcome.breaker.resets) == (BreakerState.CLOSED, 1)
    assert pending_resets(engine) == 0


def test_unknown_nodes_and_breakers_are_refused_and_nothing_is_asked(
    db: DatabaseService, engine: Engine
) -> None:
    clock = Clock()
    a, b = member(db, "node-a", clock), member(db, "node-b", clock)
    a.registry.beat()
    b.registry.beat()
    with pytest.raises(UnknownNode, match="nobody"):
        a.registry.reset("nobody", "feed.status")
    with pytest.raises(UnknownBreaker, match=r"feed\.data"):
        a.registry.reset("node-b", "feed.data")
    with pytest.raises(UnknownBreaker):
        a.registry.reset("node-a", "feed.data")
    assert pending_resets(engine) == 0


# -- the heartbeat task --------------------------------------------------------------------


async def wait_for(check: Any, seconds: float = 10.0) -> bool:
    """Whether ``check`` came true within ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not check():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def test_the_heartbeat_task_beats_applies_resets_and_leaves(
    db: DatabaseService, engine: Engine
) -> None:
    node = Node("node-a", Role.LEADER)
    breakers = open_breakers()
    registry = NodeRegistry(db, node, breakers, interval=0.05)
    asker = member(db, "node-b", Clock(datetime.now(UTC)))
    stop = asyncio.Event()
    task = asyncio.create_task(registry.run(stop))
    try:
        assert await wait_for(lambda: "node-a" in rows(db))
        await asyncio.to_thread(asker.registry.reset, "node-a", "feed.status")
        owned = breakers.get("feed.status")
        assert owned is not None
        assert await wait_for(lambda: owned.state is BreakerState.CLOSED)
        assert owned.snapshot().resets == 1
        node.role = Role.STANDBY
        assert await wait_for(lambda: rows(db)["node-a"].role == "standby")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
    assert "node-a" not in rows(db)
    assert registry.beats >= 3
    assert pending_resets(engine) == 0


async def test_the_heartbeat_survives_a_missing_database_and_records_it_once(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "not-yet"
    engine = create_engine(f"sqlite:///{folder}/cluster.db")
    db = DatabaseService.for_engine(engine)
    errors = ErrorManager(None, node="node-a")
    registry = NodeRegistry(
        db, Node("node-a", Role.LEADER), open_breakers(), interval=0.02, errors=errors
    )
    stop = asyncio.Event()
    task = asyncio.create_task(registry.run(stop))
    try:
        assert await wait_for(lambda: registry.failures >= 3)
        assert registry.beats == 0
        recorded = errors.recent(10)
        assert [(r.service, r.operation, r.category.value, r.node) for r in recorded] == [
            ("cluster", "heartbeat", "database", "node-a")
        ], "one record per outage, not one per beat"
        folder.mkdir()
        upgrade(engine)
        assert await wait_for(lambda: registry.beats >= 1)
        assert "node-a" in rows(db)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        engine.dispose()


# -- error records name their node; analytics across nodes ---------------------------------


def test_records_name_their_node_and_analytics_cover_every_node(
    db: DatabaseService, engine: Engine
) -> None:
    clock = Clock()
    a, b = member(db, "node-a", clock), member(db, "node-b", clock)
    for _ in range(3):
        a.errors.record(FeedTimeout("feed.test: timed out"), service="feed", operation="fetch")
    b.errors.record(FeedTimeout("feed.test: timed out"), service="feed", operation="fetch")
    assert a.errors.flush() == 3
    assert b.errors.flush() == 1
    b.errors.record(ValueError("still queued"), service="api", operation="get")
    a.errors.record_recovery("retry", True)
    with engine.connect() as conn:
        stored = conn.execute(select(t.error_records.c.node)).scalars().all()
    assert sorted(stored) == ["node-a", "node-a", "node-a", "node-b"]

    everything = a.errors.analytics(1)
    assert everything["source"] == "database"
    assert (everything["node"], everything["total"]) == (None, 4)
    assert everything["by_node"] == {"node-a": 3, "node-b": 1}
    # B sees the same, plus its own record not yet written.
    from_b = b.errors.analytics(1)
    assert from_b["total"] == 5
    assert from_b["by_node"] == {"node-a": 3, "node-b": 2}
    assert from_b["by_service"] == {"feed": 4, "api": 1}

    only_b = a.errors.analytics(1, node="node-b")
    assert (only_b["node"], only_b["total"], only_b["by_node"]) == ("node-b", 1, {"node-b": 1})
    assert sum(bucket["count"] for bucket in only_b["series"]["buckets"]) == 1
    assert only_b["recovery"]["attempts"] == 0, "A's recoveries are not B's"
    assert a.errors.analytics(1, node="node-a")["recovery"]["attempts"] == 1
    assert b.errors.analytics(1, node="node-b")["total"] == 2
    assert a.errors.analytics(1, node="nobody")["total"] == 0


def test_without_the_database_analytics_speak_for_this_node_only(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/missing/errors.db")
    try:
        manager = ErrorManager(ErrorRecordStore(DatabaseService.for_engine(engine)), node="a")
        manager.record(ValueError("x"), service="s", operation="o")
        manager.record(ValueError("y"), service="s", operation="o")
        analytics = manager.analytics(1)
        assert (analytics["source"], analytics["by_node"]) == ("memory", {"a": 2})
        assert manager.analytics(1, node="a")["total"] == 2
        assert manager.analytics(1, node="b")["total"] == 0
    finally:
        engine.dispose()


def test_records_written_before_nodes_were_named_count_in_totals_only(
    db: DatabaseService,
) -> None:
    unnamed = ErrorManager(ErrorRecordStore(db))
    named = ErrorManager(ErrorRecordStore(db), node="node-a")
    unnamed.record(ValueError("old"), service="s", operation="o")
    named.record(ValueError("new"), service="s", operation="o")
    assert unnamed.flush() == named.flush() == 1
    analytics = named.analytics(1)
    assert (analytics["total"], analytics["by_node"]) == (2, {"node-a": 1})


# -- the API of two nodes on one database --------------------------------------------------


@dataclass
class Api:
    member: Member
    client: TestClient


@pytest.fixture
def two_apis(engine: Engine) -> Iterator[tuple[Api, Api]]:
    db = DatabaseService.for_engine(engine)
    ingestor = Ingestor(db, IngestConfig())
    ingestor.restore()
    ingestor.ingest(SMALL.read_bytes())
    clock = Clock(datetime.now(UTC))
    apis = []
    for name in ("node-a", "node-b"):
        m = member(db, name, clock)
        app = create_app(
            ingestor,
            stale_after=10**9,
            errors=ErrorLayer(m.errors, m.breakers, cluster=m.registry),
            api_keys=[KEY],
        )
        apis.append(Api(m, TestClient(app)))
    a, b = apis
    for api in apis:
        api.client.__enter__()
        api.member.registry.beat()
    try:
        yield a, b
    finally:
        for api in apis:
            api.client.__exit__(None, None, None)


def breakers_by_node(body: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(b["node"], b["name"]): b for b in body["breakers"]}


def test_every_nodes_breakers_are_shown_by_any_node(two_apis: tuple[Api, Api]) -> None:
    a, _ = two_apis
    body = a.client.get("/api/errors/circuit-breakers", headers=ADMIN).json()
    assert (body["node"], body["complete"]) == ("node-a", True)
    shown = breakers_by_node(body)
    assert set(shown) == {
        (node, name) for node in ("node-a", "node-b") for name in ("database", "feed.status")
    }
    assert shown[("node-b", "feed.status")]["state"] == "open"
    assert shown[("node-b", "feed.status")]["reported_at"] is not None
    assert shown[("node-a", "feed.status")]["reported_at"] is None, "its own: live"
    assert [(n["node"], n["local"], n["stale"], n["role"]) for n in body["nodes"]] == [
        ("node-a", True, False, "leader"),
        ("node-b", False, False, "leader"),
    ]
    public = a.client.get("/api/status/breakers").json()
    assert public["node"] == "node-a"
    assert {(x["node"], x["name"], x["state"]) for x in public["breakers"]} == {
        (node, name, "closed" if name == "database" else "open")
        for node in ("node-a", "node-b")
        for name in ("database", "feed.status")
    }
    assert "host" not in json.dumps(public), "the public list names nodes, nothing more"


def test_a_reset_through_one_nodes_api_reaches_the_other(
    two_apis: tuple[Api, Api], engine: Engine
) -> None:
    a, b = two_apis
    path = "/api/errors/circuit-breakers/feed.status/reset"
    asked = a.client.post(path, params={"node": "node-b"}, headers=ADMIN)
    assert asked.status_code == 202, asked.text
    body = asked.json()
    assert (body["node"], body["applied"], body["state"]) == ("node-b", False, "open")
    assert pending_resets(engine) == 1

    before = breakers_by_node(b.client.get("/api/errors/circuit-breakers", headers=ADMIN).json())
    assert before[("node-b", "feed.status")]["state"] == "open"
    b.member.registry.beat()  # B's next heartbeat
    after = breakers_by_node(b.client.get("/api/errors/circuit-breakers", headers=ADMIN).json())
    assert (
        after[("node-b", "feed.status")]["state"],
        after[("node-b", "feed.status")]["resets"],
    ) == (
        "closed",
        1,
    )
    assert after[("node-a", "feed.status")]["state"] == "open", "A's own breaker untouched"

    # Without a node, or naming the node that answers: closed at once.
    here = a.client.post(path, headers=ADMIN)
    assert here.status_code == 200
    assert (here.json()["node"], here.json()["applied"], here.json()["state"]) == (
        "node-a",
        True,
        "closed",
    )
    named = b.client.post(path, params={"node": "node-b"}, headers=ADMIN)
    assert (named.status_code, named.json()["resets"]) == (200, 2)


def test_resets_for_unknown_nodes_or_breakers_are_404(
    two_apis: tuple[Api, Api], engine: Engine
) -> None:
    a, _ = two_apis
    unknown = a.client.post(
        "/api/errors/circuit-breakers/feed.status/reset",
        params={"node": "nobody"},
        headers=ADMIN,
    )
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == "no node named nobody"
    missing = a.client.post(
        "/api/errors/circuit-breakers/feed.data/reset", params={"node": "node-b"}, headers=ADMIN
    )
    assert missing.status_code == 404
    assert missing.json()["detail"] == "no circuit breaker named feed.data on node node-b"
    too_long = a.client.post(
        "/api/errors/circuit-breakers/feed.status/reset", params={"node": "n" * 65}, headers=ADMIN
    )
    assert too_long.status_code == 422
    assert pending_resets(engine) == 0


def test_analytics_through_the_api_cover_both_nodes_and_filter(
    two_apis: tuple[Api, Api],
) -> None:
    a, b = two_apis
    a.member.errors.record(FeedTimeout("t"), service="feed", operation="fetch")
    for _ in range(2):
        b.member.errors.record(FeedTimeout("t"), service="feed", operation="fetch")
    a.member.errors.flush()
    b.member.errors.flush()
    for api in (a, b):
        body = api.client.get("/api/errors/analytics", params={"hours": 1}, headers=ADMIN).json()
        assert (body["total"], body["by_node"]) == (3, {"node-b": 2, "node-a": 1})
    only = a.client.get(
        "/api/errors/analytics", params={"hours": 1, "node": "node-b"}, headers=ADMIN
    ).json()
    assert (only["node"], only["total"], only["by_node"]) == ("node-b", 2, {"node-b": 2})
    assert a.client.get("/api/status/breakers").json()["errors"]["total"] == 3
