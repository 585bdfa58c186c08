"""A database filled through the real pipeline for the privacy tests, and a scanner that looks
for a member in every column of every table (held documents decompressed, JSON decoded)."""

from __future__ import annotations

import copy
import gzip
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson
from sqlalchemy import Engine, func, select

from feeds import REAL_FEEDS
from vatsim_collector.airspace.engine import AirspaceEngine
from vatsim_collector.airspace.sectors import SectorSet
from vatsim_collector.errors.manager import ErrorManager
from vatsim_collector.events.event import Event
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor, Outcome
from vatsim_collector.simulator.traffic import SimRates
from vatsim_collector.simulator.world import SimulatedNetwork
from vatsim_collector.store import schema as t
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.dead_letters import DeadLetterQueue, NewDeadLetter
from vatsim_collector.store.error_records import ErrorRecordStore
from vatsim_collector.store.event_log import EventLog
from vatsim_collector.store.summaries_store import SummaryWriter

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TICKS = 40
RATES = replace(
    SimRates(), pilot_leave=0.02, pilot_join=0.02, controller_leave=0.02, controller_join=0.02
)
Json = dict[str, Any]


def _surname(cid: int) -> str:
    letters = ""
    while cid:
        cid, digit = divmod(cid, 26)
        letters += chr(ord("a") + digit)
    return letters.capitalize()


@cache
def sim_documents() -> tuple[tuple[Json, list[Json]], ...]:
    """Data and transceivers documents of the simulator, three more than are ingested.

    The simulator draws names from a small pool; a second surname spelled from the cid makes
    each member's name their own, so a name found in the database can only be theirs."""
    network = SimulatedNetwork(seed=5, start=START, rates=RATES)
    out = []
    for _ in range(TICKS + 3):
        data = network.data_document()
        for section in ("pilots", "controllers", "atis", "prefiles"):
            for record in data[section]:
                record["name"] = f"{record['name'].strip()} {_surname(record['cid'])}".strip()
        out.append((data, network.transceivers_document()))
        network.tick()
    return tuple(out)


@dataclass
class World:
    engine: Engine
    ingestor: Ingestor
    events: list[Event] = field(default_factory=list)

    @property
    def db(self) -> DatabaseService:
        return self.ingestor.db

    def ingest(self, data: bytes, tx: bytes | None = None) -> Outcome:
        result = self.ingestor.ingest(data, transceivers_raw=tx)
        EventLog(self.db).write(result.events)
        self.events.extend(result.events)
        return result.outcome


def collect(engine: Engine, *, store_names: bool, ticks: int = TICKS) -> World:
    """Real snapshots, then ``ticks`` of the simulator, every event logged."""
    ingestor = Ingestor(
        engine,
        IngestConfig(store_names=store_names, missed_snapshots_to_end=2),
        airspace=AirspaceEngine(SectorSet.default(), exit_after=2),
    )
    ingestor.restore()
    world = World(engine, ingestor)
    for path in REAL_FEEDS:
        assert world.ingest(path.read_bytes()) is Outcome.INGESTED
    for data, tx in sim_documents()[:ticks]:
        assert world.ingest(orjson.dumps(data), orjson.dumps(tx)) is Outcome.INGESTED
    return world


def summarise(db: DatabaseService) -> None:
    """What the summaries handler does for every ended flight and controller session of the
    simulated hours (the real snapshots' thousands of one-snapshot flights would only be slow)."""
    writer = SummaryWriter(db)
    fl, cs = t.flights, t.controller_sessions
    with db.write("test.summaries") as conn:
        flights = conn.execute(
            select(fl.c.id).where(fl.c.ended_at.is_not(None), fl.c.started_at >= START)
        )
        sessions = conn.execute(
            select(cs.c.id).where(cs.c.ended_at.is_not(None), cs.c.first_seen_at >= START)
        )
        flight_ids, session_ids = list(flights.scalars()), list(sessions.scalars())
        for flight_id in flight_ids:
            writer.flight_in(conn, flight_id)
        for session_id in session_ids:
            writer.controller_in(conn, session_id)


@dataclass(frozen=True)
class Someone:
    cid: int
    callsigns: frozenset[str]
    names: frozenset[str]


