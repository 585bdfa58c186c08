"""The "now" endpoints served from the live cache (``api/live_cache.py``), over real HTTP.

Each answer is compared with the uncached rendering: the same builder behind a plain FastAPI
route with the same ``response_model``, which is how these routes answered before the cache.
Runs on SQLite and, with ``VATSIM_TEST_DATABASE_URL``, on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx2
import orjson
import pytest
from fastapi import FastAPI, Request
from pydantic import BaseModel
from sqlalchemy import Engine

from api_nodes import running_api_node
from hostile_feed import wait_until
from test_http_hygiene import serving
from vatsim_collector.airports.reference import Airport
from vatsim_collector.airspace.engine import AirspaceEngine
from vatsim_collector.airspace.sectors import SectorSet
from vatsim_collector.api import create_app
from vatsim_collector.api.context import ApiContext
from vatsim_collector.api.live_cache import CACHE_CONTROL, LiveCache, accepts_gzip
from vatsim_collector.api.models_events import PaginationOut
from vatsim_collector.api.routes_airports import airport_out
from vatsim_collector.api.routes_airspace import busiest_sectors_out, transceivers_out
from vatsim_collector.api.routes_controllers import controllers_out
from vatsim_collector.api.routes_flights import flights_out
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor, Outcome
from vatsim_collector.simulator.world import SimulatedNetwork

START = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
READ_KEY = "live-reader-31f0"


class Feed:
    """The simulator's network fed into an ingestor one snapshot at a time."""

    def __init__(self, ingestor: Ingestor) -> None:
        self.ingestor = ingestor
        self.network = SimulatedNetwork(seed=31, start=START)

    def store_next(self) -> None:
        result = self.ingestor.ingest(
            orjson.dumps(self.network.data_document()),
            transceivers_raw=orjson.dumps(self.network.transceivers_document()),
        )
        assert result.outcome is Outcome.INGESTED
        self.network.tick()


@pytest.fixture(scope="module")
def sectors() -> SectorSet:
    return SectorSet.default()


@pytest.fixture
def feed(engine: Engine, sectors: SectorSet) -> Feed:
    ingestor = Ingestor(engine, IngestConfig(), airspace=AirspaceEngine(sectors, exit_after=2))
    ingestor.restore()
    feed = Feed(ingestor)
    for _ in range(3):
        feed.store_next()
    return feed


def _context(app: FastAPI) -> ApiContext:
    ctx = app.state.api_context
    assert isinstance(ctx, ApiContext)
    return ctx


def _cache(app: FastAPI) -> LiveCache:
    return _context(app).live_cache


def _busy_airport(ingestor: Ingestor) -> str:
    """A filed destination of a live pilot: an airport with something to show."""
    for pilot in ingestor.live.pilots:
        if pilot.plan is not None and len(pilot.plan.arrival.strip()) == 4:
            return pilot.plan.arrival.strip().upper()
    raise AssertionError("no live pilot has filed an arrival")


def _reference_airport(ctx: ApiContext, icao: str) -> Airport:
    found = ctx.airports.reference.get(icao)
    assert found is not None, icao
    return found


def _loaded(ctx: ApiContext) -> SectorSet:
    assert ctx.sectors is not None
    return ctx.sectors


def _uncached_app(app: FastAPI, icao: str) -> FastAPI:
    """The builders behind plain routes with their response models: the answers as FastAPI
    rendered them before the cache."""
    ctx = _context(app)
    reference = FastAPI()
    routes: dict[str, Callable[[], BaseModel]] = {
        "/api/flights": lambda: flights_out(ctx.collector.live),
        "/api/controllers": lambda: controllers_out(ctx.collector.live),
        "/api/transceivers": lambda: transceivers_out(
            ctx.collector.live.snapshot_at, ctx.collector.last_transceivers, None, 50, 0
        ),
        "/api/sectors/busiest": lambda: busiest_sectors_out(ctx, _loaded(ctx), 10),
        f"/api/airports/{icao}": lambda: airport_out(
            ctx, _reference_airport(ctx, icao), ctx.collector.live
        ),
    }
    for path, build in routes.items():
        model = type(build())
        reference.add_api_route(path, build, response_model=model)
    return reference


