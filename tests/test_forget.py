"""Forgetting a member: nothing of them remains anywhere, everyone else stays, and
without VATSIM_STORE_NAMES no name is stored at all, held documents included."""

from __future__ import annotations

import copy
import gzip
import json
import re
from collections import Counter
from typing import Any

import orjson
from sqlalchemy import Engine, select

from feeds import REAL_FEEDS
from forget_world import (
    Someone,
    choose_controller,
    choose_pilot,
    collect,
    hold_documents,
    json_ids,
    mentions_any,
    report_failures,
    row_counts,
    sim_documents,
    someone,
    summarise,
    traces,
)
from vatsim_collector.events.event import Event
from vatsim_collector.events.payloads import PilotConnected
from vatsim_collector.pipeline.ingest import Outcome
from vatsim_collector.store import schema as t
from vatsim_collector.store.event_log import EventLog
from vatsim_collector.store.forget import ForgetReport, forget_member
from vatsim_collector.store.redact import strip_names

RELATIONAL = (
    "pilot_sessions",
    "positions",
    "flight_plans",
    "flights",
    "flight_summaries",
    "sector_occupancy",
    "contact_intervals",
    "controller_sessions",
    "controller_frequencies",
    "controller_summaries",
    "atis_sessions",
    "atis_revisions",
    "transceivers",
    "prefiles",
)


def their_rows(engine: Engine, members: list[Someone]) -> Counter[str]:
    """What forgetting them must delete, counted independently of the code under test."""
    cids = [m.cid for m in members]
    out: Counter[str] = Counter()
    with engine.connect() as conn:

        def ids(table: Any) -> set[int]:
            return set(conn.execute(select(table.c.id).where(table.c.cid.in_(cids))).scalars())

        ps, cs, atis, flights = (
            ids(t.pilot_sessions),
            ids(t.controller_sessions),
            ids(t.atis_sessions),
            ids(t.flights),
        )
        out["pilot_sessions"], out["controller_sessions"] = len(ps), len(cs)
        out["atis_sessions"], out["flights"] = len(atis), len(flights)
        out["prefiles"] = len(ids(t.prefiles))
        sessions = {"pilot_session_id": ps, "controller_session_id": cs, "atis_session_id": atis}
        for table in (t.positions, t.flight_plans, t.sector_occupancy):
            out[table.name] = sum(
                1 for r in conn.execute(select(table)) if r.pilot_session_id in ps
            )
        out["contact_intervals"] = sum(
            1
            for r in conn.execute(select(t.contact_intervals))
            if r.pilot_session_id in ps or r.controller_session_id in cs
        )
        out["controller_frequencies"] = sum(
            1
            for r in conn.execute(select(t.controller_frequencies))
            if r.controller_session_id in cs
        )
        out["atis_revisions"] = sum(
            1 for r in conn.execute(select(t.atis_revisions)) if r.atis_session_id in atis
        )
        out["flight_summaries"] = sum(
            1 for r in conn.execute(select(t.flight_summaries)) if r.flight_id in flights
        )
        out["controller_summaries"] = sum(
            1 for r in conn.execute(select(t.controller_summaries)) if r.controller_session_id in cs
        )
        spans = [
            (r.callsign, t.snapshot_id_for(r.first_seen_at), t.snapshot_id_for(r.last_seen_at))
            for table in (t.pilot_sessions, t.controller_sessions, t.atis_sessions)
            for r in conn.execute(select(table).where(table.c.cid.in_(cids)))
        ]
        for r in conn.execute(select(t.transceivers)):
            linked = any(r._mapping[k] in v for k, v in sessions.items())
            unlinked = all(r._mapping[k] is None for k in sessions) and any(
                r.callsign == c and lo <= r.snapshot_id <= hi for c, lo, hi in spans
            )
            out["transceivers"] += linked or unlinked
    return out


def summaries_naming(engine: Engine, members: list[Someone]) -> dict[str, dict[int, int]]:
    """Others' summaries that count a member: id -> aircraft handled or controllers listed."""
    cids = [m.cid for m in members]
    out: dict[str, dict[int, int]] = {"controller_summaries": {}, "flight_summaries": {}}
    with engine.connect() as conn:
        flights = set(
            conn.execute(select(t.flights.c.id).where(t.flights.c.cid.in_(cids))).scalars()
        )
        cs = t.controller_sessions
        sessions = set(conn.execute(select(cs.c.id).where(cs.c.cid.in_(cids))).scalars())
        for r in conn.execute(
            select(t.controller_summaries).where(t.controller_summaries.c.cid.not_in(cids))
        ):
            if json_ids(r.per_aircraft, "flight_id") & flights:
                out["controller_summaries"][r.controller_session_id] = r.aircraft_handled
        for r in conn.execute(
            select(t.flight_summaries).where(t.flight_summaries.c.cid.not_in(cids))
        ):
            listed = json_ids(r.controllers, "controller_session_id")
            if listed & sessions:
                out["flight_summaries"][r.flight_id] = len(listed)
    return out


