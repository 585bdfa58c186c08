"""A deterministic world of flights with their take-offs and landings, written straight into a
database (flights, pilot sessions, movements), for the airport and pilot activity endpoints
and their bench; the detector that writes movements in the collector is not needed.

Each flight is one of a few shapes met on the network: an ordinary flight (off-block, take-off,
landing, on-block), circuits with touch-and-goes and a go-around, a pilot who disconnects in
the air, one who connects in the air and lands, a flight flown in two sessions after a
reconnect, and a take-off from a strip away from any airport. The generator records, besides
the rows, the truth the rows were made from -- each session's time in the air -- so tests can
check the endpoints against it rather than against the code under test.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert

from vatsim_collector.store import schema as t

AIRPORTS = ("EGLL", "EGKK", "EHAM", "LFPG", "EDDF", "LEMD", "EIDW", "EGCC")
CIRCUITS_AT = "EGKK"
M = timedelta(minutes=1)
# Explicit ids, far above what a sequence hands out in a test, so the pipeline can still
# insert sessions into the same database.
FIRST_ID = 10_000_000


@dataclass
class Session:
    id: int
    cid: int
    callsign: str
    flight_id: int
    first: datetime
    last: datetime
    # The truth: when the aircraft was in the air during this session.
    airborne: list[tuple[datetime, datetime]] = field(default_factory=list)


@dataclass(frozen=True)
class Move:
    id: int
    session_id: int
    flight_id: int
    cid: int
    callsign: str
    kind: str
    airport: str | None
    at: datetime


@dataclass
class World:
    start: datetime
    end: datetime
    sessions: list[Session] = field(default_factory=list)
    moves: list[Move] = field(default_factory=list)
    flights: dict[int, tuple[int, str, str, str]] = field(default_factory=dict)


class _Builder:
    def __init__(self, world: World, rng: random.Random) -> None:
        self.world = world
        self.rng = rng
        self.next_id = FIRST_ID

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id

    def flight(self, cid: int, callsign: str, dep: str, arr: str) -> int:
        flight_id = self._id()
        self.world.flights[flight_id] = (cid, callsign, dep, arr)
        return flight_id

    def session(self, cid: int, callsign: str, flight_id: int, first: datetime) -> Session:
        s = Session(self._id(), cid, callsign, flight_id, first, first)
        self.world.sessions.append(s)
        return s

    def move(self, s: Session, kind: str, airport: str | None, at: datetime) -> None:
        self.world.moves.append(
            Move(self._id(), s.id, s.flight_id, s.cid, s.callsign, kind, airport, at)
        )

    def minutes(self, low: int, high: int) -> timedelta:
        # Snapshot cadence: movements and sightings fall on 15-second marks.
        return timedelta(seconds=15 * self.rng.randint(low * 4, high * 4))


def build(
    start: datetime,
    hours: float,
    flights: int,
    *,
    seed: int = 13,
    pilots: int = 0,
    airports: Sequence[str] = AIRPORTS,
) -> World:
    """``flights`` flights between ``airports`` connecting at random within ``hours`` after
    ``start``, flown by ``pilots`` members (0: one member per flight)."""
    rng = random.Random(seed)
    world = World(start, start + timedelta(hours=hours))
    b = _Builder(world, rng)
    shapes = ["normal"] * 10 + ["circuits", "gone", "arrives", "reconnect", "strip"]
    for n in range(flights):
        cid = 1_200_000 + (n % pilots if pilots else n)
        callsign = f"{rng.choice(['BAW', 'EZY', 'KLM', 'AFR', 'DLH'])}{100 + n}"
        dep, arr = rng.sample(list(airports), 2)
        shape = rng.choice(shapes)
        t0 = start + b.minutes(0, int(hours * 60))
        if shape == "circuits":
            dep = arr = CIRCUITS_AT
        flight = b.flight(cid, callsign, dep, arr)
        s = b.session(cid, callsign, flight, t0)
        if shape == "arrives":
            # Connected in the air: in the air from the first sighting to the landing.
            landing = t0 + b.minutes(10, 90)
            b.move(s, "landing", arr, landing)
            b.move(s, "on_block", arr, landing + b.minutes(4, 10))
            s.airborne.append((t0, landing))
            s.last = landing + b.minutes(10, 15)
            continue
        off = t0 + b.minutes(2, 15)
        takeoff = off + b.minutes(5, 20)
        b.move(s, "off_block", dep, off)
        b.move(s, "takeoff", None if shape == "strip" else dep, takeoff)
        if shape == "circuits":
            at = takeoff
            for _ in range(rng.randint(2, 4)):
                at += b.minutes(6, 9)
                b.move(s, "touch_and_go", CIRCUITS_AT, at)
            at += b.minutes(6, 9)
            b.move(s, "go_around", CIRCUITS_AT, at)
            landing = at + b.minutes(6, 9)
        else:
            landing = takeoff + b.minutes(40, 180)
        if shape == "gone":
            # Disconnected in the air: airborne to the last sighting.
            s.last = takeoff + (landing - takeoff) / 2
            s.airborne.append((takeoff, s.last))
            continue
        if shape == "reconnect":
            s.last = takeoff + b.minutes(20, 30)
            s.airborne.append((takeoff, s.last))
            s = b.session(cid, callsign, flight, s.last + b.minutes(2, 6))
            s.airborne.append((s.first, landing))
        else:
            s.airborne.append((takeoff, landing))
        b.move(s, "landing", arr, landing)
        on_block = landing + b.minutes(3, 12)
        b.move(s, "on_block", arr, on_block)
        s.last = on_block + b.minutes(1, 5)
    # Ids in time order, as the collector writes movements when it detects them (and the
    # table's rows then lie in time order too).
    ordered = sorted(world.moves, key=lambda m: (m.at, m.session_id, m.kind))
    world.moves = [replace(m, id=FIRST_ID * 2 + n) for n, m in enumerate(ordered)]
    return world


def insert_world(conn: Connection, world: World) -> None:
    """The world's rows, in bulk."""
    last_of: dict[int, datetime] = {}
    first_of: dict[int, datetime] = {}
    for s in world.sessions:
        first_of[s.flight_id] = min(first_of.get(s.flight_id, s.first), s.first)
        last_of[s.flight_id] = max(last_of.get(s.flight_id, s.last), s.last)
    flights: list[dict[str, Any]] = [
        {
            "id": fid,
            "cid": cid,
            "callsign": callsign,
            "departure": dep,
            "arrival": arr,
            "started_at": first_of[fid],
            "ended_at": last_of[fid],
        }
        for fid, (cid, callsign, dep, arr) in world.flights.items()
    ]
    sessions = [
        {
            "id": s.id,
            "cid": s.cid,
            "callsign": s.callsign,
            "logon_time": s.first - M,
            "first_seen_at": s.first,
            "last_seen_at": s.last,
            "ended_at": s.last,
            "flight_id": s.flight_id,
        }
        for s in world.sessions
    ]
    arrival = {fid: arr for fid, (_, _, _, arr) in world.flights.items()}
    moves = [
        {
            "id": m.id,
            "pilot_session_id": m.session_id,
            "flight_id": m.flight_id,
            "snapshot_id": t.snapshot_id_for(m.at),
            "cid": m.cid,
            "callsign": m.callsign,
            "kind": m.kind,
            "airport": m.airport,
            "at": m.at,
            "bracket_from": m.at - timedelta(seconds=15),
            "bracket_to": m.at,
            "runway_heading": 270 if m.kind in ("takeoff", "landing") else None,
            "diversion": False,
            "filed_arrival": arrival[m.flight_id],
        }
        for m in world.moves
    ]
    for table, rows in ((t.flights, flights), (t.pilot_sessions, sessions), (t.movements, moves)):
        for i in range(0, len(rows), 2000):
            conn.execute(insert(table), rows[i : i + 2000])
