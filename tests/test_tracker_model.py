"""The tracker agrees with a plain reference model of the session rules (docs/architecture.md)
on random presence patterns."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from vatsim_collector.feed.models import FlightPlan, General, Pilot, Snapshot
from vatsim_collector.tracking.state import LiveState
from vatsim_collector.tracking.tracker import Tracker

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TICK = timedelta(seconds=15)
ABSENT, PRESENT, RELOGON = 0, 1, 2


@dataclass
class ModelSession:
    cid: int
    logon: datetime
    first_seen: datetime
    last_seen: datetime
    missed: int = 0
    ended: datetime | None = None


def reference(patterns: list[list[int]], n_missed: int) -> list[ModelSession]:
    """Straight from the rules: absent N accepted snapshots in a row ends a session at its last
    sighting; a new logon_time for the same callsign is a new session and ends the old one;
    the same (cid, callsign, logon_time) seen again is the same session, resumed."""
    sessions: list[ModelSession] = []
    by_key: dict[tuple[int, datetime], ModelSession] = {}
    current: dict[int, ModelSession] = {}
    logon = {cid: T0 - timedelta(hours=1) for cid in range(len(patterns))}
    for j in range(len(patterns[0])):
        now = T0 + j * TICK
        for cid, pattern in enumerate(patterns):
            event = pattern[j]
            if event == RELOGON:
                logon[cid] = now - timedelta(seconds=3)
            open_session = current.get(cid)
            if event == ABSENT:
                if open_session is not None:
                    open_session.missed += 1
                    if open_session.missed >= n_missed:
                        open_session.ended = open_session.last_seen
                        del current[cid]
                continue
            if open_session is not None and open_session.logon != logon[cid]:
                open_session.ended = open_session.last_seen
                open_session = None
            if open_session is None:
                open_session = by_key.get((cid, logon[cid]))
                if open_session is None:
                    open_session = ModelSession(cid, logon[cid], now, now)
                    sessions.append(open_session)
                    by_key[(cid, logon[cid])] = open_session
                open_session.ended = None
                current[cid] = open_session
            open_session.last_seen, open_session.missed = now, 0
    return sessions


def snapshot(patterns: list[list[int]], j: int, logons: dict[int, datetime]) -> Snapshot:
    now = T0 + j * TICK
    pilots = []
    for cid, pattern in enumerate(patterns):
        if pattern[j] == RELOGON:
            logons[cid] = now - timedelta(seconds=3)
        if pattern[j] != ABSENT:
            pilots.append(
                Pilot(
                    cid=cid,
                    callsign=f"TST{cid}",
                    logon_time=logons[cid],
                    latitude=float(j),
                    longitude=float(cid),
                    flight_plan=FlightPlan(departure="EGLL", arrival="KJFK"),
                )
            )
    return Snapshot(general=General(version=3, update_timestamp=now), pilots=pilots)


@settings(max_examples=300, deadline=None)
@given(
    n_missed=st.integers(min_value=1, max_value=5),
    patterns=st.integers(min_value=1, max_value=5).flatmap(
        lambda k: st.integers(min_value=1, max_value=25).flatmap(
            lambda length: st.lists(
                st.lists(
                    st.sampled_from([ABSENT, PRESENT, PRESENT, RELOGON]),
                    min_size=length,
                    max_size=length,
                ),
                min_size=k,
                max_size=k,
            )
        )
    ),
)
def test_tracker_matches_the_reference_model(n_missed: int, patterns: list[list[int]]) -> None:
    tracker = Tracker(LiveState(), missed_to_end=n_missed, reconnect_window=timedelta(minutes=30))
    logons = {cid: T0 - timedelta(hours=1) for cid in range(len(patterns))}
    opened: dict[tuple[int, datetime], datetime] = {}
    ended: dict[tuple[int, datetime], datetime] = {}
    positions = 0
    for j in range(len(patterns[0])):
        changes = tracker.apply(snapshot(patterns, j, logons), None)
        for s in changes.pilots.opened:
            assert (s.cid, s.logon_time) not in opened, "a session was opened twice"
            opened[(s.cid, s.logon_time)] = s.first_seen
        for s in changes.pilots.closed:
            ended[(s.cid, s.logon_time)] = s.last_seen
        for s in changes.pilots.resumed:
            del ended[(s.cid, s.logon_time)]
        positions += len(changes.pilots.present)
    expected = reference(patterns, n_missed)
    assert opened == {(m.cid, m.logon): m.first_seen for m in expected}
    assert ended == {(m.cid, m.logon): m.ended for m in expected if m.ended is not None}
    assert positions == sum(1 for p in patterns for e in p if e != ABSENT)
