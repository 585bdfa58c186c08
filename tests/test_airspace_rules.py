"""The airspace engine's rules, pinned on hand-built sectors, pilots and controllers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from vatsim_collector.airspace.contacts import controller_radio
from vatsim_collector.airspace.engine import (
    AirspaceEngine,
    ControllerObservation,
    PilotObservation,
    Point,
)
from vatsim_collector.airspace.sectors import SectorSet
from vatsim_collector.feed.models import StationTransceivers, Transceiver
from vatsim_collector.tracking.state import Flight

T0 = datetime(2026, 5, 1, 23, 58, tzinfo=UTC)
TICK = timedelta(seconds=15)


def box(name: str, x0: float, y0: float, x1: float, y1: float, **band: float) -> dict[str, object]:
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    return {
        "type": "Feature",
        "properties": {"id": name, **band},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }


SECTORS = SectorSet.from_mapping(
    {
        "type": "FeatureCollection",
        "features": [
            box("BIG", 0, 0, 10, 10),
            box("SMALL", 2, 2, 4, 4),
            box("HIGH", 2, 2, 4, 4, lower_ft=24500),
            box("DATELINE", 179, -5, 181, 5),  # drawn across the antimeridian
        ],
    }
)


@dataclass(eq=False)
class Pilot:
    id: int
    cid: int
    callsign: str
    flight: Flight


@dataclass(eq=False)
class Controller:
    id: int
    callsign: str


def pilot(n: int, flight: Flight | None = None) -> Pilot:
    flight = flight or Flight(
        cid=n, callsign=f"P{n}", departure=None, arrival=None, started_at=T0, id=100 + n
    )
    return Pilot(n, n, f"P{n}", flight)


def at(i: int) -> datetime:
    return T0 + i * TICK


def seen(
    p: Pilot,
    lat: float,
    lon: float,
    alt: int = 5000,
    radios: tuple[int, ...] = (),
    key: object | None = None,
) -> PilotObservation:
    return PilotObservation(key if key is not None else p.id, p, Point(lat, lon, alt), radios)


def engine(exit_after: int = 3) -> AirspaceEngine:
    return AirspaceEngine(SECTORS, exit_after=exit_after)


def test_entry_on_the_first_snapshot_inside_and_hysteresis_on_the_way_out() -> None:
    e, p = engine(exit_after=3), pilot(1)
    first = e.step(at(0), [seen(p, 3, 3)], [])
    assert [(o.sector, o.entered_at) for o in first.entered] == [("SMALL", at(0))]
    # Out of SMALL (into BIG) for two snapshots, then back: SMALL never ended.
    assert [o.sector for o in e.step(at(1), [seen(p, 5, 5)], []).entered] == ["BIG"]
    assert e.step(at(2), [seen(p, 5, 5.1)], []).exited == []
    assert e.step(at(3), [seen(p, 3, 3.1)], []).exited == []
    # Now out for three of its own snapshots; a snapshot it is missing from does not count.
    e.step(at(4), [seen(p, 6, 6)], [])
    assert e.step(at(5), [], []).exited == []
    assert e.step(at(6), [seen(p, 6, 6.1)], []).exited == []
    left = e.step(at(7), [seen(p, 6, 6.2)], []).exited
    assert [(o.sector, o.entered_at, o.last_inside_at) for o in left] == [("SMALL", at(0), at(3))]
    assert left[0].last_inside == Point(3, 3.1, 5000)  # the exit is the last snapshot inside


def test_the_altitude_band_and_then_the_smallest_area_decide() -> None:
    e = engine()
    low, high = pilot(1), pilot(2)
    step = e.step(at(0), [seen(low, 3, 3, 10_000), seen(high, 3, 3, 30_000)], [])
    assert {(o.pilot.id, o.sector) for o in step.entered} == {(1, "SMALL"), (2, "HIGH")}
    assert e.classify([Point(3, 3, 24_499), Point(3, 3, 24_500), Point(9, 9, 30_000)]) == [
        "SMALL",
        "HIGH",
        "BIG",
    ]


def test_a_polygon_across_the_antimeridian_holds_both_sides() -> None:
    e = engine()
    assert e.classify([Point(0, 179.5, 0), Point(0, -179.5, 0), Point(0, 178.5, 0)]) == [
        "DATELINE",
        "DATELINE",
        None,
    ]


def test_a_session_end_exits_at_its_last_inside_and_a_reconnect_re_enters() -> None:
    e = engine(exit_after=3)
    first = pilot(1)
    e.step(at(0), [seen(first, 3, 3)], [])
    e.step(at(1), [seen(first, 3, 3.2)], [])
    again = Pilot(2, 1, "P1", first.flight)  # same flight, new session
    step = e.step(at(3), [seen(again, 3, 3.4)], [], ended_pilots=[first.id])
    assert [(o.pilot.id, o.last_inside_at) for o in step.exited] == [(1, at(1))]
    assert [(o.pilot.id, o.entered_at, o.pilot.flight.id) for o in step.entered] == [
        (2, at(3), first.flight.id)
    ]


TWR = Controller(50, "XX_TWR")
TWR_TX = StationTransceivers(
    callsign="XX_TWR",
    transceivers=[Transceiver(id=0, frequency=118_505_000, latDeg=3.0, lonDeg=3.0)],
)


def tower(
    frequency: str = "118.505",
    facility: int = 4,
    callsign: str = "XX_TWR",
    station: StationTransceivers | None = TWR_TX,
) -> ControllerObservation:
    return ControllerObservation(
        TWR.id, TWR, controller_radio(TWR.id, frequency, facility, callsign, station)
    )


def test_contact_intervals_start_continue_and_end_at_the_last_contact() -> None:
    e, p = engine(), pilot(1)
    near = (3.05, 3.0)  # 3 nm from the tower
    started = e.step(at(0), [seen(p, *near, radios=(118_505_010,))], [tower()])
    assert [(c.controller.id, c.frequency_hz) for c in started.contacts_started] == [
        (50, 118_505_000)
    ]
    assert e.step(at(1), [], [tower()]).contacts_ended == []  # pilot missing: nothing known
    assert e.step(at(2), [seen(p, *near, radios=(118_505_000,))], [tower()]).contacts_ended == []
    far = e.step(at(3), [seen(p, 3.3, 3.0, radios=(118_505_000,))], [tower()])  # 18 nm
    assert [(c.started_at, c.last_contact_at) for c in far.contacts_ended] == [(at(0), at(2))]


@pytest.mark.parametrize(
    ("radio", "controller"),
    [
        (199_998_000, tower(frequency="199.998", facility=4)),  # an observer's frequency
        (118_505_000, tower(facility=0)),  # an observer
        (118_505_000, tower(callsign="XX_OBS")),
        (118_515_000, tower()),  # the 8.33 kHz neighbour two channels up: 10 kHz away
        (118_505_000, tower(station=None)),  # no transceivers: no position to range from
    ],
)
def test_no_contact(radio: int, controller: ControllerObservation) -> None:
    e, p = engine(), pilot(1)
    assert e.step(at(0), [seen(p, 3.05, 3.0, radios=(radio,))], [controller]).contacts_started == []


def test_a_snapshot_without_transceivers_ends_contact_and_a_controller_end_too() -> None:
    e, p = engine(), pilot(1)
    e.step(at(0), [seen(p, 3.05, 3.0, radios=(118_505_000,))], [tower()])
    gone = e.step(at(1), [seen(p, 3.05, 3.0, radios=())], [tower(station=None)])
    assert [c.last_contact_at for c in gone.contacts_ended] == [at(0)]
    e.step(at(2), [seen(p, 3.05, 3.0, radios=(118_505_000,))], [tower()])
    ended = e.step(at(3), [], [], ended_controllers=[TWR.id])
    assert [(c.started_at, c.last_contact_at) for c in ended.contacts_ended] == [(at(2), at(2))]