def _raw(client: httpx2.Client, path: str, **headers: str) -> tuple[httpx2.Response, bytes]:
    """An answer and its body as sent (httpx would decompress a gzip body)."""
    with client.stream("GET", path, headers=headers) as response:
        return response, b"".join(response.iter_raw())


# ----- the tests --------------------------------------------------------------------------


def test_every_cached_answer_equals_the_uncached_rendering_byte_for_byte(
    feed: Feed, sectors: SectorSet
) -> None:
    app = create_app(feed.ingestor, stale_after=1e9, sectors=sectors)
    icao = _busy_airport(feed.ingestor)
    with serving(app) as client, serving(_uncached_app(app, icao)) as reference:
        paths = [route.path for route in _uncached_app(app, icao).routes if "/api/" in route.path]
        assert len(paths) == 5
        for _ in range(2):  # the snapshot as stored, then the next one
            for path in paths:
                first = client.get(path)
                again = client.get(path)
                expected = reference.get(path)
                assert first.status_code == expected.status_code == 200, path
                assert first.content == again.content == expected.content, path
                assert first.headers["content-type"] == expected.headers["content-type"]
                assert first.headers["etag"] == again.headers["etag"]
                assert first.headers["cache-control"] == CACHE_CONTROL
                assert first.headers["vary"] == "Accept-Encoding"
            assert orjson.loads(client.get("/api/flights").content)["flights"]
            feed.store_next()


def test_a_variant_is_rendered_once_per_snapshot(feed: Feed) -> None:
    app = create_app(feed.ingestor, stale_after=1e9)
    cache = _cache(app)
    with serving(app) as client:
        bodies = {client.get("/api/flights").content for _ in range(20)}
        assert len(bodies) == 1
        assert (cache.renders, cache.hits) == (1, 19)
        feed.store_next()
        assert client.get("/api/flights").content not in bodies
        assert cache.renders == 2


def test_the_fast_path_and_the_route_give_the_same_answer(feed: Feed) -> None:
    """A plain GET is answered before routing (``LiveFastPath``), one with a query string by
    the route: the same bytes and tag, from the one cached variant."""
    app = create_app(feed.ingestor, stale_after=1e9)
    cache = _cache(app)
    with serving(app) as client:
        for path in ("/api/flights", "/api/controllers"):
            fast = client.get(path)
            routed = client.get(f"{path}?via=route")
            assert fast.content == routed.content, path
            assert fast.headers["etag"] == routed.headers["etag"], path
            assert client.post(path).status_code == 405, path
            assert client.get(f"{path}/").status_code == 307, path
        assert cache.renders == 2


def test_a_matching_if_none_match_gets_304_without_a_body(feed: Feed) -> None:
    app = create_app(feed.ingestor, stale_after=1e9)
    with serving(app) as client:
        first = client.get("/api/controllers")
        etag = first.headers["etag"]
        assert not etag.startswith("W/")  # strong
        assert etag.endswith('"')
        for offered in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            answer = client.get("/api/controllers", headers={"If-None-Match": offered})
            assert answer.status_code == 304, offered
            assert answer.content == b""
            assert answer.headers["etag"] == etag
            assert answer.headers["cache-control"] == CACHE_CONTROL
        other = client.get("/api/controllers", headers={"If-None-Match": '"not-this-one"'})
        assert other.status_code == 200
        assert other.content == first.content


def test_the_etag_changes_when_the_next_snapshot_is_stored(feed: Feed) -> None:
    app = create_app(feed.ingestor, stale_after=1e9)
    with serving(app) as client:
        before = client.get("/api/flights")
        feed.store_next()
        after = client.get("/api/flights", headers={"If-None-Match": before.headers["etag"]})
        assert after.status_code == 200
        assert after.headers["etag"] != before.headers["etag"]
        assert after.content == flights_json(feed.ingestor)
        # An old tag stays refused; the new one is answered with a 304.
        new = client.get("/api/flights", headers={"If-None-Match": after.headers["etag"]})
        assert new.status_code == 304


