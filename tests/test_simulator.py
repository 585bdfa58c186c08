from __future__ import annotations

import gzip
import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from vatsim_collector.simulator.geo import (
    FACILITY_RANGE_NM,
    distance_nm,
    frequency_hz,
    initial_bearing,
    parse_feed_time,
)
from vatsim_collector.simulator.server import create_simulator_app
from vatsim_collector.simulator.world import SimRates, SimulatedNetwork, load_seed_snapshot

BASE = "http://sim.test"
START = datetime(2024, 5, 1, 18, 0, 0, tzinfo=UTC)
_SNAPSHOT = load_seed_snapshot()


def _network(seed: int = 7, **rates: float) -> SimulatedNetwork:
    return SimulatedNetwork(_SNAPSHOT, seed=seed, start=START, rates=SimRates(**rates))


def _one_pilot_snapshot(lat: float, lon: float, heading: int, gs: int) -> dict[str, Any]:
    pilot = dict(_SNAPSHOT["pilots"][0])
    pilot.update(latitude=lat, longitude=lon, heading=heading, groundspeed=gs, altitude=35000)
    return {**_SNAPSHOT, "pilots": [pilot], "controllers": [], "atis": [], "prefiles": []}


class _FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_same_seed_replays_identically_and_other_seed_differs() -> None:
    a, b, c = _network(1), _network(1), _network(2)
    for _ in range(20):
        for net in (a, b, c):
            net.tick()
        assert orjson.dumps(a.data_document()) == orjson.dumps(b.data_document())
        assert a.transceivers_document() == b.transceivers_document()
    assert a.data_document() != c.data_document()


def test_document_has_v3_shape_and_round_trips_json() -> None:
    net = _network()
    net.tick()
    doc = json.loads(orjson.dumps(net.data_document()))
    general = doc["general"]
    assert general["version"] == 3
    assert general["update_timestamp"] == "2024-05-01T18:00:15.0000000Z"
    assert general["update"] == "20240501180015"
    for key in ("pilots", "controllers", "atis", "servers", "prefiles", "facilities", "ratings"):
        assert isinstance(doc[key], list)
    clients = doc["pilots"] + doc["controllers"] + doc["atis"]
    assert general["connected_clients"] == len(clients)
    assert general["unique_users"] == len({c["cid"] for c in clients})
    update = parse_feed_time(general["update_timestamp"])
    for client in clients:
        assert parse_feed_time(client["logon_time"]) <= update
        assert parse_feed_time(client["last_updated"]) <= update
        assert client["last_updated"].endswith("Z")
        assert len(client["last_updated"]) == 28
    assert set(doc["pilots"][0]) >= {"cid", "callsign", "latitude", "flight_plan", "qnh_mb"}


def test_update_timestamp_advances_exactly_one_tick() -> None:
    net = _network()
    stamps = [parse_feed_time(net.update_timestamp)]
    for _ in range(5):
        net.tick()
        stamps.append(parse_feed_time(net.data_document()["general"]["update_timestamp"]))
    assert stamps[0] == START
    assert all(b - a == timedelta(seconds=15) for a, b in itertools.pairwise(stamps))


def test_aircraft_moves_east_along_equator() -> None:
    net = SimulatedNetwork(
        _one_pilot_snapshot(0.0, 10.0, 90, 480),
        seed=3,
        rates=SimRates(pilot_leave=0, pilot_join=0, heading_jitter_deg=0, altitude_jitter_ft=0),
    )
    net.tick()
    (pilot,) = net.data_document()["pilots"]
    assert pilot["latitude"] == pytest.approx(0.0, abs=1e-5)
    assert pilot["longitude"] - 10.0 == pytest.approx(480 * 15 / 3600 / 60, abs=5e-5)


def test_longitude_wraps_at_antimeridian() -> None:
    net = SimulatedNetwork(
        _one_pilot_snapshot(0.0, 179.99, 90, 480),
        seed=3,
        rates=SimRates(pilot_leave=0, pilot_join=0),
    )
    net.tick()
    (pilot,) = net.data_document()["pilots"]
    assert -180.0 < pilot["longitude"] < -179.9


def test_moving_aircraft_follow_their_heading() -> None:
    net = _network(pilot_leave=0, pilot_join=0)
    before = {p["callsign"]: p for p in net.data_document()["pilots"]}
    net.tick()
    checked = 0
    for after in net.data_document()["pilots"]:
        prev = before[after["callsign"]]
        if prev["groundspeed"] < 100 or abs(prev["latitude"]) > 70:
            continue
        args = (prev["latitude"], prev["longitude"], after["latitude"], after["longitude"])
        assert distance_nm(*args) == pytest.approx(prev["groundspeed"] * 15 / 3600, rel=0.05)
        turn = (initial_bearing(*args) - prev["heading"] + 180) % 360 - 180
        assert abs(turn) < 2.0
        checked += 1
    assert checked > 100


def test_clients_come_and_go_but_population_is_stable() -> None:
    net = _network(11)
    first = net.data_document()
    seen_logons: dict[tuple[int, str], set[str]] = {}
    revisions: dict[str, int] = {}
    amended = False
    for _ in range(100):
        net.tick()
        for p in net.data_document()["pilots"]:
            seen_logons.setdefault((p["cid"], p["callsign"]), set()).add(p["logon_time"])
            if p["flight_plan"]:
                rev = p["flight_plan"]["revision_id"]
                amended |= rev > revisions.setdefault(p["callsign"], rev)
    last = net.data_document()

    def ids(doc: dict[str, Any], kind: str) -> set[tuple[int, str]]:
        return {(c["cid"], c["callsign"]) for c in doc[kind]}

    for kind in ("pilots", "controllers"):
        assert ids(first, kind) - ids(last, kind), f"no {kind} left"
        assert ids(last, kind) - ids(first, kind), f"no {kind} joined"
        assert 0.7 * len(first[kind]) <= len(last[kind]) <= 1.3 * len(first[kind])
    assert any(len(logons) > 1 for logons in seen_logons.values()), "no reconnects"
    assert amended, "no flight plan amendments"
    assert any(
        p["flight_plan"] is None
        for p in last["pilots"]
        if (p["cid"], p["callsign"]) not in ids(first, "pilots")
    )
    cids = [p["cid"] for p in last["pilots"]]
    callsigns = [p["callsign"] for p in last["pilots"]]
    assert len(set(callsigns)) == len(callsigns)
    assert len(set(cids)) == len(cids)