def someone(engine: Engine, cid: int) -> Someone:
    callsigns: set[str] = set()
    names: set[str] = set()
    with engine.connect() as conn:
        for table in (t.pilot_sessions, t.controller_sessions, t.atis_sessions, t.prefiles):
            for row in conn.execute(
                select(table.c.callsign, table.c.name).where(table.c.cid == cid)
            ):
                callsigns.add(row.callsign)
                if row.name:
                    names.add(row.name)
    return Someone(cid, frozenset(callsigns), frozenset(names))


def records_of(cid: int) -> dict[str, Json]:
    """The member's latest record per section of the simulator's documents."""
    found: dict[str, Json] = {}
    for data, _ in sim_documents():
        for section in ("pilots", "controllers", "atis"):
            for record in data[section]:
                if record["cid"] == cid:
                    found[section] = copy.deepcopy(record)
    return found


def hold_documents(world: World, members: list[Someone]) -> None:
    """Feed what gets held: a rejected transceivers document naming the members' stations, a
    quarantined snapshot with their records, a truncated one that names them, a truncated one
    that does not, and one of an unsupported version with their records. (A malformed record
    costs only itself, not its document: those are in test_forget's own test.)"""
    docs = sim_documents()
    callsigns = {c for m in members for c in m.callsigns}
    stations = [dict(s) for _, tx in docs for s in tx if s["callsign"] in callsigns]
    data, tx = docs[TICKS]
    # An object where the document's array belongs: the whole transceivers document is refused.
    broken_tx = {"stations": [*tx, *stations]}
    assert world.ingest(orjson.dumps(data), orjson.dumps(broken_tx)) is Outcome.INGESTED

    few = copy.deepcopy(docs[TICKS + 1][0])
    theirs = [records_of(m.cid) for m in members]
    for section in ("pilots", "controllers", "atis"):
        mine = [r[section] for r in theirs if section in r]
        others = [r for r in few[section] if r["cid"] not in {m.cid for m in members}]
        few[section] = mine + others[:4]
    assert len(few["pilots"]) < 10
    assert world.ingest(orjson.dumps(few)) is Outcome.QUARANTINED

    raw = orjson.dumps(few)
    first = few["pilots"][0]
    cut = raw.index(orjson.dumps(first["callsign"])) + 40
    assert world.ingest(raw[:cut]) is Outcome.REJECTED  # names a member, cannot be parsed
    assert world.ingest(raw[: raw.index(b'"pilots"')]) is Outcome.REJECTED  # names nobody
    wrong = copy.deepcopy(few)
    wrong["general"]["version"] = 4
    assert world.ingest(orjson.dumps(wrong)) is Outcome.REJECTED


def report_failures(world: World, members: list[Someone], near_miss: int) -> None:
    """Dead letters for every event about the members and a few others; error records naming
    them, and one naming a cid whose digits merely begin with a member's."""
    about = [e for e in world.events if mentions_any(e, members)]
    others = [e for e in world.events if not mentions_any(e, members)][-3:]
    now = datetime.now(UTC)
    letters = [
        NewDeadLetter(e, "test.handler", "RuntimeError", "handler", "boom", 3, now, now)
        for e in [*about, *others]
    ]
    assert DeadLetterQueue(world.db).put(letters) == len(letters)
    errors = ErrorManager(ErrorRecordStore(world.db))
    for m in members:
        callsign, name = sorted(m.callsigns)[0], sorted(m.names)[0]
        errors.record(
            RuntimeError(f"delivery for {callsign} ({name}, cid {m.cid}) failed"),
            service="events",
            operation="deliver",
            context={"cid": m.cid, "callsign": callsign, "who": name, "text": f"cid={m.cid}"},
        )
    errors.record(
        RuntimeError(f"cid {near_miss} unknown"),
        service="events",
        operation="deliver",
        context={"cid": near_miss},
    )
    assert errors.flush() == len(members) + 1


def mentions_any(event: Event, members: list[Someone]) -> bool:
    payload = event.summary()["payload"]
    cids = {m.cid for m in members}
    callsigns = {c for m in members for c in m.callsigns}
    if payload.get("cid") in cids:
        return True
    return event.type.startswith("contact.") and bool(
        {payload["callsign"], payload["controller_callsign"]} & callsigns
    )


# -- choosing whom to forget ---------------------------------------------------------------


def json_ids(text: str, key: str) -> set[int]:
    return {entry[key] for entry in json.loads(text)}


def _unique(engine: Engine, who: Someone) -> bool:
    """Nobody else used their callsigns or names, so every trace found is theirs."""
    with engine.connect() as conn:
        for table in (t.pilot_sessions, t.controller_sessions, t.atis_sessions, t.prefiles):
            for row in conn.execute(select(table.c.cid, table.c.callsign, table.c.name)):
                if row.cid != who.cid and (row.callsign in who.callsigns or row.name in who.names):
                    return False
    return bool(who.names)