def flights_json(ingestor: Ingestor) -> bytes:
    model = flights_out(ingestor.live)
    return model.model_dump_json(by_alias=True).encode()


def test_gzip_is_sent_to_a_client_that_accepts_it(feed: Feed) -> None:
    app = create_app(feed.ingestor, stale_after=1e9)
    with serving(app) as client:
        # httpx asks for gzip unless told otherwise.
        plain, plain_body = _raw(client, "/api/flights", **{"Accept-Encoding": "identity"})
        zipped, zipped_body = _raw(client, "/api/flights", **{"Accept-Encoding": "gzip, br"})
        assert "content-encoding" not in plain.headers
        assert zipped.headers["content-encoding"] == "gzip"
        assert gzip.decompress(zipped_body) == plain_body
        assert len(zipped_body) < len(plain_body) / 3
        assert int(zipped.headers["content-length"]) == len(zipped_body)
        assert zipped.headers["vary"] == plain.headers["vary"] == "Accept-Encoding"
        # Two representations, two strong tags; either one names the snapshot's answer.
        assert zipped.headers["etag"] != plain.headers["etag"]
        refused, _ = _raw(client, "/api/flights", **{"Accept-Encoding": "gzip;q=0"})
        assert "content-encoding" not in refused.headers
        revalidated, body = _raw(
            client,
            "/api/flights",
            **{"Accept-Encoding": "gzip", "If-None-Match": zipped.headers["etag"]},
        )
        assert (revalidated.status_code, body) == (304, b"")
        assert revalidated.headers["etag"] == zipped.headers["etag"]


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        ("gzip", True),
        ("deflate, gzip;q=0.5", True),
        ("GZIP", True),
        ("br", False),
        ("", False),
        ("gzip;q=0", False),
        ("*", True),
        ("*;q=0", False),
        ("*, gzip;q=0", False),
        ("gzip;q=nonsense", False),
    ],
)
def test_accept_encoding_is_read_with_its_weights(header: str, accepted: bool) -> None:
    assert accepts_gzip(header) is accepted


def test_filters_and_pages_are_cached_as_separate_variants(feed: Feed) -> None:
    app = create_app(feed.ingestor, stale_after=1e9)
    cache = _cache(app)
    document = feed.ingestor.last_transceivers
    assert document
    prefix = sorted(s.callsign for s in document if s.transceivers)[0][:2]
    queries = [
        "",
        f"?callsign={prefix}",
        "?limit=5",
        "?limit=5&offset=5",
    ]
    with serving(app) as client:
        answers = {q: client.get(f"/api/transceivers{q}") for q in queries}
        assert len({a.content for a in answers.values()}) == len(queries)
        assert len({a.headers["etag"] for a in answers.values()}) == len(queries)
        assert len(cache) == len(queries)
        for q, first in answers.items():
            again = client.get(f"/api/transceivers{q}")
            assert again.content == first.content
            assert again.headers["etag"] == first.headers["etag"]
            expected = transceivers_out(
                feed.ingestor.live.snapshot_at,
                document,
                prefix if "callsign" in q else None,
                5 if "limit" in q else 50,
                5 if "offset" in q else 0,
            )
            assert orjson.loads(again.content) == orjson.loads(expected.model_dump_json())
        assert cache.renders == len(queries)
        assert client.get("/api/transceivers?limit=0").status_code == 422
        assert len(cache) == len(queries)


def test_the_cache_is_bounded() -> None:
    cache = LiveCache(max_variants=3)
    view = object()
    for n in range(10):
        cache.get((view,), n, lambda n=n: str(n).encode())  # type: ignore[misc]
    assert len(cache) == 3
    assert cache.get((view,), 9, lambda: b"rendered again").body == b"9"
    assert cache.get((view,), 0, lambda: b"rendered again").body == b"rendered again"
    cache.get((object(),), 0, lambda: b"new view")
    assert len(cache) == 1


