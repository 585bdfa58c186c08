"""A node that does not ingest serves the leader's live view: after every snapshot the leader
commits, a ``Follower`` on another connection pool rebuilds from the database exactly the state
the leader holds in memory, and the API answers the same from both.

The feed is the seeded simulator, busier than by default and with pilots, controllers, ATIS and
prefiles missing from some snapshots (so missed counts and session ends matter), a snapshot
without transceivers, a repeated document and one that loses most of the network (quarantined).
Runs on SQLite and, with ``VATSIM_TEST_DATABASE_URL``, on PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tcpproxy import TcpProxy
from vatsim_collector.airspace.engine import AirspaceEngine
from vatsim_collector.airspace.sectors import SectorSet
from vatsim_collector.api import create_app
from vatsim_collector.errors.manager import ErrorManager
from vatsim_collector.pipeline.follower import Follower, LiveViewUnavailable
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor, Outcome
from vatsim_collector.simulator.traffic import SimRates
from vatsim_collector.simulator.world import SimulatedNetwork
from vatsim_collector.store.engine import PoolSettings, create_db_engine
from vatsim_collector.tracking.state import ControllerSession, LiveState, PilotSession

START = datetime(2026, 4, 2, 18, 0, tzinfo=UTC)
TICKS = 36
N = 3  # sessions end after 3 snapshots without them
RATES = replace(
    SimRates(),
    pilot_leave=0.02,
    pilot_join=0.02,
    controller_leave=0.02,
    controller_join=0.02,
    atis_leave=0.02,
    atis_join=0.02,
    amendment=0.01,
    atis_code_change=0.05,
)
CONFIG = IngestConfig(missed_snapshots_to_end=N, sanity_min_pilots=10)
# Ticks whose transceivers document failed to arrive.
NO_TRANSCEIVERS = {9, 10, 25}
# Ticks served twice (the second copy is a duplicate).
REPEATED = {14}
# A tick that lost four fifths of every section: the sanity gate quarantines it.
COLLAPSED = 20


def _thin(data: dict[str, Any], tick: int) -> None:
    """Leave out every 7th record of each section (a different 7th each tick, so some are
    missing for one snapshot, some for longer): sessions with missed counts above zero."""
    for section in ("pilots", "controllers", "atis", "prefiles"):
        records = data[section]
        data[section] = [r for i, r in enumerate(records) if (i + tick // 4) % 7 != 0]


Doc = tuple[bytes, bytes | None]


@pytest.fixture(scope="module")
def docs() -> list[Doc]:
    network = SimulatedNetwork(seed=23, start=START, rates=RATES)
    out: list[Doc] = []
    for tick in range(TICKS):
        data = network.data_document()
        if tick % 3 == 1:
            _thin(data, tick)
        if tick == COLLAPSED:
            for section in ("pilots", "controllers", "atis", "prefiles"):
                data[section] = data[section][::5]
        tx = None if tick in NO_TRANSCEIVERS else orjson.dumps(network.transceivers_document())
        out.append((orjson.dumps(data), tx))
        if tick in REPEATED:
            out.append(out[-1])
        network.tick()
    return out


@pytest.fixture(scope="module")
def sectors() -> SectorSet:
    return SectorSet.default()


def _ingestor(engine: Engine, sectors: SectorSet) -> Ingestor:
    ingestor = Ingestor(engine, CONFIG, airspace=AirspaceEngine(sectors, exit_after=N))
    ingestor.restore()
    return ingestor


@pytest.fixture
def follower_engine(database_url: str, engine: Engine) -> Iterator[Engine]:
    """The follower's own pool on the same database, as another process would have."""
    other = create_db_engine(database_url)
    try:
        yield other
    finally:
        other.dispose()


# ----- what is compared -------------------------------------------------------------------


