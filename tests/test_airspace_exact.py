"""Airspace analytics from the simulator: restarts split nothing, ``recompute`` reproduces live
processing exactly, and stored coverage equals coverage computed from first principles."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.engine import make_url

from feeds import parse_time
from vatsim_collector.airspace.engine import AirspaceEngine
from vatsim_collector.airspace.sectors import SectorSet
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor, Outcome
from vatsim_collector.pipeline.recompute import recompute
from vatsim_collector.simulator.traffic import SimRates
from vatsim_collector.simulator.world import SimulatedNetwork
from vatsim_collector.store import schema as t
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.migrate import upgrade
from vatsim_collector.store.summaries_store import SummaryWriter

START = datetime(2026, 3, 1, 22, 30, tzinfo=UTC)
TICKS = 48
N = 2  # sessions end, and sectors are left, after 2 snapshots without them
# Busier than the defaults, so a short run has pilots leaving, joining and reconnecting.
RATES = replace(
    SimRates(), pilot_leave=0.02, pilot_join=0.02, controller_leave=0.01, controller_join=0.01
)
# Ticks whose transceivers document "failed": nobody has radios then, live or recomputed.
NO_TRANSCEIVERS = {7, 8, 30}

Doc = tuple[bytes, bytes | None]


@pytest.fixture(scope="module")
def sectors() -> SectorSet:
    return SectorSet.default()


@pytest.fixture(scope="module")
def docs() -> list[Doc]:
    network = SimulatedNetwork(seed=11, start=START, rates=RATES)
    out: list[Doc] = []
    for i in range(TICKS):
        tx = None if i in NO_TRANSCEIVERS else orjson.dumps(network.transceivers_document())
        out.append((orjson.dumps(network.data_document()), tx))
        network.tick()
    return out


def ingestor(engine: Engine, sectors: SectorSet) -> Ingestor:
    ing = Ingestor(
        engine,
        IngestConfig(missed_snapshots_to_end=N),
        airspace=AirspaceEngine(sectors, exit_after=N),
    )
    ing.restore()
    return ing


def collect(engine: Engine, sectors: SectorSet, docs: list[Doc], restart_every: int = 0) -> None:
    ing = ingestor(engine, sectors)
    for i, (raw, tx) in enumerate(docs):
        if restart_every and i and i % restart_every == 0:
            ing = ingestor(engine, sectors)  # a new process: state only from the database
        assert ing.ingest(raw, transceivers_raw=tx).outcome is Outcome.INGESTED
    summarise_all(DatabaseService.for_engine(engine))


def summarise_all(db: DatabaseService) -> None:
    """What the summaries handler does on every disconnect event."""
    writer = SummaryWriter(db)
    with db.read("test.ended") as conn:
        flights = conn.execute(select(t.flights.c.id)).scalars().all()
        controllers = conn.execute(select(t.controller_sessions.c.id)).scalars().all()
    for flight_id in flights:
        writer.flight(flight_id)
    for session_id in controllers:
        writer.controller(session_id)


def rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every analytics row, without surrogate ids and computation times, in a fixed order."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    skip = {"id", "computed_at"}
    with engine.connect() as conn:
        for table in (
            t.sector_occupancy,
            t.contact_intervals,
            t.controller_frequencies,
            t.flight_summaries,
            t.controller_summaries,
        ):
            columns = [c for c in table.c if c.name not in skip]
            out[table.name] = sorted(tuple(r) for r in conn.execute(select(*columns)))
    return out


@dataclass
class Fresh:
    url: str
    engine: Engine


@pytest.fixture
def second_database(database_url: str) -> Iterator[Fresh]:
    """Another empty database of the same kind as ``engine``'s, dropped afterwards."""
    if database_url.startswith("sqlite"):
        engine = create_engine(database_url.replace(".db", "-second.db"))
        upgrade(engine)
        yield Fresh(str(engine.url), engine)
        engine.dispose()
        return
    url = make_url(database_url)
    name = f"{url.database}_second"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(url.set(database=name))
    try:
        upgrade(engine)
        yield Fresh(name, engine)
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_restarts_split_nothing(
    engine: Engine, second_database: Fresh, sectors: SectorSet, docs: list[Doc]
) -> None:
    collect(engine, sectors, docs)
    collect(second_database.engine, sectors, docs, restart_every=5)
    straight, restarted = rows(engine), rows(second_database.engine)
    assert len(straight["sector_occupancy"]) > 100
    assert len(straight["contact_intervals"]) > 50
    assert any(r[-2] is not None for r in straight["contact_intervals"])  # some ended
    assert straight == restarted