def _near_miss_event(world_events: list[Event], cid: int) -> Event:
    template = world_events[0]
    return Event.create(
        PilotConnected(
            session_id=987654321,
            flight_id=987654321,
            cid=cid,
            callsign="NEAR1",
            logon_time=template.time,
            latitude=0.0,
            longitude=0.0,
            altitude=0,
            departure=None,
            arrival=None,
        ),
        time=template.time,
        source="test",
    )


def test_forgetting_two_members_leaves_no_trace_of_them_and_everyone_else_in_place(
    engine: Engine,
) -> None:
    world = collect(engine, store_names=True)
    summarise(world.db)
    controller = choose_controller(engine)
    pilot = choose_pilot(engine, controller)
    members = [pilot, controller]
    hold_documents(world, members)
    summarise(world.db)
    near_miss = int(f"{pilot.cid}1")  # its digits begin with the pilot's cid
    near = _near_miss_event(world.events, near_miss)
    EventLog(world.db).write([near])
    report_failures(world, members, near_miss)

    found = traces(engine, *members)
    everywhere = {"events", "dead_letters", "held_documents", "error_records", "transceivers"}
    assert {table for table, _, _ in found[pilot.cid]} >= everywhere | {
        "pilot_sessions",
        "flights",
        "flight_summaries",
        "controller_summaries",  # another controller's, listing the pilot's flight
    }
    assert {table for table, _, _ in found[controller.cid]} >= everywhere | {
        "controller_sessions",
        "atis_sessions",
        "controller_summaries",
        "flight_summaries",  # another pilot's, listing the controller
    }
    before = row_counts(engine)
    expected = their_rows(engine, members)
    expected_events = sum(1 for e in world.events if mentions_any(e, members))
    naming = summaries_naming(engine, members)
    assert naming["controller_summaries"]
    assert naming["flight_summaries"]
    assert expected["contact_intervals"]
    assert expected["atis_revisions"]

    reports = []
    for who in members:
        naming = summaries_naming(engine, [who])
        report = forget_member(world.db, who.cid)
        assert report.updated["controller_summaries"] == len(naming["controller_summaries"])
        assert report.updated["flight_summaries"] == len(naming["flight_summaries"])
        _recomputed_without_them(engine, naming)
        reports.append(report)

    assert traces(engine, *members) == {who.cid: [] for who in members}
    deleted: Counter[str] = Counter()
    updated: Counter[str] = Counter()
    for report in reports:
        assert report.found
        deleted.update(report.deleted)
        updated.update(report.updated)
    after = row_counts(engine)
    assert {name: before[name] - after[name] for name in before} == {
        name: deleted.get(name, 0) for name in before
    }
    assert {name: deleted[name] for name in RELATIONAL} == {
        name: expected[name] for name in RELATIONAL
    }
    assert deleted["events"] == expected_events
    assert deleted["dead_letters"] == expected_events  # one letter per event about them
    assert deleted["held_documents"] == 1  # the truncated one that named the pilot
    assert sum(r.held_documents_unreadable for r in reports) == 1
    # Each member's records were in the transceivers, quarantined and wrong-version documents.
    assert updated["held_documents"] == 3 * len(members)
    assert updated["error_records"] == 2
    _near_misses_are_kept(engine, members, near)
    again = forget_member(world.db, pilot.cid)
    assert not again.found
    assert again.as_dict()["deleted"] == dict.fromkeys(reports[0].deleted, 0)


def _recomputed_without_them(engine: Engine, naming: dict[str, dict[int, int]]) -> None:
    """Others' summaries that counted them are still there, counting fewer."""
    cs, fs = t.controller_summaries, t.flight_summaries
    with engine.connect() as conn:
        for session_id, handled in naming["controller_summaries"].items():
            row = conn.execute(select(cs).where(cs.c.controller_session_id == session_id)).one()
            assert row.aircraft_handled < handled
        for flight_id, listed in naming["flight_summaries"].items():
            row = conn.execute(select(fs).where(fs.c.flight_id == flight_id)).one()
            assert len(json.loads(row.controllers)) < listed


def _near_misses_are_kept(engine: Engine, members: list[Someone], near: Event) -> None:
    """A cid whose digits begin with a member's is someone else: untouched everywhere."""
    near_cid = near.summary()["payload"]["cid"]
    with engine.connect() as conn:
        assert conn.execute(select(t.events.c.id).where(t.events.c.id == near.id)).one()
        contexts = [
            json.loads(c) for c in conn.execute(select(t.error_records.c.context)).scalars()
        ]
    assert {"$transient": False, "cid": near_cid} in contexts
    forgotten = [c for c in contexts if c.get("cid") == "[forgotten]"]
    assert len(forgotten) == len(members)
    assert all(c["text"] == "cid=[forgotten]" for c in forgotten)