def _pilot(s: PilotSession) -> tuple[Any, ...]:
    p = s.latest
    f = s.flight
    return (
        s.key,
        s.id,
        s.first_seen,
        s.last_seen,
        s.missed,
        s.plan,
        (f.id, f.cid, f.callsign, f.departure, f.arrival, f.started_at, f.ended_at, f.plan),
        # The record as stored: names are not (VATSIM_STORE_NAMES off), nor qnh_i_hg or
        # last_updated, which nothing reads.
        (p.latitude, p.longitude, p.altitude, p.groundspeed, p.heading, p.transponder),
        (p.qnh_mb, p.server, p.pilot_rating, p.military_rating, p.flight_plan),
    )


def _station(s: ControllerSession) -> tuple[Any, ...]:
    r = s.latest
    return (
        s.key,
        s.kind,
        s.id,
        s.first_seen,
        s.last_seen,
        s.missed,
        (s.frequency, s.facility, s.is_observer, s.is_supervisor),
        (s.atis_code, s.text_atis, s.latitude, s.longitude),
        (r.frequency, r.facility, r.rating, r.server, r.visual_range),
    )


def state_of(state: LiveState) -> dict[str, Any]:
    """Everything of the tracker's state a node serves or a promoted standby goes on from."""
    return {
        "last_snapshot_at": state.last_snapshot_at,
        "last_accepted_clients": state.last_accepted_clients,
        "pilots": sorted(_pilot(s) for s in state.pilots.values()),
        "pilot_by_ident": sorted((k, v.key) for k, v in state.pilot_by_ident.items()),
        "controllers": sorted(_station(s) for s in state.controllers.values()),
        "atis": sorted(_station(s) for s in state.atis.values()),
        "prefiles": sorted(
            (k, e.id, e.plan, e.first_seen, e.last_seen, e.missed)
            for k, e in state.prefiles.items()
        ),
    }


def view_of(ingestor: Ingestor) -> dict[str, Any]:
    live = ingestor.live
    return {
        "snapshot_at": live.snapshot_at,
        "prefiles": live.prefiles,
        "pilots": sorted(_pilot(s) for s in live.pilots),
        "controllers": sorted(_station(s) for s in live.controllers),
        "atis": sorted(_station(s) for s in live.atis),
    }


def airspace_of(ingestor: Ingestor) -> dict[str, Any]:
    assert ingestor.airspace is not None
    state = ingestor.airspace.engine.state
    return {
        "occupancy": sorted(
            (pilot, o.sector, o.entered_at, o.entry, o.last_inside_at, o.last_inside, o.outside)
            for pilot, sectors in state.occupancy.items()
            for o in sectors.values()
        ),
        "contacts": sorted(
            (key, c.frequency_hz, c.started_at, c.last_contact_at)
            for key, c in state.contacts.items()
        ),
        "frequencies": sorted(ingestor.airspace.frequencies.items()),
    }


def transceivers_of(ingestor: Ingestor) -> dict[str, Any] | None:
    """The document as /api/transceivers shows it: per station (a later entry wins), its
    radios; stations without radios are not listed."""
    if ingestor.last_transceivers is None:
        return None
    latest = {s.callsign: s for s in ingestor.last_transceivers}
    return {
        callsign: [
            (x.id, x.frequency, x.latDeg, x.lonDeg, x.heightMslM, x.heightAglM)
            for x in station.transceivers
        ]
        for callsign, station in sorted(latest.items())
        if station.transceivers
    }


def differences(leader: dict[str, Any], follower: dict[str, Any]) -> dict[str, Any]:
    """Per key, what only one side has (lists) or both values (anything else)."""
    found: dict[str, Any] = {}
    for key in leader.keys() | follower.keys():
        a, b = leader.get(key), follower.get(key)
        if a == b:
            continue
        if isinstance(a, list) and isinstance(b, list):
            found[key] = {
                "leader only": [x for x in a if x not in b][:3],
                "follower only": [x for x in b if x not in a][:3],
            }
        else:
            found[key] = (a, b)
    return found


# ----- the tests --------------------------------------------------------------------------