def test_every_client_has_transceivers_and_pilots_tune_nearby_controllers() -> None:
    net = _network()
    for _ in range(3):
        net.tick()
    doc = net.data_document()
    radios = {entry["callsign"]: entry["transceivers"] for entry in net.transceivers_document()}
    assert {p["callsign"] for p in doc["pilots"]} <= set(radios)
    assert {c["callsign"] for c in doc["controllers"]} <= set(radios)
    # Controllers have no position in the feed; recover each station from its transceivers.
    stations = [
        (radios[c["callsign"]][0], frequency_hz(c["frequency"]), FACILITY_RANGE_NM[c["facility"]])
        for c in doc["controllers"]
        if c["facility"] in FACILITY_RANGE_NM
    ]
    for c in doc["controllers"]:
        if c["facility"] != 0:
            assert 1 <= len(radios[c["callsign"]]) <= 4
    tuned = 0
    for p in doc["pilots"]:
        assert 1 <= len(radios[p["callsign"]]) <= 2
        com1 = radios[p["callsign"]][0]
        assert abs(com1["latDeg"] - p["latitude"]) < 1e-4
        for station, hz, range_nm in stations:
            near = distance_nm(com1["latDeg"], com1["lonDeg"], station["latDeg"], station["lonDeg"])
            if abs(com1["frequency"] - hz) <= 5000 and near <= range_nm + 5:
                tuned += 1
                break
    assert tuned >= 20
    unicom = [
        r[0]["frequency"] for r in radios.values() if r and r[0]["frequency"] // 10**5 == 1228
    ]
    assert any(f != 122_800_000 for f in unicom), "no off-channel pilots"


def test_status_points_at_own_urls() -> None:
    client = TestClient(create_simulator_app(_network(), speed=0, base_url=BASE + "/"))
    status = client.get("/status.json").json()
    assert status["data"]["v3"] == [f"{BASE}/v3/vatsim-data.json"]
    assert status["data"]["transceivers"] == [f"{BASE}/v3/transceivers-data.json"]
    for url in status["data"]["v3"] + status["data"]["transceivers"]:
        assert client.get(url.removeprefix(BASE)).status_code == 200


def test_same_tick_is_identical_and_manual_tick_advances() -> None:
    client = TestClient(create_simulator_app(_network(), speed=0, base_url=BASE))
    first = client.get("/v3/vatsim-data.json")
    assert client.get("/v3/vatsim-data.json").content == first.content
    ticked = client.post("/_sim/tick").json()
    second = client.get("/v3/vatsim-data.json").json()
    assert ticked["update_timestamp"] == second["general"]["update_timestamp"]
    delta = parse_feed_time(ticked["update_timestamp"]) - parse_feed_time(
        first.json()["general"]["update_timestamp"]
    )
    assert delta == timedelta(seconds=15)


def test_wall_clock_catches_up_missed_ticks() -> None:
    clock = _FakeClock()
    app = create_simulator_app(_network(), speed=10.0, base_url=BASE, clock=clock)
    client = TestClient(app)
    stamp = parse_feed_time(
        client.get("/v3/vatsim-data.json").json()["general"]["update_timestamp"]
    )
    clock.now += 1.4  # below one tick at 10x (1.5 s)
    same = client.get("/v3/vatsim-data.json").json()["general"]["update_timestamp"]
    assert parse_feed_time(same) == stamp
    clock.now += 4.6  # 6 s in total: four ticks at 10x
    later = client.get("/v3/vatsim-data.json").json()["general"]["update_timestamp"]
    assert parse_feed_time(later) - stamp == timedelta(seconds=60)


def test_gzip_is_honoured() -> None:
    client = TestClient(create_simulator_app(_network(), speed=0, base_url=BASE))
    zipped = client.get("/v3/vatsim-data.json", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.json()["general"]["version"] == 3
    plain = client.get("/v3/vatsim-data.json", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert len(gzip.compress(plain.content)) < len(plain.content)
    assert plain.json() == zipped.json()


def test_fault_modes() -> None:
    client = TestClient(create_simulator_app(_network(), speed=0, base_url=BASE))
    good = client.get("/v3/vatsim-data.json").content

    assert client.post("/_sim/fault", json={"mode": "http500"}).status_code == 200
    assert client.get("/v3/vatsim-data.json").status_code == 500
    assert client.get("/v3/transceivers-data.json").status_code == 500

    client.post("/_sim/fault", json={"mode": "malformed"})
    broken = client.get("/v3/vatsim-data.json")
    assert broken.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken.content)

    client.post("/_sim/fault", json={"mode": "stale"})
    client.post("/_sim/tick")
    assert client.get("/v3/vatsim-data.json").content == good

    client.post("/_sim/fault", json={"mode": "none"})
    fresh = client.get("/v3/vatsim-data.json").json()
    assert fresh["general"]["update_timestamp"] != json.loads(good)["general"]["update_timestamp"]

    assert client.post("/_sim/fault", json={"mode": "explode"}).status_code == 400
