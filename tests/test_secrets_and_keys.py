"""Secrets planted everywhere a failure can carry them never come out; keys guard the errors API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from structlog.testing import capture_logs

from feeds import SMALL
from vatsim_collector.api import create_app
from vatsim_collector.api.context import ErrorLayer
from vatsim_collector.config import load_settings
from vatsim_collector.errors.manager import ErrorManager
from vatsim_collector.errors.registry import BreakerRegistry
from vatsim_collector.feed.client import FeedClient
from vatsim_collector.feed.schedule import FixedRateSchedule
from vatsim_collector.pipeline.ingest import DatabaseUnavailable, IngestConfig, Ingestor
from vatsim_collector.pipeline.poller import Poller
from vatsim_collector.store import schema as t
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.engine import create_db_engine
from vatsim_collector.store.error_records import ErrorRecordStore
from vatsim_collector.store.health import HealthMonitor

PLANTED = "PLANTED-s3cret"
KEY = "test-key-123"


def leaky_transport() -> httpx2.MockTransport:
    """A network stack whose errors quote credentials, headers and tokens verbatim."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError(
            f"connect to https://feeduser:{PLANTED}-url@feed.test/v3 failed;"
            f" Authorization: Bearer {PLANTED}-bearer; X-API-Key: {PLANTED}-header;"
            f" retry with ?token={PLANTED}-query",
            request=request,
        )

    return httpx2.MockTransport(handler)


@pytest.fixture
def layer(engine: Engine) -> Iterator[tuple[Ingestor, ErrorManager, BreakerRegistry]]:
    ingestor = Ingestor(engine, IngestConfig())
    ingestor.restore()
    ingestor.ingest(SMALL.read_bytes())
    return ingestor, ErrorManager(ErrorRecordStore(ingestor.db)), BreakerRegistry()


async def test_planted_secrets_reach_no_record_log_or_response(
    layer: tuple[Ingestor, ErrorManager, BreakerRegistry], engine: Engine
) -> None:
    ingestor, errors, breakers = layer
    settings = load_settings(
        status_url=f"http://feeduser:{PLANTED}-status@feed.test/status.json",
        data_fallback_url="http://feed.test/v3/vatsim-data.json",
        poll_interval=0.1,
    )
    client = FeedClient(settings, transport=leaky_transport())
    poller = Poller(client, ingestor, FixedRateSchedule(0.1), errors=errors, breakers=breakers)
    dead_db = DatabaseService.for_engine(
        create_db_engine(f"postgresql+psycopg://collector:{PLANTED}-db@127.0.0.1:1/vatsim")
    )
    with capture_logs() as logs:
        for _ in range(3):
            await poller.poll_once()
        with pytest.raises(DatabaseUnavailable) as outage:
            Ingestor(dead_db, IngestConfig()).ingest(SMALL.read_bytes())
        errors.record(
            outage.value,
            service="database",
            operation="ingest",
            context={"url": str(dead_db.engine.url), "headers": {"Cookie": f"sid={PLANTED}"}},
        )
        HealthMonitor(dead_db).probe()
        assert errors.flush() > 0
        app = create_app(
            ingestor,
            stale_after=10**9,
            errors=ErrorLayer(errors, breakers, poller),
            api_keys=[KEY],
        )
        with TestClient(app) as api:
            bodies = [
                api.get(path, headers={"X-API-Key": KEY}).text
                for path in (
                    "/api/errors/analytics?hours=1",
                    "/api/errors/circuit-breakers",
                    "/api/status",
                    "/health",
                    "/api/database/service/stats",
                    "/api/database/service/health",
                )
            ]
    await client.aclose()
    dead_db.dispose()

    with engine.connect() as conn:
        records = [dict(r._mapping) for r in conn.execute(select(t.error_records))]
    assert {r["service"] for r in records} >= {"feed", "database"}
    assert json.loads(bodies[0])["total"] == len(records)
    for where, text in [
        ("error records", json.dumps(records, default=str)),
        ("log lines", json.dumps(logs, default=str)),
        *((f"response {i}", body) for i, body in enumerate(bodies)),
    ]:
        assert PLANTED not in text, f"a planted secret reached the {where}"
    # Scrubbed, not dropped: the records still say what happened.
    assert any("ConnectError" in r["message"] or "request failed" in r["message"] for r in records)


def test_errors_api_needs_a_key(layer: tuple[Ingestor, ErrorManager, BreakerRegistry]) -> None:
    ingestor, errors, breakers = layer
    breakers.get_or_create("feed.data")
    app = create_app(
        ingestor, stale_after=10**9, errors=ErrorLayer(errors, breakers), api_keys=[KEY]
    )
    paths: list[tuple[str, str]] = [
        ("GET", "/api/errors/analytics"),
        ("GET", "/api/errors/circuit-breakers"),
        ("POST", "/api/errors/circuit-breakers/feed.data/reset"),
    ]
    with TestClient(app) as api:
        for method, path in paths:
            assert api.request(method, path).status_code == 401
            wrong = api.request(method, path, headers={"X-API-Key": "nope"})
            assert wrong.status_code == 401
            assert "X-API-Key" in wrong.json()["detail"]
            assert api.request(method, path, headers={"X-API-Key": KEY}).status_code == 200
        assert api.get("/api/flights").status_code == 200  # live data stays open
        missing = api.post("/api/errors/circuit-breakers/nothing/reset", headers={"X-API-Key": KEY})
        assert missing.status_code == 404
        schema: dict[str, Any] = api.get("/openapi.json").json()
    analytics = schema["paths"]["/api/errors/analytics"]["get"]
    ok = analytics["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["$ref"].endswith("/ErrorAnalyticsOut")
    assert "401" in analytics["responses"]
    assert analytics["security"] == [{"APIKeyHeader": ["admin"]}, {"HTTPBearer": ["admin"]}]
    assert "/api/errors/circuit-breakers/{name}/reset" in schema["paths"]


def test_without_configured_keys_the_errors_api_stays_shut(
    layer: tuple[Ingestor, ErrorManager, BreakerRegistry],
) -> None:
    ingestor, errors, breakers = layer
    app = create_app(ingestor, stale_after=10**9, errors=ErrorLayer(errors, breakers))
    with TestClient(app) as api:
        response = api.get("/api/errors/analytics", headers={"X-API-Key": ""})
    assert response.status_code == 401
    assert "no API keys are configured" in response.json()["detail"]
