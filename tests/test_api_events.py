"""The event endpoints over HTTP, against a running bus with a real dead-letter queue."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine
from starlette.testclient import TestClient

from feeds import SMALL
from vatsim_collector.api import create_app
from vatsim_collector.config import Settings
from vatsim_collector.errors.retry import RetryPolicy
from vatsim_collector.events.event import Event
from vatsim_collector.events.subscription import HandlerOptions
from vatsim_collector.pipeline.event_layer import EventLayer, build_event_layer
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor

KEY = "events-test-key"
AUTH = {"X-API-Key": KEY}
ONE_TRY = RetryPolicy(attempts=1, initial=0.001, maximum=0.001, total=5.0)


class Switch:
    """A handler that fails until it is fixed, and counts what it was given."""

    def __init__(self) -> None:
        self.broken = True
        self.received: list[str] = []

    async def __call__(self, event: Event) -> None:
        if self.broken:
            raise RuntimeError("downstream refused the event")
        self.received.append(event.id)


@dataclass
class Running:
    client: TestClient
    layer: EventLayer
    ingestor: Ingestor
    handler: Switch

    def ingest_and_publish(self, raw: bytes) -> list[Event]:
        result = self.ingestor.ingest(raw)
        portal = self.client.portal
        assert portal is not None
        portal.call(self.layer.bus.publish_many, result.events)
        portal.call(self.layer.bus.join)
        return result.events


@pytest.fixture
def running(engine: Engine) -> Iterator[Running]:
    ingestor = Ingestor(engine, IngestConfig())
    ingestor.restore()
    layer = build_event_layer(Settings(), ingestor.db)
    handler = Switch()
    layer.bus.subscribe(
        "controllers-out", handler, "controller.connected", options=HandlerOptions(retry=ONE_TRY)
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await layer.start()
        yield
        await layer.stop(10)

    app = create_app(ingestor, stale_after=60, lifespan=lifespan, events=layer, api_keys=[KEY])
    with TestClient(app) as client:
        yield Running(client, layer, ingestor, handler)


ROUTES = [
    ("get", "/api/events/analytics"),
    ("get", "/api/events"),
    ("get", "/api/events/dead-letters"),
    ("get", "/api/events/dead-letters/1"),
    ("post", "/api/events/dead-letters/1/replay"),
    ("delete", "/api/events/dead-letters/1"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_event_route_needs_a_key(running: Running, method: str, path: str) -> None:
    assert running.client.request(method, path).status_code == 401
    wrong = running.client.request(method, path, headers={"X-API-Key": "nope"})
    assert wrong.status_code == 401


def test_dead_letters_listed_inspected_replayed_and_discarded(running: Running) -> None:
    client = running.client
    events = running.ingest_and_publish(SMALL.read_bytes())
    connected = [e for e in events if e.type == "controller.connected"]
    assert connected

    page = client.get("/api/events/dead-letters", params={"limit": 2}, headers=AUTH).json()
    assert page["pagination"] == {"total": len(connected), "limit": 2, "offset": 0}
    first = page["dead_letters"][0]
    assert first["handler"] == "controllers-out"
    assert first["event"]["type"] == "controller.connected"
    assert (
        first["error_message"]
        == "handler controllers-out failed: RuntimeError: downstream refused the event"
    )
    assert first["error_type"] == "RuntimeError"
    one = client.get(f"/api/events/dead-letters/{first['id']}", headers=AUTH).json()
    assert one["event"] == first["event"]

    running.handler.broken = False
    replayed = client.post(f"/api/events/dead-letters/{first['id']}/replay", headers=AUTH)
    assert replayed.json() == {"id": first["id"], "outcome": "delivered", "failure": None}
    assert running.handler.received == [first["event"]["id"]]
    gone = client.post(f"/api/events/dead-letters/{first['id']}/replay", headers=AUTH)
    assert gone.status_code == 404
    assert running.handler.received == [first["event"]["id"]]  # once, not twice

    second = page["dead_letters"][1]["id"]
    assert client.delete(f"/api/events/dead-letters/{second}", headers=AUTH).status_code == 204
    assert client.delete(f"/api/events/dead-letters/{second}", headers=AUTH).status_code == 404
    left = client.get("/api/events/dead-letters", headers=AUTH).json()["pagination"]["total"]
    assert left == len(connected) - 2


def test_a_replay_that_fails_again_says_so_and_keeps_the_letter(running: Running) -> None:
    running.ingest_and_publish(SMALL.read_bytes())
    client = running.client
    letter = client.get("/api/events/dead-letters", headers=AUTH).json()["dead_letters"][0]
    again = client.post(f"/api/events/dead-letters/{letter['id']}/replay", headers=AUTH).json()
    assert again["outcome"] == "failed"
    assert again["failure"]["error_type"] == "RuntimeError"
    kept = client.get(f"/api/events/dead-letters/{letter['id']}", headers=AUTH).json()
    assert kept["attempts"] == letter["attempts"] + 1


def test_analytics_show_types_handlers_breakers_and_the_queue_bound(running: Running) -> None:
    events = running.ingest_and_publish(SMALL.read_bytes())
    data = running.client.get("/api/events/analytics", headers=AUTH).json()
    assert data["running"] is True
    connected = sum(1 for e in events if e.type == "controller.connected")
    assert data["types"]["controller.connected"] == {
        "published": connected,
        # The event log took every one; the failing handler none.
        "delivered": connected,
        "failed": connected,
    }
    assert data["types"]["snapshot.received"]["published"] == 1
    failing = data["handlers"]["controllers-out"]
    assert failing["failures"] == connected
    assert failing["successes"] == 0
    assert failing["breaker"]["name"] == "handler.controllers-out"
    assert failing["breaker"]["state"] == "open"  # five failures in a row
    log = data["handlers"]["event-log"]
    assert log["successes"] == len(events)
    assert log["overflow"] == "block"
    assert log["latency_ms"]["p50"] is not None
    assert data["dead_letters"]["size"] == connected
    assert data["dead_letters"]["bound"] == Settings().dead_letter_max


def test_the_event_log_pages_by_time_and_type(running: Running) -> None:
    events = running.ingest_and_publish(SMALL.read_bytes())
    client = running.client
    wanted = [e.id for e in events if e.type.startswith("pilot.")]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"type": "pilot.*", "limit": 400}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/api/events", params=params, headers=AUTH).json()
        seen.extend(e["id"] for e in page["events"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(wanted)
    future = client.get("/api/events", params={"from": "2100-01-01T00:00:00Z"}, headers=AUTH)
    assert future.json() == {"events": [], "next_cursor": None}


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2021-01-01T00:00:00"},  # no offset
        {"cursor": "garbage"},
        {"type": "pilot.connected'; DROP TABLE events; --"},
        {"limit": 0},
        {"limit": 100_000},
    ],
)
def test_bad_event_log_parameters_are_refused_clearly(
    running: Running, params: dict[str, str | int]
) -> None:
    response = running.client.get("/api/events", params=params, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["detail"]