def test_recompute_reproduces_live_processing_exactly(
    engine: Engine, sectors: SectorSet, docs: list[Doc]
) -> None:
    collect(engine, sectors, docs)
    live = rows(engine)
    db = DatabaseService.for_engine(engine)
    first, last = START, START + timedelta(seconds=15 * (TICKS - 1))

    def factory() -> AirspaceEngine:
        return AirspaceEngine(sectors, exit_after=N)

    everything = recompute(db, factory, start=first, end=last, missed_to_end=N)
    assert everything.occupancies_deleted == len(live["sector_occupancy"])
    assert everything.occupancies_written == len(live["sector_occupancy"])
    assert rows(engine) == live

    middle = recompute(
        db,
        factory,
        start=first + timedelta(minutes=5),
        end=first + timedelta(minutes=6),
        missed_to_end=N,
    )
    assert 0 < middle.pilot_sessions < everything.pilot_sessions
    assert rows(engine) == live


def haversine_nm(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 3440.065 * math.asin(math.sqrt(min(1.0, a)))


RANGE_NM = {1: 1000, 2: 15, 3: 15, 4: 15, 5: 60, 6: 400}


def in_contact(
    pilot_freqs: set[int],
    pilot: dict[str, Any],
    ctrl: dict[str, Any],
    ctrl_tx: list[dict[str, Any]],
) -> bool:
    """The contact rule from scratch: 5 kHz, range by facility, no observers, centroid."""
    if ctrl["facility"] == 0 or ctrl["frequency"] == "199.998" or ctrl["callsign"].endswith("_OBS"):
        return False
    placed = [x for x in ctrl_tx if x.get("latDeg") is not None]
    if not placed or ctrl["facility"] not in RANGE_NM:
        return False
    xs = [math.cos(math.radians(x["latDeg"])) * math.cos(math.radians(x["lonDeg"])) for x in placed]
    ys = [math.cos(math.radians(x["latDeg"])) * math.sin(math.radians(x["lonDeg"])) for x in placed]
    zs = [math.sin(math.radians(x["latDeg"])) for x in placed]
    x, y, z = sum(xs), sum(ys), sum(zs)
    lat, lon = math.degrees(math.atan2(z, math.hypot(x, y))), math.degrees(math.atan2(y, x))
    tuned = {round(float(ctrl["frequency"]) * 1e6)} | {x["frequency"] for x in ctrl_tx}
    if not any(abs(p - c) <= 5000 for p in pilot_freqs for c in tuned if c > 0):
        return False
    return (
        haversine_nm(pilot["latitude"], pilot["longitude"], lat, lon) <= RANGE_NM[ctrl["facility"]]
    )


def test_stored_coverage_equals_first_principles(
    engine: Engine, sectors: SectorSet, docs: list[Doc]
) -> None:
    collect(engine, sectors, docs)
    # Per connection and snapshot: the controllers (by connection) the pilot is in contact with.
    contact: dict[tuple[int, str, datetime], list[tuple[datetime, set[tuple[int, str, str]]]]] = (
        defaultdict(list)
    )
    for raw, tx in docs:
        doc = orjson.loads(raw)
        at = parse_time(doc["general"]["update_timestamp"])
        stations = {s["callsign"]: s["transceivers"] for s in orjson.loads(tx)} if tx else {}
        for pilot in doc["pilots"]:
            freqs = {x["frequency"] for x in stations.get(pilot["callsign"], []) if x["frequency"]}
            with_whom = {
                (c["cid"], c["callsign"], c["logon_time"])
                for c in doc["controllers"]
                if freqs and in_contact(freqs, pilot, c, stations.get(c["callsign"], []))
            }
            key = (pilot["cid"], pilot["callsign"], parse_time(pilot["logon_time"]))
            contact[key].append((at, with_whom))
    # A pair of consecutive snapshots of a connection is covered when one controller is in
    # contact at both ends; coverage = covered time / online time, summed over a flight.
    with engine.connect() as conn:
        sessions = conn.execute(select(t.pilot_sessions)).all()
        stored = {r.flight_id: r.coverage for r in conn.execute(select(t.flight_summaries))}
    online: dict[int, float] = defaultdict(float)
    covered: dict[int, float] = defaultdict(float)
    for s in sessions:
        samples = contact[(s.cid, s.callsign, s.logon_time)]
        for (t0, c0), (t1, c1) in itertools.pairwise(samples):
            dt = (t1 - t0).total_seconds()
            online[s.flight_id] += dt
            covered[s.flight_id] += dt if c0 & c1 else 0.0
    expected = {f: (covered[f] / online[f] if online[f] else None) for f in online}
    assert stored, "no flight ended: the run is too short to test anything"
    compared = 0
    for flight_id, coverage in stored.items():
        want = expected.get(flight_id)
        if want is None:
            assert coverage is None
        else:
            assert coverage == pytest.approx(want, abs=1e-12)
            compared += 1
    assert compared > 10
    assert any(c for c in stored.values()), "no ended flight had any ATC coverage"