def choose_pilot(engine: Engine, controller: Someone) -> Someone:
    """A pilot of the simulated hours seen in several snapshots, whose flight a controller
    other than ``controller`` handled and counted in a summary. (The simulator reuses real
    plans, so a real pilot's callsign can sit in someone else's remarks as a registration.)"""
    cs, fs, ps = t.controller_summaries, t.flight_summaries, t.pilot_sessions
    with engine.connect() as conn:
        handled = {
            flight
            for row in conn.execute(select(cs.c.cid, cs.c.per_aircraft))
            if row.cid != controller.cid
            for flight in json_ids(row.per_aircraft, "flight_id")
        }
        controllers = {r.cid for r in conn.execute(select(t.controller_sessions.c.cid))}
        atis = {r.cid for r in conn.execute(select(t.atis_sessions.c.cid))}
        for row in conn.execute(select(fs.c.cid, fs.c.flight_id).order_by(fs.c.cid)):
            if row.flight_id not in handled or row.cid in controllers | atis:
                continue
            seen = conn.execute(
                select(ps.c.first_seen_at, t.positions.c.snapshot_id)
                .join(ps, ps.c.id == t.positions.c.pilot_session_id)
                .where(ps.c.cid == row.cid)
            ).all()
            simulated = all(r.first_seen_at >= START for r in seen)
            who = someone(engine, row.cid)
            if len(seen) >= 3 and simulated and _unique(engine, who):
                return who
    raise AssertionError("no pilot to forget")


def choose_controller(engine: Engine) -> Someone:
    """A controller with an ATIS station, whose handled flights' summaries name them."""
    cs, fs = t.controller_summaries, t.flight_summaries
    with engine.connect() as conn:
        worked = {
            session: row.flight_id
            for row in conn.execute(select(fs.c.flight_id, fs.c.controllers))
            for session in json_ids(row.controllers, "controller_session_id")
        }
        pilots = {r.cid for r in conn.execute(select(t.pilot_sessions.c.cid))}
        atis = {
            r.cid
            for r in conn.execute(
                select(t.atis_sessions.c.cid).join(
                    t.atis_revisions, t.atis_revisions.c.atis_session_id == t.atis_sessions.c.id
                )
            )
        }
        for row in conn.execute(select(cs.c.cid, cs.c.controller_session_id).order_by(cs.c.cid)):
            if row.controller_session_id not in worked or row.cid not in atis:
                continue
            who = someone(engine, row.cid)
            if row.cid not in pilots and _unique(engine, who):
                return who
    raise AssertionError("no controller to forget")


# -- looking for someone ------------------------------------------------------------------


def _walk(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)
    else:
        yield value


def _decoded(value: Any) -> Any:
    """Bytes decompressed, JSON text decoded (both when possible); else the value as it is."""
    if isinstance(value, bytes):
        value = gzip.decompress(value).decode("utf-8", "replace")
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def traces(engine: Engine, *people: Someone) -> dict[int, list[tuple[str, str, str]]]:
    """Per cid, (table, column, what) for every mention in the database: the cid as a number
    or as a token of text, a callsign as a token, a name anywhere."""
    patterns = {
        who.cid: (
            re.compile(rf"(?<![0-9]){who.cid}(?![0-9])"),
            [re.compile(rf"(?<![\w-]){re.escape(c)}(?![\w-])") for c in sorted(who.callsigns)],
        )
        for who in people
    }
    found: dict[int, list[tuple[str, str, str]]] = {who.cid: [] for who in people}
    with engine.connect() as conn:
        for table in t.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                for column, raw in row._mapping.items():
                    for value in _walk(_decoded(raw)):
                        for who in people:
                            what = _mention(value, who, *patterns[who.cid])
                            if what:
                                found[who.cid].append((table.name, column, what))
    return found


def _mention(
    value: Any, who: Someone, cid_token: re.Pattern[str], callsigns: list[re.Pattern[str]]
) -> str | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value == who.cid:
        return "cid"
    if not isinstance(value, str):
        return None
    if cid_token.search(value):
        return "cid text"
    if any(p.search(value) for p in callsigns):
        return "callsign"
    if any(name in value for name in who.names):
        return "name"
    return None


def row_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in t.metadata.sorted_tables
        }
