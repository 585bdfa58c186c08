"""The dashboard at ``/``: its JSON endpoints, its assets, and the page itself in Chromium.

The endpoints are checked over a database filled by the real pipeline (the simulator's
documents through the ingestor with the VATSpy sectors), against direct SQL and plain Python.
The browser test runs ``vatsim-collector run`` against the simulator over HTTP and reads the
numbers the page shows in Debian's Chromium, driven by Playwright.
"""

from __future__ import annotations

import math
import os
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import orjson
import pytest
import shapely
from fastapi import FastAPI
from playwright.sync_api import sync_playwright
from sqlalchemy import Engine, create_engine, distinct, func, select, text
from sqlalchemy.engine import make_url
from starlette.routing import NoMatchFound
from starlette.testclient import TestClient

from conftest import SERVER_ENV
from simserver import running_simulator
from test_service_e2e import collector, tick_and_wait
from vatsim_collector.airspace.engine import AirspaceEngine
from vatsim_collector.airspace.sectors import SectorSet
from vatsim_collector.api import create_app, routes_history, routes_web
from vatsim_collector.api.context import ErrorLayer
from vatsim_collector.api.models_airspace import SectorCollectionOut
from vatsim_collector.errors.manager import ErrorManager
from vatsim_collector.errors.registry import BreakerRegistry
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor, Outcome
from vatsim_collector.simulator.world import SimulatedNetwork
from vatsim_collector.store import schema as t
from vatsim_collector.store.engine import create_db_engine
from vatsim_collector.store.error_records import ErrorRecordStore
from vatsim_collector.store.migrate import upgrade

START = datetime(2024, 5, 1, 11, 50, tzinfo=UTC)
TICKS = 24
CHROMIUM = Path("/usr/bin/chromium")
WEB = Path(routes_web.__file__).resolve().parent.parent / "web"


def with_dashboard(app: FastAPI) -> FastAPI:
    """Add the dashboard routers unless ``create_app`` already does."""
    for router, endpoint in (
        (routes_history.router, "history_counts"),
        (routes_web.router, "dashboard"),
    ):
        try:
            app.url_path_for(endpoint)
        except NoMatchFound:
            app.include_router(router)
    return app


@dataclass
class World:
    engine: Engine
    ingestor: Ingestor
    sectors: SectorSet
    app: FastAPI
    client: TestClient
    now: datetime
    errors: ErrorManager
    breakers: BreakerRegistry
    recorded: dict[str, int]

    def app_at(self, now: datetime, **kwargs: Any) -> TestClient:
        """Another app over the same data, with its own clock and parts."""
        app = create_app(self.ingestor, stale_after=60, clock=lambda: now, **kwargs)
        return TestClient(with_dashboard(app))

    def rows(self, query: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(query))


