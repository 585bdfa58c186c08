"""/health says down, not ok, when collection has in effect stopped.

Two such faults: the latest stored snapshot dated in the future (every real snapshot after it
would look old), and a poll loop that has died. Both on the real database of the run (SQLite,
or PostgreSQL with VATSIM_TEST_DATABASE_URL) and the real service app.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from vatsim_collector.api import create_app
from vatsim_collector.api.context import ApiContext
from vatsim_collector.config import load_settings
from vatsim_collector.pipeline.ingest import Ingestor
from vatsim_collector.service import build_service_app

# The attribute the poll loop sets when it dies (``Poller.fatal``).
FATAL = "fatal"


def stored_at(ingestor: Ingestor) -> datetime:
    at = ingestor.live.snapshot_at
    assert at is not None
    return at


def client_at(ingestor: Ingestor, now: datetime) -> TestClient:
    """The API with its clock (and its health monitor's) at ``now``."""
    return TestClient(create_app(ingestor, stale_after=10**9, clock=lambda: now))


def test_a_snapshot_dated_in_the_future_is_a_fault(ingestor: Ingestor) -> None:
    # The collector's clock ten minutes behind the stored update_timestamp: a negative age.
    with client_at(ingestor, stored_at(ingestor) - timedelta(minutes=10)) as client:
        health = client.get("/health")
        assert health.status_code == 503
        body = health.json()
        assert body["status"] == "down"
        assert any("600 s in the future" in reason for reason in body["reasons"]), body
        status = client.get("/api/status").json()
        assert status["health"]["status"] == "down"


def test_clock_skew_within_the_tolerance_is_not_a_fault(ingestor: Ingestor) -> None:
    with client_at(ingestor, stored_at(ingestor) - timedelta(seconds=1)) as client:
        health = client.get("/health")
        assert health.status_code == 200
        assert not any("future" in reason for reason in health.json()["reasons"])


@pytest.fixture
def service(database_url: str, tmp_path: Path) -> Iterator[FastAPI]:
    settings = load_settings(
        database_url=database_url,
        status_url="http://127.0.0.1:9/status.json",
        spool_dir=tmp_path / "spool",
        airspace_enabled=False,
    )
    app = build_service_app(settings)  # no lifespan in the tests: the loop is not started
    try:
        yield app
    finally:
        app.state.api_context.db.dispose()


def test_a_dead_poll_loop_makes_health_down_with_its_reason(service: FastAPI) -> None:
    context = service.state.api_context
    assert isinstance(context, ApiContext)
    poller = context.poller
    assert poller is not None
    client = TestClient(service)
    running = client.get("/api/status").json()["collection"]
    assert running["status"] == "running"
    assert running["stopped_reason"] is None
    for name in ("missed_ticks", "loop_errors", "records_dropped", "data_errors", "pending"):
        assert running[name] == 0, name
    reason = "OSError: spool write to https://user:hunter2@db.example failed"
    setattr(poller, FATAL, reason)  # as the loop leaves it when it dies
    health = client.get("/health")
    assert health.status_code == 503
    body = health.json()
    assert body["status"] == "down"
    assert body["reasons"][0].startswith("collection stopped: OSError: spool write")
    assert "hunter2" not in health.text  # reasons are scrubbed of secrets
    stopped = client.get("/api/status").json()["collection"]
    assert stopped["status"] == "stopped"
    assert stopped["stopped_reason"] == body["reasons"][0].removeprefix("collection stopped: ")


def test_the_loop_counters_are_on_metrics(service: FastAPI) -> None:
    text = TestClient(service).get("/metrics").text
    for name in (
        "vatsim_missed_ticks_total 0.0",
        "vatsim_poll_loop_errors_total 0.0",
        "vatsim_pending_snapshots 0.0",
    ):
        assert name in text, name