def test_a_follower_rebuilds_the_leaders_view_after_every_snapshot(
    engine: Engine, follower_engine: Engine, sectors: SectorSet, docs: list[Doc]
) -> None:
    leader = _ingestor(engine, sectors)
    follower = Follower(
        Ingestor(follower_engine, CONFIG, airspace=AirspaceEngine(sectors, exit_after=N))
    )
    assert follower.refresh_once() is True  # the first call always loads
    assert follower.ingestor.live.snapshot_at is None
    outcomes: list[Outcome] = []
    for raw, tx in docs:
        outcome = leader.ingest(raw, transceivers_raw=tx).outcome
        outcomes.append(outcome)
        rebuilt = follower.refresh_once()
        # Only a new snapshot row (accepted or quarantined) makes the follower rebuild.
        assert rebuilt is (outcome in (Outcome.INGESTED, Outcome.QUARANTINED))
        ours, theirs = follower.ingestor, leader
        at = theirs.live.snapshot_at
        assert differences(view_of(theirs), view_of(ours)) == {}, at
        assert differences(state_of(theirs.state), state_of(ours.state)) == {}, at
        assert differences(airspace_of(theirs), airspace_of(ours)) == {}, at
        assert transceivers_of(theirs) == transceivers_of(ours), at
    # The run had what it was built for: sessions missed, ended and resumed, no transceivers,
    # a duplicate and a quarantine.
    assert outcomes.count(Outcome.DUPLICATE) == len(REPEATED)
    assert outcomes.count(Outcome.QUARANTINED) == 1
    assert leader.stats.pilot_sessions_closed > 0
    assert leader.stats.atis_sessions_closed > 0
    assert any(s.missed for s in leader.state.pilots.values())
    assert leader.last_transceivers is not None


def test_the_api_answers_the_same_from_the_leader_and_a_follower(
    engine: Engine, follower_engine: Engine, sectors: SectorSet, docs: list[Doc]
) -> None:
    leader = _ingestor(engine, sectors)
    follower = Follower(
        Ingestor(follower_engine, CONFIG, airspace=AirspaceEngine(sectors, exit_after=N))
    )
    apps = [
        TestClient(create_app(ingestor, stale_after=1e9, sectors=sectors))
        for ingestor in (leader, follower.ingestor)
    ]
    paths = (
        "/api/flights",
        "/api/controllers",
        "/api/transceivers?limit=500",
        "/api/sectors/busiest?limit=500",
    )

    def answers(client: TestClient) -> dict[str, Any]:
        out: dict[str, Any] = {path: client.get(path).json() for path in paths}
        status = client.get("/api/status").json()
        out["status"] = {k: status[k] for k in ("last_snapshot_at", "live", "freshness")}
        return out

    compared = 0
    for tick, (raw, tx) in enumerate(docs):
        leader.ingest(raw, transceivers_raw=tx)
        follower.refresh_once()
        if tick % 4 and tick != len(docs) - 1:
            continue  # every request of every path is not needed to show it
        mine, theirs = (answers(client) for client in apps)
        assert mine == theirs, tick
        assert theirs["/api/flights"]["flights"]
        compared += 1
    assert compared >= 8


def test_forgetting_through_a_follower_rebuilds_its_view(
    engine: Engine, follower_engine: Engine, sectors: SectorSet, docs: list[Doc]
) -> None:
    """No new snapshot, but the view changed under it: ``invalidate`` makes the next refresh
    rebuild, and the rebuilt view no longer has the member."""
    leader = _ingestor(engine, sectors)
    for raw, tx in docs[:3]:
        leader.ingest(raw, transceivers_raw=tx)
    follower = Follower(Ingestor(follower_engine, CONFIG))
    assert follower.refresh_once() is True
    assert follower.refresh_once() is False
    cid = follower.ingestor.live.pilots[0].cid
    key = "forget-key"
    client = TestClient(create_app(follower.ingestor, stale_after=1e9, api_keys=[("admin", key)]))
    answer = client.delete(f"/api/members/{cid}", headers={"X-API-Key": key})
    assert answer.status_code == 200, answer.text
    assert follower.ingestor.restore_needed
    assert follower.refresh_once() is True
    assert cid not in {s.cid for s in follower.ingestor.live.pilots}
    assert follower.refresh_once() is False


