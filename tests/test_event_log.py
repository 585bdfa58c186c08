"""The persisted event log on a real database: round trips, filters, keyset paging, duplicates."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine, insert

from vatsim_collector.config import Settings
from vatsim_collector.events.event import KNOWN_TYPES, Event, EventCodecError
from vatsim_collector.events.payloads import (
    AtisChanged,
    ContactEnded,
    ContactStarted,
    ControllerConnected,
    ControllerDisconnected,
    EventLogGap,
    FlightDeparted,
    FlightDiverted,
    FlightGoAround,
    FlightLanded,
    FlightplanAmended,
    FlightplanFiled,
    FlightTouchAndGo,
    Payload,
    PilotConnected,
    PilotDisconnected,
    SectorEntered,
    SectorExited,
    SnapshotReceived,
)
from vatsim_collector.store import schema as t
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.event_log import EventLog

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(engine: Engine) -> DatabaseService:
    return DatabaseService.for_engine(engine)


def one_of_each(at: datetime) -> list[Payload]:
    """A payload of every event type, with optional fields both set and unset."""
    plan: dict[str, Any] = {
        "session_id": 7,
        "flight_id": 3,
        "cid": 1234567,
        "callsign": "BAW12",
        "flight_rules": "I",
        "aircraft": "B77W/H-SDE3FGHIJ4J5M1RWXY/LB1D1",
        "departure": "EGLL",
        "arrival": "KJFK",
        "alternate": "KBOS",
        "altitude": "35000",
        "route": "DET L6 DVR UL9 KONAN",
    }
    return [
        SnapshotReceived(
            snapshot_id=t.snapshot_id_for(at),
            update_timestamp=at,
            outcome="ingested",
            pilots=1200,
            controllers=150,
            atis=40,
            prefiles=60,
            transceivers=None,
        ),
        PilotConnected(
            session_id=7,
            flight_id=3,
            cid=1234567,
            callsign="BAW12",
            logon_time=at - timedelta(minutes=5),
            latitude=51.4706,
            longitude=-0.461941,
            altitude=83,
            departure="EGLL",
            arrival=None,
            resumed=True,
        ),
        PilotDisconnected(
            session_id=8,
            flight_id=4,
            cid=7654321,
            callsign="DLH4AB",
            logon_time=at - timedelta(hours=2),
            first_seen=at - timedelta(hours=2),
            last_seen=at - timedelta(minutes=1),
        ),
        FlightplanFiled(**plan, revision_id=None),
        FlightplanAmended(**plan, revision_id=4, changed=("route", "altitude")),
        ControllerConnected(
            session_id=9,
            cid=1111111,
            callsign="EGLL_N_TWR",
            logon_time=at,
            frequency="118.505",
            facility=4,
            rating=5,
            observer=False,
            supervisor=False,
        ),
        ControllerDisconnected(
            session_id=9,
            cid=1111111,
            callsign="EGLL_N_TWR",
            logon_time=at - timedelta(hours=1),
            first_seen=at - timedelta(hours=1),
            last_seen=at,
        ),
        AtisChanged(
            session_id=10,
            cid=2222222,
            callsign="EGLL_ATIS",
            frequency="128.075",
            atis_code="K",
            text=("HEATHROW INFORMATION K", "RWY 27L"),
        ),
        SectorEntered(
            session_id=7,
            flight_id=3,
            cid=1234567,
            callsign="BAW12",
            sector="EGTT",
            latitude=51.5,
            longitude=-0.2,
            altitude=6000,
        ),
        SectorExited(
            session_id=7,
            flight_id=3,
            cid=1234567,
            callsign="BAW12",
            sector="EGTT",
            entered_at=at - timedelta(minutes=30),
            exited_at=at,
            latitude=51.0,
            longitude=2.0,
            altitude=35000,
        ),
        ContactStarted(
            pilot_session_id=7,
            flight_id=3,
            callsign="BAW12",
            controller_session_id=9,
            controller_callsign="EGLL_N_TWR",
            frequency_hz=118_505_000,
        ),
        ContactEnded(
            pilot_session_id=7,
            flight_id=3,
            callsign="BAW12",
            controller_session_id=9,
            controller_callsign="EGLL_N_TWR",
            frequency_hz=118_505_000,
            started_at=at - timedelta(minutes=3),
            ended_at=at,
        ),
        FlightDeparted(
            session_id=7,
            flight_id=3,
            cid=1234567,
            callsign="BAW12",
            airport="LFPG",
            at=at - timedelta(seconds=3600),
            runway_heading=267,
            filed_arrival="EGLL",
            diversion=False,
        ),
        FlightGoAround(
            session_id=7,
            flight_id=3,
            cid=1234567,
            callsign="BAW12",
            airport="EGLL",
            at=at - timedelta(seconds=700),
            runway_heading=None,
            filed_arrival="EGLL",
            diversion=False,
        ),
        FlightTouchAndGo(
            session_id=7,
            flight_id=3,
            cid=1234567,
            callsign="BAW12",
            airport=None,
            at=at - timedelta(seconds=600),
            runway_heading=None,
            filed_arrival="EGLL",
            diversion=False,
        ),
        FlightLanded(
            session_id=7,
            flight_id=3,
            cid=1234567,
            callsign="BAW12",
            airport="EGKK",
            at=at - timedelta(seconds=20),
            runway_heading=259,
            filed_arrival="EGLL",
            diversion=True,
        ),
        FlightDiverted(
            session_id=7,
            flight_id=3,
            cid=1234567,
            callsign="BAW12",
            airport="EGKK",
            at=at - timedelta(seconds=20),
            runway_heading=259,
            filed_arrival="EGLL",
            diversion=True,
        ),
        EventLogGap(
            snapshot_time=at,
            first_time=at,
            last_time=at,
            events=3,
            lost={"pilot.connected": 2, "sector.entered": 1},
        ),
    ]


def events_of(payloads: Sequence[Payload], at: datetime, step: timedelta) -> list[Event]:
    return [Event.create(p, time=at + i * step, source="test") for i, p in enumerate(payloads)]


def ordered(events: Sequence[Event]) -> list[Event]:
    return sorted(events, key=lambda e: (e.time, e.id))


def test_every_payload_type_round_trips(db: DatabaseService) -> None:
    payloads = one_of_each(T0)
    assert {type(p).__struct_config__.tag for p in payloads} == KNOWN_TYPES
    events = events_of(payloads, T0, timedelta(seconds=15))
    # An offset that is not UTC, and a correlation id: both must come back as they went in.
    events[1] = Event.create(
        payloads[1],
        time=T0.astimezone(timezone(timedelta(hours=-5))),
        source="ingest",
        correlation_id=events[0].id,
    )
    log = EventLog(db)
    assert log.write(events) == len(events)

    stored = log.read()
    assert stored == ordered(events)
    assert all(e.time.tzinfo == UTC for e in stored)
    assert stored[1].correlation_id == events[0].id
    assert log.count() == len(events)


def test_a_duplicate_id_is_ignored(db: DatabaseService) -> None:
    log = EventLog(db)
    first, second = events_of(one_of_each(T0)[:2], T0, timedelta(seconds=1))
    assert log.write([first]) == 1
    imposter = Event.create(first.payload, time=T0, source="elsewhere", event_id=first.id)
    assert log.write([imposter, second, second]) == 3  # offered, not stored
    assert log.read() == [first, second]


def test_time_range_is_start_inclusive_and_end_exclusive(db: DatabaseService) -> None:
    log = EventLog(db)
    events = events_of(one_of_each(T0), T0, timedelta(minutes=1))
    log.write(events)
    start, end = events[2].time, events[5].time
    assert log.read(start=start, end=end) == events[2:5]
    assert log.count(start=start, end=end) == 3
    assert log.read(start=start) == events[2:]
    assert log.read(end=end) == events[:5]
    assert log.read(start=end, end=start) == []


@pytest.mark.parametrize(
    "patterns",
    [
        ["*"],
        ["pilot.*"],
        ["atis.changed"],
        ["pilot.*", "controller.connected"],
        ["*.connected"],
        ["p?lot.disconnected", "flightplan.[af]*"],
        ["flightplan*"],
        ["Pilot.*"],  # fnmatch is case-sensitive, and so is the log
        ["no.such.type"],
        [],
    ],
)
def test_type_patterns_select_what_fnmatch_selects(
    db: DatabaseService, patterns: list[str]
) -> None:
    log = EventLog(db)
    events = events_of(one_of_each(T0) * 2, T0, timedelta(seconds=15))
    log.write(events)
    expected = [e for e in events if any(fnmatch.fnmatchcase(e.type, p) for p in patterns)]
    assert log.read(types=patterns) == expected
    assert log.count(types=patterns) == len(expected)
    assert list(log.iterate(types=patterns, page=2)) == expected


def test_keyset_paging_walks_ties_in_id_order(db: DatabaseService) -> None:
    log = EventLog(db)
    # Many events share an instant, as every event of one snapshot does.
    events = [
        Event.create(p, time=T0 + timedelta(seconds=15 * (i // 5)), source="test")
        for i, p in enumerate(one_of_each(T0) * 3)
    ]
    log.write(list(reversed(events)))
    expected = ordered(events)

    first = log.read(limit=4)
    assert first == expected[:4]
    second = log.read(limit=4, after=(first[-1].time, first[-1].id))
    assert second == expected[4:8]
    for page in (1, 3, 7, len(events), 100):
        assert list(log.iterate(page=page)) == expected
    later = T0 + timedelta(seconds=15)
    pilots = [e for e in expected if e.time >= later and e.type.startswith("pilot.")]
    assert len(pilots) > 1
    assert list(log.iterate(start=later, types=["pilot.*"], page=1)) == pilots
    with pytest.raises(ValueError, match="limit"):
        log.read(limit=0)


def test_only_the_configured_types_are_logged(db: DatabaseService) -> None:
    events = events_of(one_of_each(T0), T0, timedelta(seconds=1))
    pilots_only = EventLog(db, types=["pilot.*", "atis.changed"])
    assert pilots_only.wants("pilot.connected")
    assert not pilots_only.wants("snapshot.received")
    # A gap marker says where the log itself has a hole: kept whatever the types.
    assert pilots_only.write(events) == 4
    assert {e.type for e in pilots_only.read()} == {
        "pilot.connected",
        "pilot.disconnected",
        "atis.changed",
        "eventlog.gap",
    }

    nothing = EventLog(db, types=())
    assert not nothing.wants("pilot.connected")
    assert not nothing.wants("eventlog.gap")
    assert nothing.write(events) == 0
    assert EventLog(db).count() == 4


def test_settings_give_the_log_its_patterns() -> None:
    assert Settings().event_log_type_list == ["*"]
    assert Settings(event_log_types=" pilot.* , atis.changed,,").event_log_type_list == [
        "pilot.*",
        "atis.changed",
    ]
    assert Settings(event_log_types="").event_log_type_list == []


def test_a_row_that_cannot_be_decoded_names_its_event(db: DatabaseService) -> None:
    log = EventLog(db)
    good = events_of(one_of_each(T0)[:1], T0, timedelta(0))
    log.write(good)
    row = {"time": T0 + timedelta(minutes=1), "source": "test", "correlation_id": None}
    with db.write("test.corrupt") as conn:
        conn.execute(
            insert(t.events),
            [
                {**row, "id": "bad-json", "type": "pilot.connected", "payload": "{not json"},
                {**row, "id": "unknown", "type": "x.y", "payload": '{"type": "x.y"}'},
            ],
        )
    with pytest.raises(EventCodecError, match="event bad-json"):
        log.read()
    with pytest.raises(EventCodecError, match="event unknown"):
        log.read(types=["x.*"])
    assert log.read(end=T0 + timedelta(seconds=1)) == good


def test_a_payload_stored_under_another_type_is_refused(db: DatabaseService) -> None:
    event = events_of(one_of_each(T0)[1:2], T0, timedelta(0))[0]
    EventLog(db).write([event])
    with db.write("test.mislabel") as conn:
        conn.execute(t.events.update().values(type="pilot.disconnected"))
    with pytest.raises(EventCodecError, match=f"event {event.id}: stored as"):
        EventLog(db).read()
