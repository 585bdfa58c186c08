"""The REST API over a real SQLite file fed with real VATSIM snapshots; no mocks."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine

from vatsim_collector.api import create_app
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor, Outcome
from vatsim_collector.store.engine import create_db_engine
from vatsim_collector.store.migrate import upgrade

FEED = Path("/work/shared/data/feeds/vatsim-data-20210720T122320Z.json")
STALE_AFTER = 120.0
CONTROLLER = "ZGHA_APP"
# Two transceivers; their centroid is close to the midpoint (28.1, 113.1).
CONTROLLER_TRANSCEIVERS = [
    {
        "callsign": CONTROLLER,
        "transceivers": [
            {"id": 0, "frequency": 119650000, "latDeg": 28.0, "lonDeg": 113.0},
            {"id": 1, "frequency": 119650000, "latDeg": 28.2, "lonDeg": 113.2},
        ],
    }
]


def _doc() -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(FEED.read_bytes())
    return doc


def _timestamp(doc: dict[str, Any]) -> datetime:
    text: str = doc["general"]["update_timestamp"]
    whole, _, fraction = text.rstrip("Z").partition(".")
    micros = int((fraction + "000000")[:6])
    return datetime.fromisoformat(whole).replace(microsecond=micros, tzinfo=UTC)


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _advanced(doc: dict[str, Any], seconds: float = 15, step: float = 0.01) -> dict[str, Any]:
    """The same sessions ``seconds`` later, every pilot moved ``step`` degrees north."""
    nxt = copy.deepcopy(doc)
    nxt["general"]["update_timestamp"] = _iso(_timestamp(doc) + timedelta(seconds=seconds))
    for pilot in nxt["pilots"]:
        pilot["latitude"] = round(pilot["latitude"] + step, 5)
    return nxt


def _is_observer(controller: dict[str, Any]) -> bool:
    return (
        controller["facility"] == 0
        or controller["frequency"] == "199.998"
        or str(controller["callsign"]).upper().endswith("_OBS")
    )


def _sqlite(directory: Path) -> Engine:
    engine = create_db_engine(f"sqlite:///{directory}/t.db")
    upgrade(engine)
    return engine


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Fed:
    """An ingestor after two snapshots of the same sessions, 15 s apart."""

    def __init__(self, ingestor: Ingestor, first: dict[str, Any], second: dict[str, Any]) -> None:
        self.ingestor = ingestor
        self.first = first
        self.second = second
        self.latest = _timestamp(second)

    def client(self, *, age: float = 5.0) -> TestClient:
        clock = Clock(self.latest + timedelta(seconds=age))
        return TestClient(create_app(self.ingestor, stale_after=STALE_AFTER, clock=clock))


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fed]:
    engine = _sqlite(tmp_path_factory.mktemp("api"))
    ingestor = Ingestor(engine, IngestConfig(sanity_min_pilots=1))
    first = _doc()
    second = _advanced(first)
    transceivers = orjson.dumps(CONTROLLER_TRANSCEIVERS)
    for doc in (first, second):
        result = ingestor.ingest(orjson.dumps(doc), transceivers_raw=transceivers)
        assert result.outcome is Outcome.INGESTED
    yield Fed(ingestor, first, second)
    engine.dispose()


@pytest.fixture(scope="module")
def client(fed: Fed) -> TestClient:
    return fed.client()


# /health ---------------------------------------------------------------------------------


def test_health_ok_when_fresh(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "reasons": []}


def test_health_degraded_when_update_timestamp_is_old(fed: Fed) -> None:
    response = fed.client(age=STALE_AFTER + 60).get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert "180 s old" in body["reasons"][0]


def test_health_degraded_before_first_snapshot(tmp_path: Path) -> None:
    engine = _sqlite(tmp_path)
    app = create_app(Ingestor(engine, IngestConfig()), stale_after=STALE_AFTER)
    with TestClient(app) as client:
        health = client.get("/health")
        status = client.get("/api/status").json()
    engine.dispose()
    assert health.status_code == 200
    assert health.json() == {"status": "degraded", "reasons": ["no snapshot stored yet"]}
    assert status["freshness"] == "none"
    assert status["last_snapshot_at"] is None
    assert status["age_seconds"] is None


def test_health_down_when_sqlite_folder_is_gone(tmp_path: Path) -> None:
    folder = tmp_path / "db"
    engine = _sqlite(folder)
    ingestor = Ingestor(engine, IngestConfig(sanity_min_pilots=1))
    engine.dispose()
    shutil.rmtree(folder)
    client = TestClient(create_app(ingestor, stale_after=STALE_AFTER))
    response = client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    assert body["reasons"] == ["database cannot be queried (OperationalError)"]


def test_health_down_and_clean_503_when_postgres_is_unreachable() -> None:
    engine = create_engine(
        "postgresql+psycopg://u@127.0.0.1:1/x", connect_args={"connect_timeout": 1}
    )
    client = TestClient(
        create_app(Ingestor(engine, IngestConfig()), stale_after=STALE_AFTER),
        raise_server_exceptions=False,
    )
    health = client.get("/health")
    assert health.status_code == 503
    assert health.json()["status"] == "down"
    track = client.get("/api/flights/AAL1765/track")
    assert track.status_code == 503
    assert track.headers["content-type"] == "application/problem+json"
    assert track.json()["detail"] == "database unavailable; try again later"
    assert "127.0.0.1" not in track.text
    engine.dispose()


# /api/status -------------------------------------------------------------------------------


def test_status_counts_match_the_snapshot(fed: Fed, client: TestClient) -> None:
    body = client.get("/api/status").json()
    doc = fed.second
    observers = [c for c in doc["controllers"] if _is_observer(c)]
    assert observers, "the fixture snapshot has observers"
    # A prefile of a pilot who is online is the pilot's own plan re-published, not a prefile.
    online = {(p["cid"], p["callsign"]) for p in doc["pilots"]}
    prefiles = [f for f in doc["prefiles"] if (f["cid"], f["callsign"]) not in online]
    assert len(prefiles) < len(doc["prefiles"])
    assert body["live"] == {
        "pilots": len(doc["pilots"]),
        "controllers": len(doc["controllers"]) - len(observers),
        "observers": len(observers),
        "atis": len(doc["atis"]),
        "prefiles": len(prefiles),
    }
    assert body["freshness"] == "fresh"
    assert body["age_seconds"] == pytest.approx(5.0)
    assert body["stale_after_seconds"] == STALE_AFTER
    assert datetime.fromisoformat(body["last_snapshot_at"]) == fed.latest
    assert body["last_snapshot_at"].endswith("Z")
    assert body["ingest"]["snapshots_ingested"] == 2
    assert body["ingest"]["positions_written"] == 2 * len(doc["pilots"])
    assert body["ingest"] == fed.ingestor.stats.as_dict()


def test_status_stale(fed: Fed) -> None:
    body = fed.client(age=STALE_AFTER + 1).get("/api/status").json()
    assert body["freshness"] == "stale"
    assert body["age_seconds"] == pytest.approx(STALE_AFTER + 1)


# /api/flights ------------------------------------------------------------------------------


def test_flights_lists_each_live_pilot_once_sorted_without_names(
    fed: Fed, client: TestClient
) -> None:
    response = client.get("/api/flights")
    assert response.status_code == 200
    flights = response.json()["flights"]
    doc = fed.second
    assert len(flights) == len({(p["cid"], p["callsign"]) for p in doc["pilots"]})
    callsigns = [f["callsign"] for f in flights]
    assert callsigns == sorted(callsigns)
    assert all("name" not in f for f in flights)
    assert doc["pilots"][0]["name"] not in response.text

    pilot = doc["pilots"][0]
    plan = pilot["flight_plan"]
    (flight,) = [f for f in flights if f["callsign"] == pilot["callsign"]]
    assert flight["cid"] == pilot["cid"]
    assert flight["latitude"] == pytest.approx(pilot["latitude"])
    assert flight["longitude"] == pytest.approx(pilot["longitude"])
    assert flight["altitude"] == pilot["altitude"]
    assert flight["groundspeed"] == pilot["groundspeed"]
    assert flight["heading"] == pilot["heading"]
    assert flight["transponder"] == pilot["transponder"]
    assert flight["departure"] == plan["departure"]
    assert flight["arrival"] == plan["arrival"]
    assert flight["aircraft_short"] == plan["aircraft_short"]
    assert isinstance(flight["flight_id"], int)
    assert isinstance(flight["session_id"], int)
    assert datetime.fromisoformat(flight["last_seen"]) == fed.latest


def test_pilot_without_flight_plan_has_null_route(fed: Fed, client: TestClient) -> None:
    planless = [p for p in fed.second["pilots"] if p["flight_plan"] is None]
    assert planless, "the fixture snapshot has pilots without a flight plan"
    flights = {f["callsign"]: f for f in client.get("/api/flights").json()["flights"]}
    flight = flights[planless[0]["callsign"]]
    assert (flight["departure"], flight["arrival"], flight["aircraft_short"]) == (None,) * 3


# /api/controllers ----------------------------------------------------------------------------


def test_controllers_flag_observers_and_include_atis(fed: Fed, client: TestClient) -> None:
    response = client.get("/api/controllers")
    assert response.status_code == 200
    stations = response.json()["controllers"]
    doc = fed.second
    assert len(stations) == len(doc["controllers"]) + len(doc["atis"])
    callsigns = [s["callsign"] for s in stations]
    assert callsigns == sorted(callsigns)
    assert all("name" not in s for s in stations)

    by_callsign = {s["callsign"]: s for s in stations}
    for controller in doc["controllers"]:
        station = by_callsign[controller["callsign"]]
        assert station["kind"] == "controller"
        assert station["is_observer"] is _is_observer(controller)
        assert station["frequency"] == controller["frequency"]
        assert station["facility"] == controller["facility"]
        assert station["rating"] == controller["rating"]
        assert station["atis_code"] is None
    for atis in doc["atis"]:
        station = by_callsign[atis["callsign"]]
        assert station["kind"] == "atis"
        assert station["atis_code"] == atis["atis_code"]
    assert any(s["is_observer"] and s["frequency"] == "199.998" for s in stations)
    assert any(s["is_observer"] and s["facility"] == 0 for s in stations)


def test_controller_position_comes_from_its_transceivers(client: TestClient) -> None:
    stations = {s["callsign"]: s for s in client.get("/api/controllers").json()["controllers"]}
    located = stations[CONTROLLER]
    assert located["latitude"] == pytest.approx(28.1, abs=0.01)
    assert located["longitude"] == pytest.approx(113.1, abs=0.01)
    others = [s for name, s in stations.items() if name != CONTROLLER]
    assert all(s["latitude"] is None and s["longitude"] is None for s in others)


# /api/flights/{callsign}/track --------------------------------------------------------------


def test_track_has_both_positions_in_time_order(fed: Fed, client: TestClient) -> None:
    pilot = fed.first["pilots"][0]
    response = client.get(f"/api/flights/{pilot['callsign']}/track")
    assert response.status_code == 200
    body = response.json()
    live = {f["callsign"]: f for f in client.get("/api/flights").json()["flights"]}
    assert body["flight_id"] == live[pilot["callsign"]]["flight_id"]
    assert body["callsign"] == pilot["callsign"]
    assert (body["departure"], body["arrival"]) == (
        pilot["flight_plan"]["departure"],
        pilot["flight_plan"]["arrival"],
    )
    first, second = body["positions"]
    assert datetime.fromisoformat(first["time"]) == _timestamp(fed.first)
    assert datetime.fromisoformat(second["time"]) == fed.latest
    assert first["latitude"] == pytest.approx(pilot["latitude"])
    assert second["latitude"] == pytest.approx(pilot["latitude"] + 0.01)
    assert second["altitude"] == pilot["altitude"]
    assert set(first) == {"time", "latitude", "longitude", "altitude", "groundspeed", "heading"}


def test_track_by_flight_id_and_lowercase_callsign(fed: Fed, client: TestClient) -> None:
    pilot = fed.first["pilots"][0]
    latest = client.get(f"/api/flights/{pilot['callsign']}/track").json()
    by_id = client.get(
        f"/api/flights/{pilot['callsign']}/track", params={"flight_id": latest["flight_id"]}
    )
    assert by_id.status_code == 200
    assert by_id.json() == latest
    assert client.get(f"/api/flights/{pilot['callsign'].lower()}/track").json() == latest


def test_track_unknown_callsign_is_404(client: TestClient) -> None:
    response = client.get("/api/flights/NOSUCH99/track")
    assert response.status_code == 404
    assert response.json()["detail"] == "no flight recorded for callsign NOSUCH99"


def test_track_flight_id_of_another_callsign_is_404(fed: Fed, client: TestClient) -> None:
    one, other = fed.first["pilots"][0], fed.first["pilots"][1]
    other_id = client.get(f"/api/flights/{other['callsign']}/track").json()["flight_id"]
    response = client.get(f"/api/flights/{one['callsign']}/track", params={"flight_id": other_id})
    assert response.status_code == 404
    assert response.json()["detail"] == (
        f"flight {other_id} not found for callsign {one['callsign']}"
    )
    missing = client.get(f"/api/flights/{one['callsign']}/track", params={"flight_id": 10**9})
    assert missing.status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/api/flights/BAD!/track",
        "/api/flights/BAD%20SIGN/track",
        "/api/flights/%27%3B%20DROP%20TABLE%20flights/track",
        f"/api/flights/{'A' * 33}/track",
        "/api/flights/AAL1765/track?flight_id=0",
        "/api/flights/AAL1765/track?flight_id=-3",
        "/api/flights/AAL1765/track?flight_id=abc",
        f"/api/flights/AAL1765/track?flight_id={2**70}",
    ],
)
def test_track_rejects_bad_parameters_with_422(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert errors[0]["location"].split(".")[0] in {"path", "query"}


def test_track_spans_a_reconnect_of_the_same_flight(tmp_path: Path) -> None:
    engine = _sqlite(tmp_path)
    ingestor = Ingestor(engine, IngestConfig(sanity_min_pilots=1, missed_snapshots_to_end=1))
    doc = _doc()
    doc["pilots"] = doc["pilots"][:20]
    pilot = doc["pilots"][0]
    gone = _advanced(doc)
    gone["pilots"] = gone["pilots"][1:]  # the pilot disconnects ...
    back = _advanced(gone)
    returning = dict(_advanced(doc, seconds=30)["pilots"][0])
    returning["logon_time"] = _iso(_timestamp(back) - timedelta(seconds=5))
    back["pilots"] = [returning, *back["pilots"]]  # ... and reconnects: a new session
    for snapshot in (doc, gone, back):
        assert ingestor.ingest(orjson.dumps(snapshot)).outcome is Outcome.INGESTED

    client = TestClient(create_app(ingestor, stale_after=STALE_AFTER))
    body = client.get(f"/api/flights/{pilot['callsign']}/track").json()
    times = [datetime.fromisoformat(p["time"]) for p in body["positions"]]
    assert times == [_timestamp(doc), _timestamp(back)]
    flights = {f["callsign"]: f for f in client.get("/api/flights").json()["flights"]}
    assert flights[pilot["callsign"]]["flight_id"] == body["flight_id"]
    engine.dispose()


# errors and schema ---------------------------------------------------------------------------


def test_unknown_route_is_json_404(client: TestClient) -> None:
    response = client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "Not Found"


def test_openapi_documents_every_endpoint(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert {
        "/health",
        "/api/status",
        "/api/flights",
        "/api/controllers",
        "/api/flights/{callsign}/track",
        "/api/events/analytics",
        "/api/events/dead-letters",
        "/api/events/dead-letters/{letter_id}",
        "/api/events/dead-letters/{letter_id}/replay",
        "/api/events",
    } <= set(paths)
    for path in paths.values():
        for method, operation in path.items():
            if method == "delete" and "204" in operation["responses"]:
                continue  # no body to describe
            content = operation["responses"]["200"]["content"]
            if "application/json" not in content:
                assert set(content) == {"text/plain"}  # /metrics, Prometheus text format
                continue
            assert "$ref" in content["application/json"]["schema"]
    track = paths["/api/flights/{callsign}/track"]["get"]["responses"]
    not_found = track["404"]["content"]["application/problem+json"]["schema"]
    assert not_found["$ref"].endswith("/ErrorOut")
    assert "503" in paths["/health"]["get"]["responses"]


def test_create_app_rejects_nonpositive_stale_after(fed: Fed) -> None:
    with pytest.raises(ValueError, match="stale_after"):
        create_app(fed.ingestor, stale_after=0)