@pytest.fixture(scope="module")
def module_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One database for the module (filled once; no test writes to it), on either backend."""
    server = os.environ.get(SERVER_ENV)
    if not server:
        engine = create_db_engine(f"sqlite:///{tmp_path_factory.mktemp('dashboard')}/t.db")
        upgrade(engine)
        yield engine
        engine.dispose()
        return
    name = f"vct_{uuid.uuid4().hex[:16]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine = create_db_engine(
            make_url(server).set(database=name).render_as_string(hide_password=False)
        )
        upgrade(engine)
        yield engine
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(scope="module")
def world(module_engine: Engine) -> World:
    sectors = SectorSet.default()
    ingestor = Ingestor(
        module_engine,
        IngestConfig(missed_snapshots_to_end=2),
        airspace=AirspaceEngine(sectors, exit_after=2),
    )
    ingestor.restore()
    sim = SimulatedNetwork(seed=5, start=START)
    for _ in range(TICKS):
        result = ingestor.ingest(
            orjson.dumps(sim.data_document()),
            transceivers_raw=orjson.dumps(sim.transceivers_document()),
        )
        assert result.outcome is Outcome.INGESTED
        sim.tick()
    assert ingestor.live.snapshot_at is not None
    now = ingestor.live.snapshot_at + timedelta(seconds=5)

    breakers = BreakerRegistry()
    breakers.get_or_create("database")
    feed = breakers.get_or_create("feed.data")
    for _ in range(feed.config.failure_threshold):
        feed.on_failure(TimeoutError("read timed out"))
    errors = ErrorManager(ErrorRecordStore(ingestor.db))
    recorded: dict[str, int] = defaultdict(int)
    secret = "postgresql://user:hunter2@db.internal/vatsim"
    for exc in (TimeoutError("read timed out"), TimeoutError("again"), ValueError(secret)):
        record = errors.record(exc, service="feed", operation="fetch", context={"url": secret})
        recorded[record.category.value] += 1
    app = with_dashboard(
        create_app(
            ingestor,
            stale_after=60,
            sectors=sectors,
            clock=lambda: now,
            errors=ErrorLayer(manager=errors, breakers=breakers),
        )
    )
    return World(
        module_engine,
        ingestor,
        sectors,
        app,
        TestClient(app),
        now,
        errors,
        breakers,
        dict(recorded),
    )


def _get(client: TestClient, path: str, **params: Any) -> dict[str, Any]:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# -- /api/history/counts -----------------------------------------------------------------------


def _expected_counts(world: World, since: datetime, minutes: int) -> list[dict[str, Any]]:
    s = t.snapshots
    rows = world.rows(
        select(s.c.update_timestamp, s.c.pilots, s.c.controllers).where(
            s.c.status == "accepted", s.c.update_timestamp >= since
        )
    )
    size = timedelta(minutes=minutes)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    buckets: dict[datetime, dict[str, Any]] = {}
    for at, pilots, controllers in rows:
        start = epoch + ((at - epoch) // size) * size
        b = buckets.setdefault(start, {"pilots": 0, "controllers": 0, "snapshots": 0})
        b["pilots"] = max(b["pilots"], pilots)
        b["controllers"] = max(b["controllers"], controllers)
        b["snapshots"] += 1
    return [{"at": k, **v} for k, v in sorted(buckets.items())]


def _points(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**p, "at": _at(p["at"])} for p in body["points"]]


@pytest.mark.parametrize("minutes", [1, 10, 360])
def test_history_counts_are_the_largest_counts_per_bucket(world: World, minutes: int) -> None:
    body = _get(world.client, "/api/history/counts", bucket_minutes=minutes)
    assert _at(body["to"]) == world.now
    assert _at(body["from"]) == world.now - timedelta(hours=24)
    assert body["bucket_minutes"] == minutes
    expected = _expected_counts(world, world.now - timedelta(hours=24), minutes)
    assert _points(body) == expected
    assert sum(p["snapshots"] for p in expected) == TICKS


def test_history_counts_window_starts_hours_before_now(world: World) -> None:
    first = min(r[0] for r in world.rows(select(t.snapshots.c.update_timestamp)))
    # An hour after the third snapshot: the first three are outside the window.
    now = first + timedelta(hours=1, seconds=31)
    body = _get(world.app_at(now), "/api/history/counts", hours=1, bucket_minutes=1)
    expected = _expected_counts(world, now - timedelta(hours=1), 1)
    assert _points(body) == expected
    assert sum(p["snapshots"] for p in expected) == TICKS - 3
    later = _get(world.app_at(now + timedelta(hours=2)), "/api/history/counts", hours=1)
    assert later["points"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"hours": 0},
        {"hours": 169},
        {"hours": -1},
        {"hours": "a day"},
        {"hours": 1.5},
        {"bucket_minutes": 0},
        {"bucket_minutes": 361},
        {"bucket_minutes": "NaN"},
    ],
)
def test_history_counts_refuses_out_of_range_parameters(
    world: World, params: dict[str, Any]
) -> None:
    response = world.client.get("/api/history/counts", params=params)
    assert response.status_code == 422, response.text
    assert "detail" in response.json()


# -- /api/sectors/busiest ----------------------------------------------------------------------


def _busiest_by_sql(world: World) -> list[dict[str, Any]]:
    so = t.sector_occupancy
    rows = world.rows(
        select(so.c.sector, func.count(distinct(so.c.pilot_session_id)).label("n"))
        .where(so.c.exited_at.is_(None))
        .group_by(so.c.sector)
        .order_by(func.count(distinct(so.c.pilot_session_id)).desc(), so.c.sector)
    )
    return [{"name": name, "current": n} for name, n in rows]


def test_busiest_sectors_match_direct_sql_in_order(world: World) -> None:
    expected = _busiest_by_sql(world)
    assert len(expected) > 10, "the fill should put aircraft in many sectors"
    assert _get(world.client, "/api/sectors/busiest")["sectors"] == expected[:10]
    assert _get(world.client, "/api/sectors/busiest", limit=3)["sectors"] == expected[:3]
    everything = _get(world.client, "/api/sectors/busiest", limit=500)["sectors"]
    assert everything == expected
    counts = [s["current"] for s in everything]
    assert counts == sorted(counts, reverse=True)
    assert all(n > 0 for n in counts)


def test_busiest_sectors_agree_with_the_sector_listing(world: World) -> None:
    for sector in _get(world.client, "/api/sectors/busiest", limit=5)["sectors"]:
        listed = _get(world.client, "/api/sectors", name=sector["name"], limit=500)["sectors"]
        current = {row["name"]: row["current"] for row in listed}
        assert current[sector["name"]] == sector["current"]


@pytest.mark.parametrize("limit", [0, 501, -3, "ten"])
def test_busiest_sectors_refuse_out_of_range_limits(world: World, limit: Any) -> None:
    assert world.client.get("/api/sectors/busiest", params={"limit": limit}).status_code == 422


def test_sector_endpoints_answer_503_without_a_sector_set(world: World) -> None:
    client = world.app_at(world.now)
    for path in ("/api/sectors/busiest", "/api/sectors/geojson"):
        response = client.get(path)
        assert response.status_code == 503
        assert "sector" in response.json()["detail"]


# -- /api/sectors/geojson ----------------------------------------------------------------------


def _decimals(value: float) -> int:
    text = repr(value)
    return len(text.partition(".")[2]) if "." in text and "e" not in text else 0


def _farthest(vertices_of: shapely.Geometry, outline_of: shapely.Geometry) -> float:
    points = shapely.points(shapely.get_coordinates(vertices_of))
    return float(shapely.distance(points, shapely.boundary(outline_of)).max())


def _vertices(collection: dict[str, Any]) -> int:
    return sum(
        int(shapely.get_num_coordinates(shapely.geometry.shape(f["geometry"])))
        for f in collection["features"]
    )


def test_sector_geojson_is_a_valid_simplified_feature_collection(world: World) -> None:
    response = world.client.get("/api/sectors/geojson")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert "max-age" in response.headers["cache-control"]
    body = response.json()
    SectorCollectionOut.model_validate(body)
    assert body["type"] == "FeatureCollection"
    assert body["simplify"] == 0.05
    features = body["features"]
    assert len(features) == len(world.sectors.sectors)
    assert {f["properties"]["name"] for f in features} == set(world.sectors.names())
    for feature, sector in zip(features, world.sectors.sectors, strict=True):
        assert feature["type"] == "Feature"
        assert feature["properties"]["name"] == sector.name
        geometry = feature["geometry"]
        polygons = (
            [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
        )
        for rings in polygons:
            for ring in rings:
                assert len(ring) >= 4
                assert ring[0] == ring[-1]
                for lon, lat in ring:
                    assert -180 <= lon <= 180
                    assert -90 <= lat <= 90
                    assert _decimals(lon) <= 3
                    assert _decimals(lat) <= 3
        # The drawn outline stays close to the real one: every drawn vertex is an original
        # one, rounded, and every original vertex is near the drawn outline. GEOS's
        # topology-preserving simplifier keeps to about the tolerance, not strictly (up to
        # 1.5 times it on the VATSpy set), hence twice the tolerance here.
        drawn = shapely.geometry.shape(geometry)
        assert _farthest(sector.geometry, drawn) <= 2 * 0.05
        assert _farthest(drawn, sector.geometry) <= 0.001
    assert _vertices(body) < sum(
        int(shapely.get_num_coordinates(s.geometry)) for s in world.sectors.sectors
    )


def test_sector_geojson_detail_follows_the_tolerance_and_repeats_exactly(world: World) -> None:
    fine = world.client.get("/api/sectors/geojson", params={"simplify": 0})
    coarse = world.client.get("/api/sectors/geojson", params={"simplify": 0.5})
    assert _vertices(fine.json()) > _vertices(coarse.json())
    assert coarse.json()["simplify"] == 0.5
    # Tolerances are rounded to 3 decimals: near-equal requests get the same answer.
    again = world.client.get("/api/sectors/geojson", params={"simplify": 0.50004})
    assert again.content == coarse.content
    for tolerance in (0.1, 0.2, 0.3, 0.4, 0.5):  # more tolerances than the cache keeps
        world.client.get("/api/sectors/geojson", params={"simplify": tolerance})
    assert world.client.get("/api/sectors/geojson", params={"simplify": 0}).content == (
        fine.content
    )


@pytest.mark.parametrize("simplify", [-0.01, 1.01, "nan", "inf", "-inf", "coarse"])
def test_sector_geojson_refuses_bad_tolerances(world: World, simplify: Any) -> None:
    response = world.client.get("/api/sectors/geojson", params={"simplify": simplify})
    assert response.status_code == 422, response.text


# -- /api/status/breakers ----------------------------------------------------------------------


def test_breakers_and_error_counts_are_public_without_messages(world: World) -> None:
    response = world.client.get("/api/status/breakers")
    assert response.status_code == 200
    body = response.json()
    # An app built without a node registry or node name: its breakers name no node.
    assert body["node"] is None
    assert body["breakers"] == [
        {"name": "database", "state": "closed", "node": None},
        {"name": "feed.data", "state": "open", "node": None},
    ]
    errors = body["errors"]
    assert errors["hours"] == 1
    assert errors["total"] == sum(world.recorded.values()) == 3
    for category, n in errors["by_category"].items():
        assert n == world.recorded.get(category, 0)
    assert sum(errors["by_severity"].values()) == 3
    # Names, states and counts only: no message, context or secret leaves through here.
    assert "hunter2" not in response.text
    assert "timed out" not in response.text
    assert "context" not in response.text


def test_breakers_endpoint_without_an_error_layer(world: World) -> None:
    body = _get(world.app_at(world.now), "/api/status/breakers")
    assert body == {"node": None, "breakers": [], "errors": None}


def test_new_endpoints_are_documented_with_bounds(world: World) -> None:
    schema = _get(world.client, "/openapi.json")
    paths = schema["paths"]
    for path in (
        "/api/history/counts",
        "/api/sectors/busiest",
        "/api/sectors/geojson",
        "/api/status/breakers",
    ):
        assert "200" in paths[path]["get"]["responses"], path
    params = {p["name"]: p["schema"] for p in paths["/api/history/counts"]["get"]["parameters"]}
    assert (params["hours"]["minimum"], params["hours"]["maximum"]) == (1, 168)
    simplify = paths["/api/sectors/geojson"]["get"]["parameters"][0]["schema"]
    assert (simplify["minimum"], simplify["maximum"]) == (0, 1)
    assert "/" not in paths
    assert "/static/{name}" not in paths


# -- the page and its assets -------------------------------------------------------------------


def test_page_and_assets_are_served_with_types_and_cache_validators(world: World) -> None:
    page = world.client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-cache"
    referenced = set(re.findall(r'(?:src|href)="/static/([^"]+)"', page.text))
    # Modules the scripts import are fetched from /static as well.
    for script in WEB.glob("*.js"):
        referenced |= set(re.findall(r'from "\./([^"]+)"', script.read_text()))
    assert referenced == set(routes_web.ASSETS), "every asset is listed, every listed one used"
    kinds = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for name in referenced:
        response = world.client.get(f"/static/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"].startswith(kinds[Path(name).suffix])
        assert response.content == (WEB / name).read_bytes()
        etag = response.headers["etag"]
        cached = world.client.get(f"/static/{name}", headers={"If-None-Match": etag})
        assert cached.status_code == 304
        assert cached.content == b""


@pytest.mark.parametrize(
    "path",
    [
        "/static/index.html",
        "/static/nope.js",
        "/static/..%2fapi%2fapp.py",
        "/static/%2e%2e%2f%2e%2e%2fpyproject.toml",
        "/static/../api/app.py",
        "/static/DASHBOARD.JS",
        "/static/dashboard.js%00.png",
    ],
)
def test_only_listed_assets_are_served(world: World, path: str) -> None:
    response = world.client.get(path)
    assert response.status_code == 404, response.text
    assert "import" not in response.text


# -- the page in a real browser ----------------------------------------------------------------


def _output_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("VATSIM_TEST_OUTPUT")
    directory = Path(configured) if configured else tmp_path_factory.getbasetemp()
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _value(page: Any, test_id: str) -> int:
    raw = page.get_by_test_id(test_id).get_attribute("data-value")
    assert raw is not None, f"{test_id} shows no number"
    return int(raw)


def _api(base: str, path: str) -> dict[str, Any]:
    response = httpx2.get(f"{base}{path}")
    assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.slow
def test_dashboard_in_chromium(
    database_url: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: run scripts/ensure-chromium (CI installs Debian's chromium"
            " package; Playwright's own browsers are not used)",
            pytrace=False,
        )
    began = time.monotonic()
    # Two minutes back, so the ticks below stay in the past of the collector's clock.
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    network = SimulatedNetwork(seed=7, start=start)
    with (
        running_simulator(network=network, speed=0) as sim,
        collector(database_url, f"{sim}/status.json", tmp_path) as base,
    ):
        for _ in range(4):
            tick_and_wait(sim, base)
        console: list[str] = []
        requests: list[str] = []
        failed: list[str] = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=["--no-sandbox"]
            )
            try:
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                page.on(
                    "console",
                    lambda m: console.append(m.text) if m.type == "error" else None,
                )
                page.on("pageerror", lambda exc: console.append(f"uncaught: {exc}"))
                page.on("request", lambda r: requests.append(r.url))
                page.on("requestfailed", lambda r: failed.append(f"{r.url}: {r.failure}"))
                loaded = page.goto(f"{base}/")
                assert loaded is not None
                assert loaded.status == 200, f"GET / answered {loaded.status}: is routes_web wired?"
                # CSP forbids eval, so wait on selectors rather than on a JS predicate.
                page.wait_for_selector("body[data-refreshes]", state="attached", timeout=60_000)

                status = _api(base, "/api/status")
                for kind in ("pilots", "controllers", "atis", "observers", "prefiles"):
                    assert _value(page, f"count-{kind}") == status["live"][kind], kind

                flights = _api(base, "/api/flights")["flights"]
                assert flights, "the simulator should have pilots online"
                assert _value(page, "map-aircraft-count") == len(flights)
                aircraft = page.get_by_test_id("map-aircraft")
                assert aircraft.get_attribute("data-count") == str(len(flights))
                assert aircraft.locator("circle").count() == len(flights)
                airborne = sum(1 for f in flights if f["groundspeed"] >= 50)
                assert _value(page, "count-airborne") == airborne
                sectors_drawn = page.get_by_test_id("map-sectors").locator("path").count()
                assert sectors_drawn == len(_api(base, "/api/sectors/geojson")["features"]) > 0

                history = _api(base, "/api/history/counts?hours=24&bucket_minutes=10")["points"]
                assert history, "the ticks should be in the last 24 h"
                assert _value(page, "history-points") == len(history)
                assert _value(page, "history-last-pilots") == history[-1]["pilots"]
                assert _value(page, "history-last-controllers") == history[-1]["controllers"]
                # One dot marks each series' latest bucket.
                assert page.locator("#history-chart svg circle.dot:not(.cursor *)").count() >= 2

                coverage = _api(base, "/api/coverage")
                assert _value(page, "coverage-samples") == coverage["samples"]

                busiest = _api(base, "/api/sectors/busiest?limit=10")["sectors"]
                assert busiest, "the simulator's pilots should be inside sectors"
                names = page.get_by_test_id("busiest-name").all_text_contents()
                assert names == [s["name"] for s in busiest]
                for sector in busiest:
                    assert _value(page, f"busiest-count-{sector['name']}") == sector["current"]

                service = _api(base, "/api/status/breakers")
                assert service["breakers"], "the collector has feed and database breakers"
                for breaker in service["breakers"]:
                    shown = page.get_by_test_id(f"breaker-{breaker['name']}")
                    assert shown.get_attribute("data-state") == breaker["state"]
                assert _value(page, "errors-total") == service["errors"]["total"]

                # The page refreshes itself: after the next tick its numbers follow the API.
                tick_and_wait(sim, base)
                page.wait_for_selector('body[data-refreshes="2"]', state="attached", timeout=60_000)
                status = _api(base, "/api/status")
                assert _value(page, "count-pilots") == status["live"]["pilots"]
                flights = _api(base, "/api/flights")["flights"]
                assert aircraft.locator("circle").count() == len(flights)

                shot = _output_dir(tmp_path_factory) / "dashboard.png"
                page.screenshot(path=str(shot), full_page=True)
                print(f"dashboard screenshot: {shot}")
            finally:
                browser.close()
    assert console == [], f"console errors: {console}"
    assert failed == [], f"failed requests: {failed}"
    outside = [url for url in requests if not url.startswith(f"{base}/")]
    assert outside == [], f"requests to other hosts: {outside}"
    assert any(url.endswith("/api/status") for url in requests)
    print(f"browser test took {math.ceil(time.monotonic() - began)} s")
