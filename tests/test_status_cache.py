"""``/api/status`` served from its cache (``api/status_cache.py``), over real HTTP.

After each kind of change the cached answer is compared, field by field and byte for byte,
with a fresh rendering: ``status_out`` behind a plain FastAPI route with ``StatusOut`` as its
response model (how the route answered before the cache), given a leadership read straight
from the database and the health verdict as it stands. Runs on SQLite and, with
``VATSIM_TEST_DATABASE_URL``, on PostgreSQL.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx2
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from feeds import SMALL, encode, later, load, timestamp
from test_http_hygiene import serving
from test_poison_pills import refuse_poison, with_poison
from vatsim_collector.api import create_app
from vatsim_collector.api.context import ApiContext, ErrorLayer
from vatsim_collector.api.live_cache import CACHE_CONTROL
from vatsim_collector.api.models import StatusOut
from vatsim_collector.api.routes_status import status_out
from vatsim_collector.api.status_cache import LEADERSHIP_MAX_AGE, Leadership, StatusCache
from vatsim_collector.cluster.node import Node, Role
from vatsim_collector.errors.manager import ErrorManager
from vatsim_collector.errors.registry import BreakerRegistry
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor, Outcome
from vatsim_collector.store.cluster import claim_leadership, read_leadership
from vatsim_collector.store.error_records import ErrorRecordStore

STALE_AFTER = 60.0
READ_KEY = "status-reader-5d1e"


class Clocks:
    """The app's wall clock and the leadership's monotonic one, moved on together."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.seconds = 1000.0

    def wall(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.seconds

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.seconds += seconds


@dataclass
class World:
    engine: Engine
    ingestor: Ingestor
    clocks: Clocks
    breakers: BreakerRegistry
    node: Node
    app: FastAPI
    client: httpx2.Client
    reference: httpx2.Client
    first: dict[str, Any]

    @property
    def ctx(self) -> ApiContext:
        ctx = self.app.state.api_context
        assert isinstance(ctx, ApiContext)
        return ctx

    @property
    def cache(self) -> StatusCache:
        return self.ctx.status_cache

    def ingest(self, doc: dict[str, Any]) -> Outcome:
        return self.ingestor.ingest(encode(doc)).outcome


def _uncached(ctx: ApiContext) -> FastAPI:
    """``/api/status`` rendered on every request, with the leadership read every time."""

    def fresh() -> StatusOut:
        view = ctx.collector.live
        with ctx.db.read("test.leadership") as conn:
            read = read_leadership(conn)
        leadership = Leadership(
            read.leader_node, read.epoch, role=ctx.node.role, view=view, read_at=0
        )
        return status_out(ctx, view, ctx.health_report(), leadership)

    reference = FastAPI()
    reference.add_api_route("/api/status", fresh, response_model=StatusOut)
    return reference


@pytest.fixture
def world(engine: Engine) -> Iterator[World]:
    refuse_poison(engine)
    ingestor = Ingestor(engine, IngestConfig())
    ingestor.restore()
    first = load(SMALL)
    assert ingestor.ingest(encode(first)).outcome is Outcome.INGESTED
    clocks = Clocks(timestamp(first) + timedelta(seconds=5.25))
    breakers = BreakerRegistry()
    breakers.get_or_create("feed.data")
    node = Node("status-1", Role.LEADER)
    app = create_app(
        ingestor,
        stale_after=STALE_AFTER,
        clock=clocks.wall,
        leadership_clock=clocks.monotonic,
        node=node,
        errors=ErrorLayer(ErrorManager(ErrorRecordStore(ingestor.db)), breakers),
    )
    ctx = app.state.api_context
    with serving(app) as client, serving(_uncached(ctx)) as reference:
        yield World(engine, ingestor, clocks, breakers, node, app, client, reference, first)


def _same_as_fresh(world: World) -> httpx2.Response:
    """The cached answer, checked against a fresh rendering field by field; the answer."""
    cached = world.client.get("/api/status")
    fresh = world.reference.get("/api/status")
    assert cached.status_code == fresh.status_code == 200
    mine, theirs = orjson.loads(cached.content), orjson.loads(fresh.content)
    assert mine.keys() == theirs.keys()
    for name, value in theirs.items():
        assert mine[name] == value, name
    assert cached.content == fresh.content
    assert cached.headers["cache-control"] == CACHE_CONTROL
    assert cached.headers["vary"] == "Accept-Encoding"
    return cached


def _changed(world: World, before: httpx2.Response) -> httpx2.Response:
    """The answer after a change: a fresh rendering's, under a new tag, not a 304."""
    after = _same_as_fresh(world)
    assert after.content != before.content
    assert after.headers["etag"] != before.headers["etag"]
    again = world.client.get("/api/status", headers={"If-None-Match": before.headers["etag"]})
    assert again.status_code == 200
    assert again.headers["etag"] == after.headers["etag"]
    return after


def _body(answer: httpx2.Response) -> dict[str, Any]:
    body = orjson.loads(answer.content)
    assert isinstance(body, dict)
    return body


# ----- the tests --------------------------------------------------------------------------


def test_an_unchanged_status_is_served_from_memory_under_one_tag(world: World) -> None:
    first = _same_as_fresh(world)
    renders = world.cache.renders
    answers = [world.client.get("/api/status") for _ in range(10)]
    assert {a.content for a in answers} == {first.content}
    assert {a.headers["etag"] for a in answers} == {first.headers["etag"]}
    assert world.cache.renders == renders
    assert world.cache.hits >= 10
    # One leadership read for all of them (and the reference's own reads go around it).
    assert world.cache.leadership.reads == 1


def test_a_matching_if_none_match_gets_304_without_a_body(world: World) -> None:
    first = world.client.get("/api/status")
    etag = first.headers["etag"]
    assert not etag.startswith("W/")
    for offered in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        answer = world.client.get("/api/status", headers={"If-None-Match": offered})
        assert answer.status_code == 304, offered
        assert answer.content == b""
        assert answer.headers["etag"] == etag
        assert answer.headers["cache-control"] == CACHE_CONTROL
    other = world.client.get("/api/status", headers={"If-None-Match": '"not-this-one"'})
    assert (other.status_code, other.content) == (200, first.content)


def test_gzip_is_sent_to_a_client_that_accepts_it(world: World) -> None:
    def raw(**headers: str) -> tuple[httpx2.Response, bytes]:
        with world.client.stream("GET", "/api/status", headers=headers) as response:
            return response, b"".join(response.iter_raw())

    plain, plain_body = raw(**{"Accept-Encoding": "identity"})
    zipped, zipped_body = raw(**{"Accept-Encoding": "gzip"})
    assert "content-encoding" not in plain.headers
    assert zipped.headers["content-encoding"] == "gzip"
    assert gzip.decompress(zipped_body) == plain_body
    assert zipped.headers["vary"] == plain.headers["vary"] == "Accept-Encoding"
    assert zipped.headers["etag"] != plain.headers["etag"]
    revalidated, body = raw(**{"Accept-Encoding": "gzip", "If-None-Match": zipped.headers["etag"]})
    assert (revalidated.status_code, body) == (304, b"")


def test_the_age_moves_in_whole_seconds(world: World) -> None:
    before = _same_as_fresh(world)
    assert _body(before)["age_seconds"] == 5.0  # 5.25 s, rounded down
    world.clocks.advance(0.5)
    within = _same_as_fresh(world)
    assert within.headers["etag"] == before.headers["etag"]
    world.clocks.advance(0.5)
    after = _changed(world, before)
    assert _body(after)["age_seconds"] == 6.0


def test_a_new_snapshot_changes_the_status_at_once(world: World) -> None:
    before = _same_as_fresh(world)
    second = later(world.first, 15)
    assert world.ingest(second) is Outcome.INGESTED
    after = _changed(world, before)
    assert after.json()["ingest"]["snapshots_ingested"] == 2
    assert datetime.fromisoformat(after.json()["last_snapshot_at"]) == timestamp(second)


def test_a_held_snapshot_and_a_duplicate_change_the_counters_shown(world: World) -> None:
    before = _same_as_fresh(world)
    assert world.ingest(with_poison(later(world.first, 15))) is Outcome.HELD
    held = _changed(world, before)
    assert held.json()["ingest"]["snapshots_held"] == 1
    assert held.json()["last_snapshot_at"] == before.json()["last_snapshot_at"]
    assert world.ingest(world.first) is Outcome.DUPLICATE
    duplicate = _changed(world, held)
    assert duplicate.json()["ingest"]["snapshots_duplicate"] == 1


def test_a_failing_feed_changes_the_status_at_once(world: World) -> None:
    before = _same_as_fresh(world)
    breaker = world.breakers.get("feed.data")
    assert breaker is not None
    for _ in range(breaker.config.failure_threshold):
        breaker.on_failure(TimeoutError("read timed out"))
    after = _changed(world, before)
    assert after.json()["feed"]["status"] == "failing"
    assert after.json()["feed"]["breakers"] == {"feed.data": "open"}


def test_going_stale_changes_freshness_and_health(world: World) -> None:
    before = _same_as_fresh(world)
    world.clocks.advance(STALE_AFTER)  # past stale_after, and past the verdict's max age
    after = _changed(world, before)
    assert after.json()["freshness"] == "stale"
    assert after.json()["health"]["status"] == "degraded"


def test_the_leadership_is_read_again_after_its_bound(world: World) -> None:
    before = _same_as_fresh(world)
    assert before.json()["cluster"]["leader"] is None
    with world.ingestor.db.write("test.claim") as conn:
        epoch = claim_leadership(conn, "leader-9", world.clocks.now)
    # Within the bound the held read is served, as documented (the reference reads anew).
    assert world.client.get("/api/status").content == before.content
    world.clocks.seconds += LEADERSHIP_MAX_AGE
    after = _changed(world, before)
    assert after.json()["cluster"] == {
        "node": "status-1",
        "role": "leader",
        "leader": "leader-9",
        "epoch": epoch,
    }
    assert world.cache.leadership.reads == 2


def test_a_role_change_or_a_new_view_reads_the_leadership_at_once(world: World) -> None:
    before = _same_as_fresh(world)
    with world.ingestor.db.write("test.claim") as conn:
        epoch = claim_leadership(conn, "leader-2", world.clocks.now)
    world.node.role = Role.STANDBY  # as the elector demotes a node
    demoted = _changed(world, before)
    assert demoted.json()["cluster"]["role"] == "standby"
    assert demoted.json()["cluster"]["leader"] == "leader-2"
    with world.ingestor.db.write("test.claim") as conn:
        epoch = claim_leadership(conn, "leader-3", world.clocks.now)
    assert world.ingest(later(world.first, 15)) is Outcome.INGESTED
    after = _changed(world, demoted)
    assert (after.json()["cluster"]["leader"], after.json()["cluster"]["epoch"]) == (
        "leader-3",
        epoch,
    )


def test_a_closed_api_refuses_the_status_before_the_cache(engine: Engine) -> None:
    ingestor = Ingestor(engine, IngestConfig())
    ingestor.restore()
    app = create_app(
        ingestor, stale_after=STALE_AFTER, api_keys=[("read", READ_KEY)], public_read=False
    )
    with serving(app) as client:
        keyed = client.get("/api/status", headers={"X-API-Key": READ_KEY})
        assert keyed.status_code == 200
        assert keyed.headers["cache-control"] == "no-store"
        etag = keyed.headers["etag"]
        for headers in ({}, {"If-None-Match": etag}, {"Accept-Encoding": "gzip"}):
            refused = client.get("/api/status", headers=headers)
            assert refused.status_code == 401, headers
            assert "etag" not in refused.headers
            assert b'"cluster"' not in refused.content