def _input_names() -> set[str]:
    """Full names (two words or more) of every client in the documents the world ingests."""
    docs = [orjson.loads(p.read_bytes()) for p in REAL_FEEDS] + [d for d, _ in sim_documents()]
    return {
        r["name"].strip()
        for doc in docs
        for section in ("pilots", "controllers", "atis", "prefiles")
        for r in doc.get(section, [])
        if len(r.get("name", "").strip().split()) >= 2 and len(r["name"].strip()) >= 6
    }


def test_without_store_names_no_name_is_stored_anywhere(engine: Engine) -> None:
    world = collect(engine, store_names=False, ticks=12)
    with engine.connect() as conn:
        ps = t.pilot_sessions
        pilot = conn.execute(select(ps.c.cid).order_by(ps.c.id.desc()).limit(1)).scalar_one()
        cs = t.controller_sessions
        controller = conn.execute(select(cs.c.cid).order_by(cs.c.id.desc()).limit(1)).scalar_one()
    hold_documents(world, [someone(engine, pilot), someone(engine, controller)])
    names = _input_names()
    assert len(names) > 1000
    with engine.connect() as conn:
        for table in t.metadata.sorted_tables:
            if "name" in table.c:
                stored = conn.execute(select(table.c.name).where(table.c.name.is_not(None)))
                assert stored.first() is None, table.name
        held = [
            gzip.decompress(b) for b in conn.execute(select(t.held_documents.c.body_gzip)).scalars()
        ]
        texts = [
            value
            for table in t.metadata.sorted_tables
            for row in conn.execute(select(table))
            for value in row
            if isinstance(value, str)
        ]
    assert len(held) == 5
    readable = 0
    for body in held:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            assert b'"name":""' in body or b'"name"' not in body
            continue
        readable += 1
        records = [
            r
            for s in ("pilots", "controllers", "atis", "prefiles")
            if isinstance(doc, dict)
            for r in doc.get(s, [])
        ]
        assert all("name" not in r for r in records)
    assert readable == 3
    corpus = "\n".join([*texts, *(b.decode("utf-8", "replace") for b in held)])
    words = set(re.findall(r"\w+", corpus))
    # Only a name all of whose words occur somewhere can occur whole: search just those.
    candidates = [n for n in names if set(re.findall(r"\w+", n)) <= words]
    assert [n for n in candidates if n in corpus] == []


def test_strip_names_keeps_a_document_without_names_byte_for_byte() -> None:
    plain = b'{"general": {"version": 3}, "servers": [{"name": "USA-EAST"}]}'
    assert strip_names(plain) is plain
    named = orjson.dumps({"pilots": [{"cid": 1, "name": "Ann Example", "callsign": "X"}]})
    assert orjson.loads(strip_names(named)) == {"pilots": [{"cid": 1, "callsign": "X"}]}
    broken = b'{"pilots": [{"cid": 1, "name": "Ann \\"Ex\\" Ample", "callsign": "X"}, {"name": "Bo'
    assert strip_names(broken) == b'{"pilots": [{"cid": 1, "name":"", "callsign": "X"}, {"name":""'


def test_a_member_never_stored_is_reported_as_not_found(engine: Engine) -> None:
    world = collect(engine, store_names=True, ticks=2)
    before = row_counts(engine)
    report = forget_member(world.db, 99_999_999)
    assert isinstance(report, ForgetReport)
    assert not report.found
    assert row_counts(engine) == before


def test_a_members_malformed_records_held_on_their_own_are_forgotten(engine: Engine) -> None:
    world = collect(engine, store_names=False, ticks=2)
    data, tx = copy.deepcopy(sim_documents()[2])
    member, other = data["pilots"][0], data["pilots"][1]
    stations = {s["callsign"]: s for s in tx}
    assert member["callsign"] in stations
    assert other["callsign"] in stations
    # One malformed pilot record and one malformed station each, theirs and someone else's.
    member["latitude"] = other["latitude"] = "north"
    stations[member["callsign"]]["transceivers"] = "none"
    stations[other["callsign"]]["transceivers"] = "none"
    assert world.ingest(orjson.dumps(data), orjson.dumps(tx)) is Outcome.INGESTED

    def held_records() -> list[bytes]:
        h = t.held_documents
        with engine.connect() as conn:
            rows = conn.execute(select(h.c.body_gzip).where(h.c.kind == "record")).scalars()
            return [gzip.decompress(body) for body in rows]

    assert len(held_records()) == 4
    assert all(b'"name"' not in body for body in held_records()), "names are not kept"
    report = forget_member(world.db, member["cid"])
    assert report.deleted["held_documents"] == 2
    left = held_records()
    assert len(left) == 2
    assert all(
        orjson.loads(body).get("cid") == other["cid"]
        or orjson.loads(body).get("callsign") == other["callsign"]
        for body in left
    )