def test_a_member_forgotten_through_another_node_costs_the_leader_no_snapshot(
    engine: Engine, follower_engine: Engine, sectors: SectorSet, docs: list[Doc]
) -> None:
    """The leader's memory still holds the forgotten member's session ids; its next write is
    refused by the database, and it tries once more on the state rebuilt from the database
    instead of holding the snapshot."""
    leader = _ingestor(engine, sectors)
    for raw, tx in docs[:3]:
        leader.ingest(raw, transceivers_raw=tx)
    follower = Follower(Ingestor(follower_engine, CONFIG))
    assert follower.refresh_once() is True
    present = {s.cid for s in leader.live.pilots}
    cid = next(s.cid for s in follower.ingestor.live.pilots if s.cid in present)
    key = "forget-key"
    client = TestClient(create_app(follower.ingestor, stale_after=1e9, api_keys=[("admin", key)]))
    assert client.delete(f"/api/members/{cid}", headers={"X-API-Key": key}).status_code == 200
    outcomes = [leader.ingest(raw, transceivers_raw=tx).outcome for raw, tx in docs[3:6]]
    assert outcomes == [Outcome.INGESTED] * 3
    assert leader.stats.snapshots_held == 0


def test_a_follower_keeps_its_view_while_the_database_is_away(
    proxied_postgresql: tuple[str, TcpProxy], engine: Engine, docs: list[Doc]
) -> None:
    """Cut from PostgreSQL, the follower keeps serving the last view and reports the outage
    once however long it lasts; back, it catches up."""
    url, proxy = proxied_postgresql
    leader = Ingestor(engine, CONFIG)
    leader.restore()
    leader.ingest(docs[0][0], transceivers_raw=docs[0][1])
    pool = PoolSettings(size=1, max_overflow=0, timeout=2)
    through_proxy = create_db_engine(url, pool=pool)
    errors = ErrorManager(None)
    follower = Follower(Ingestor(through_proxy, CONFIG), interval=0.05, errors=errors)
    try:
        assert follower.refresh_once() is True
        before = follower.ingestor.live
        proxy.cut()
        for raw, tx in docs[1:3]:
            assert leader.ingest(raw, transceivers_raw=tx).outcome is Outcome.INGESTED
        with pytest.raises(LiveViewUnavailable, match="database unavailable"):
            follower.refresh_once()
        assert follower.ingestor.live is before
        # Several refreshes fail in a row: one error record.
        assert _run_in_loop(follower.run, lambda: follower.failures >= 4)
        assert errors.recorded == 1
        assert follower.ingestor.live is before
        proxy.restore()
        at = leader.live.snapshot_at
        assert _run_in_loop(follower.run, lambda: follower.ingestor.live.snapshot_at == at)
        assert differences(view_of(leader), view_of(follower.ingestor)) == {}
    finally:
        through_proxy.dispose()


def _run_in_loop(run: Callable[[asyncio.Event], Any], until: Callable[[], bool]) -> bool:
    async def main() -> bool:
        stop = asyncio.Event()
        task = asyncio.create_task(run(stop))
        try:
            for _ in range(200):
                if until():
                    return True
                await asyncio.sleep(0.05)
            return False
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)

    return asyncio.run(main())


def test_run_follows_until_stopped(
    engine: Engine, follower_engine: Engine, docs: list[Doc]
) -> None:
    leader = Ingestor(engine, CONFIG)
    leader.restore()
    follower = Follower(Ingestor(follower_engine, CONFIG), interval=0.05)
    leader.ingest(docs[0][0], transceivers_raw=docs[0][1])
    at = leader.live.snapshot_at
    assert _run_in_loop(follower.run, lambda: follower.ingestor.live.snapshot_at == at)
    assert follower.failures == 0


def test_a_bad_interval_is_refused(engine: Engine) -> None:
    with pytest.raises(ValueError, match="interval"):
        Follower(Ingestor(engine, CONFIG), interval=0)