def test_an_async_caller_renders_off_the_event_loop() -> None:
    """The event loop (other requests, the collector's poll) never runs a rendering."""
    cache = LiveCache()
    threads: list[threading.Thread] = []

    def render() -> BaseModel:
        threads.append(threading.current_thread())
        return PaginationOut(total=1, limit=1, offset=0)

    async def answer() -> tuple[threading.Thread, list[int]]:
        request = Request({"type": "http", "method": "GET", "headers": [], "path": "/"})
        view = object()
        codes = [(await cache.respond_async(request, (view,), "k", render)).status_code]
        codes.append((await cache.respond_async(request, (view,), "k", render)).status_code)
        return threading.current_thread(), codes

    loop_thread, codes = asyncio.run(answer())
    assert codes == [200, 200]
    assert len(threads) == 1  # the second answer was the stored one
    assert threads[0] is not loop_thread


def test_a_closed_api_refuses_cached_answers_without_a_key(feed: Feed) -> None:
    app = create_app(
        feed.ingestor, stale_after=1e9, api_keys=[("read", READ_KEY)], public_read=False
    )
    with serving(app) as client:
        keyed = client.get("/api/flights", headers={"X-API-Key": READ_KEY})
        assert keyed.status_code == 200
        assert keyed.content == flights_json(feed.ingestor)
        # What a key unlocked is kept by no cache.
        assert keyed.headers["cache-control"] == "no-store"
        etag = keyed.headers["etag"]
        for headers in ({}, {"If-None-Match": etag}, {"X-API-Key": "wrong"}):
            refused = client.get("/api/flights", headers=headers)
            assert refused.status_code == 401, headers
            assert refused.headers["content-type"] == "application/problem+json"
            assert b'"flights":' not in refused.content
            assert "etag" not in refused.headers
        refused_gzip, _ = _raw(client, "/api/controllers", **{"Accept-Encoding": "gzip"})
        assert refused_gzip.status_code == 401
        revalidated = client.get(
            "/api/flights", headers={"X-API-Key": READ_KEY, "If-None-Match": etag}
        )
        assert revalidated.status_code == 304


def test_forgetting_a_member_changes_the_cached_answer_at_once(feed: Feed) -> None:
    admin = "live-admin-77c2"
    app = create_app(feed.ingestor, stale_after=1e9, api_keys=[("admin", admin)])
    with serving(app) as client:
        before = client.get("/api/flights")
        cid = orjson.loads(before.content)["flights"][0]["cid"]
        forgotten = client.delete(f"/api/members/{cid}", headers={"X-API-Key": admin})
        assert forgotten.status_code == 200, forgotten.text
        after = client.get("/api/flights", headers={"If-None-Match": before.headers["etag"]})
        assert after.status_code == 200
        assert cid not in {f["cid"] for f in orjson.loads(after.content)["flights"]}


def test_an_api_node_serves_the_new_snapshot_after_its_follower_refreshes(
    feed: Feed, database_url: str, tmp_path: Path
) -> None:
    leader = create_app(feed.ingestor, stale_after=1e9)
    env = {"VATSIM_FOLLOW_INTERVAL": "0.25", "VATSIM_RATE_LIMIT_PER_MINUTE": "0"}
    with serving(leader) as here, running_api_node(database_url, tmp_path, env=env) as node:
        # The node's body and tag equal the leader's: tags are the content's, not a node's.
        # (Within a bound: the node shows a snapshot a follow interval after it is stored.)
        def agrees(path: str) -> Callable[[], bool]:
            def check() -> bool:
                theirs, mine = node.get(path), here.get(path)
                return theirs.content == mine.content and _same_tags(theirs, mine)

            return check

        for _ in range(2):
            for path in ("/api/flights", "/api/controllers", "/api/transceivers?limit=7"):
                assert wait_until(agrees(path), timeout=30), (path, node.output()[-2000:])
            old_tag = node.get("/api/flights").headers["etag"]
            feed.store_next()
            assert wait_until(_changed(f"{node.base}/api/flights", old_tag), timeout=30)


def _changed(url: str, etag: str) -> Callable[[], bool]:
    """Whether ``url`` answers anything but a 304 to ``etag``."""
    return lambda: httpx2.get(url, headers={"If-None-Match": etag}).status_code == 200


def _same_tags(a: httpx2.Response, b: httpx2.Response) -> bool:
    return bool(a.headers.get("etag")) and a.headers.get("etag") == b.headers.get("etag")
