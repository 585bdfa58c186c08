"""DatabaseManager, DatabaseService, HealthMonitor and their endpoints on a real database."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import SQLAlchemyError

from feeds import SMALL, encode, later, load, timestamp
from vatsim_collector.api import create_app
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor
from vatsim_collector.pipeline.spool import SnapshotSpool, SpooledSnapshot
from vatsim_collector.store import schema as t
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.engine import PoolSettings, create_db_engine
from vatsim_collector.store.health import HealthLimits, HealthMonitor, Verdict
from vatsim_collector.store.manager import DatabaseManager


@pytest.fixture
def db(database_url: str, engine: Engine) -> DatabaseService:
    manager = DatabaseManager(
        create_db_engine(database_url, pool=PoolSettings(size=3, max_overflow=2)),
        max_overflow=2,
    )
    return DatabaseService(manager, slow_query_ms=0.0, slow_log_size=5)


def test_scopes_always_return_their_connection(db: DatabaseService) -> None:
    class Boom(Exception):
        pass

    def fail_inside(name: str, write: bool) -> None:
        with (db.write if write else db.read)(name) as conn:
            conn.execute(text("SELECT 1"))
            raise Boom

    def bad_sql() -> None:
        with db.read("leak.bad_sql") as conn:
            conn.execute(text("SELECT * FROM no_such_table"))

    for _ in range(20):
        with pytest.raises(Boom):
            fail_inside("leak.read", write=False)
        with pytest.raises(Boom):
            fail_inside("leak.write", write=True)
        with pytest.raises(SQLAlchemyError):
            bad_sql()
    status = db.pool_status()
    assert status.checked_out == 0
    assert status.waiting == 0
    assert status.capacity == 5
    summaries = db.query_summaries()
    assert summaries["leak.read"]["errors"] == 20
    assert summaries["leak.bad_sql"]["count"] == 20
    db.dispose()


def test_a_failed_write_rolls_back(db: DatabaseService) -> None:
    def insert_then_fail() -> None:
        with db.write("rollback") as conn:
            conn.execute(
                t.error_records.insert().values(
                    occurred_at=datetime.now(UTC),
                    service="s",
                    operation="o",
                    category="c",
                    severity="low",
                    error_type="E",
                    message="m",
                )
            )
            raise RuntimeError

    with pytest.raises(RuntimeError):
        insert_then_fail()
    with db.read("count") as conn:
        assert conn.execute(select(t.error_records)).all() == []
    db.dispose()


def test_pool_status_sees_connections_in_use_and_waiting(db: DatabaseService) -> None:
    held = [db.manager.engine.connect() for _ in range(5)]  # the whole capacity
    assert db.pool_status().checked_out == 5
    assert db.pool_status().saturation == 1.0
    entered = threading.Event()

    def wait_for_one() -> None:
        entered.set()
        with db.read("waiter") as conn:
            conn.execute(text("SELECT 1"))

    waiter = threading.Thread(target=wait_for_one)
    waiter.start()
    entered.wait()
    deadline = datetime.now(UTC) + timedelta(seconds=5)
    while db.pool_status().waiting != 1:
        assert datetime.now(UTC) < deadline
    held.pop().close()
    waiter.join(timeout=10)
    for conn in held:
        conn.close()
    assert db.pool_status().checked_out == 0
    assert db.pool_status().waiting == 0
    db.dispose()


def test_stats_endpoint_moves_with_real_queries(db: DatabaseService) -> None:
    ingestor = Ingestor(db, IngestConfig())
    ingestor.restore()
    doc = load(SMALL)
    ingestor.ingest(encode(doc))
    ingestor.ingest(encode(later(doc, 15)))
    callsign = doc["pilots"][0]["callsign"]
    app = create_app(ingestor, stale_after=10**9, api_keys=[("read", "reader")])
    with TestClient(app, headers={"X-API-Key": "reader"}) as client:
        before = client.get("/api/database/service/stats").json()
        for _ in range(7):
            assert client.get(f"/api/flights/{callsign}/track").status_code == 200
        after = client.get("/api/database/service/stats").json()
    assert before["backend"] == db.backend
    assert before["queries"]["ingest.snapshot"]["count"] == 2
    assert "api.flight_track" not in before["queries"]
    track = after["queries"]["api.flight_track"]
    assert track["count"] == 7
    assert track["errors"] == 0
    assert 0 < track["p50_ms"] <= track["p95_ms"] <= track["p99_ms"] <= track["max_ms"]
    # Threshold 0 ms: everything is "slow", and the log keeps only the newest five.
    assert len(after["slow_queries"]) == 5
    assert after["slow_query_log_size"] == 5
    tables = {row["name"]: row for row in after["storage"]["tables"]}
    assert tables["pilot_sessions"]["rows_estimate"] > 0
    assert after["storage"]["total_bytes"] > 0
    assert after["pool"]["checked_out"] == 0
    db.dispose()


def test_health_endpoint_reports_freshness_and_pool(db: DatabaseService) -> None:
    ingestor = Ingestor(db, IngestConfig())
    ingestor.restore()
    doc = load(SMALL)
    now = timestamp(doc) + timedelta(seconds=30)
    monitor = HealthMonitor(db, limits=HealthLimits(stale_after_seconds=120), clock=lambda: now)
    app = create_app(
        ingestor, stale_after=120, clock=lambda: now, health=monitor, api_keys=[("read", "reader")]
    )
    with TestClient(app, headers={"X-API-Key": "reader"}) as client:
        empty = client.get("/api/database/service/health").json()
        ingestor.ingest(encode(doc))
        monitor.probe()
        fresh = client.get("/api/database/service/health").json()
        status = client.get("/api/status").json()
        health = client.get("/health").json()
    assert empty["status"] == "degraded"
    assert empty["reasons"] == ["no snapshot stored yet"]
    assert fresh["status"] == "ok"
    assert fresh["freshness_seconds"] == pytest.approx(30, abs=0.01)
    assert fresh["latency_ms"] > 0
    assert fresh["pool"]["capacity"] == 5
    assert fresh["backlog"] == 0
    assert [c["current"] for c in fresh["transitions"]] == ["ok", "degraded"]
    assert status["health"]["status"] == "ok"
    assert health == {"status": "ok", "reasons": []}
    db.dispose()


def test_a_transition_is_published_once(db: DatabaseService) -> None:
    seen: list[Verdict] = []
    monitor = HealthMonitor(db, listeners=[lambda change: seen.append(change.current)])
    for _ in range(5):
        monitor.probe()  # no data: degraded, every time
    assert seen == [Verdict.DEGRADED]
    db.dispose()


def test_degraded_reasons_name_each_problem(db: DatabaseService, tmp_path: Path) -> None:
    ingestor = Ingestor(db, IngestConfig())
    ingestor.restore()
    doc = load(SMALL)
    ingestor.ingest(encode(doc))
    monitor = HealthMonitor(
        db,
        limits=HealthLimits(
            stale_after_seconds=60, latency_degraded_ms=0.0, min_free_disk_bytes=2**62
        ),
        backlog=lambda: 3,
        clock=lambda: timestamp(doc) + timedelta(hours=2),
    )
    report = monitor.probe()
    assert report.status is Verdict.DEGRADED
    text_reasons = " | ".join(report.reasons)
    assert "round trip" in text_reasons
    assert "7200 s old" in text_reasons
    assert "3 fetched snapshots waiting" in text_reasons
    if db.backend == "sqlite":
        assert "free disk" in text_reasons
    db.dispose()


def test_spool_keeps_order_bounds_and_survives_a_restart(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    spool = SnapshotSpool(folder, max_entries=3, max_bytes=10**6)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(5):
        dropped = spool.put(
            SpooledSnapshot(f"data{i}".encode(), None if i % 2 else b"tx", at, f"src{i}")
        )
        assert len(dropped) == (1 if i >= 3 else 0)
    assert spool.dropped == 2
    reopened = SnapshotSpool(folder, max_entries=3, max_bytes=10**6)
    assert len(reopened) == 3
    items = []
    while (item := reopened.peek()) is not None:
        items.append(item)
        reopened.pop()
    assert [i.data for i in items] == [b"data2", b"data3", b"data4"]
    assert [i.transceivers for i in items] == [b"tx", None, b"tx"]
    assert items[0].fetched_at == at
    assert items[0].source == "src2"
    assert reopened.size_bytes == 0


def test_spool_byte_bound_drops_oldest(tmp_path: Path) -> None:
    spool = SnapshotSpool(tmp_path, max_entries=100, max_bytes=3000)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(5):
        spool.put(SpooledSnapshot(bytes([i]) * 1000, None, at, "s"))
    assert spool.size_bytes <= 3000
    assert spool.dropped == 3
    first = spool.peek()
    assert first is not None
    assert first.data == bytes([3]) * 1000
