"""Flight and controller summaries: every counting rule, pinned on hand-built inputs."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vatsim_collector.airspace.summaries import (
    ContactSpan,
    HandledSpan,
    PositionSample,
    SectorVisit,
    controller_summary,
    flight_summary,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NM_PER_DEGREE = 3440.065 * math.pi / 180


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def pos(
    session: int,
    minutes: float,
    *,
    lat: float = 0.0,
    lon: float = 0.0,
    alt: int = 0,
    gs: int = 0,
) -> PositionSample:
    return PositionSample(session, at(minutes), lat, lon, alt, gs)


def contact(session: int, start: float, end: float, callsign: str = "EGLL_TWR") -> ContactSpan:
    return ContactSpan(session, callsign, "118.500", at(start), at(end))


def handled(flight: int, start: datetime, end: datetime, callsign: str = "") -> HandledSpan:
    return HandledSpan(flight, callsign or f"FLT{flight}", start, end)


def steady(minutes: list[float], gs: int = 0) -> list[PositionSample]:
    return [pos(1, m, gs=gs) for m in minutes]


# --- flights -----------------------------------------------------------------------------------


def test_two_sessions_count_neither_time_nor_distance_across_the_gap() -> None:
    first = [pos(1, 0, lat=0.0), pos(1, 10, lat=1.0)]
    second = [pos(2, 40, lat=5.0), pos(2, 50, lat=6.0)]
    # Given out of order, and interleaved, to show grouping and sorting happen inside.
    summary = flight_summary([second[1], first[1], second[0], first[0]], [], [])
    assert summary.online_minutes == pytest.approx(20.0)
    assert summary.distance_nm == pytest.approx(2 * NM_PER_DEGREE)


def test_a_session_with_one_position_adds_no_time_but_its_altitude_counts() -> None:
    positions = [pos(1, 0, alt=3000), pos(1, 10, alt=5000), pos(2, 20, lat=3.0, alt=9000)]
    summary = flight_summary(positions, [], [])
    assert summary.online_minutes == pytest.approx(10.0)
    assert summary.distance_nm == 0.0
    assert summary.max_altitude == 9000


def test_single_position_flight_has_no_coverage() -> None:
    summary = flight_summary([pos(1, 0, alt=1200, gs=250)], [contact(7, 0, 0)], [])
    assert summary.online_minutes == 0.0
    assert summary.airborne_minutes == 0.0
    assert summary.distance_nm == 0.0
    assert summary.max_altitude == 1200
    assert summary.coverage is None
    assert summary.airborne_coverage is None


def test_empty_flight() -> None:
    summary = flight_summary([], [], [])
    assert summary.max_altitude is None
    assert summary.coverage is None
    assert summary.controllers == []
    assert summary.sectors == []


def test_airborne_needs_more_than_50_knots_at_the_start_of_the_pair() -> None:
    positions = [pos(1, 0, gs=50), pos(1, 10, gs=51), pos(1, 25, gs=400), pos(1, 30, gs=0)]
    summary = flight_summary(positions, [], [])
    assert summary.online_minutes == pytest.approx(30.0)
    # (0,10) starts at 50 kt: ground. (10,25) at 51 and (25,30) at 400: airborne.
    assert summary.airborne_minutes == pytest.approx(20.0)
    assert summary.airborne_coverage == 0.0


def test_exactly_50_knots_throughout_is_never_airborne() -> None:
    summary = flight_summary(steady([0, 5, 10], gs=50), [], [])
    assert summary.airborne_minutes == 0.0
    assert summary.airborne_coverage is None


def test_two_overlapping_controllers_count_once() -> None:
    positions = steady([0, 10, 20, 30])
    contacts = [contact(1, 0, 20, "EGTT_CTR"), contact(2, 10, 30, "LON_S_CTR")]
    summary = flight_summary(positions, contacts, [])
    assert summary.coverage == pytest.approx(1.0)


def test_coverage_counts_pairs_in_contact_at_both_ends() -> None:
    positions = steady([0, 10, 20, 30])
    summary = flight_summary(positions, [contact(1, 0, 10)], [])
    assert summary.coverage == pytest.approx(1 / 3)


def test_one_snapshot_contacts_at_both_ends_do_not_cover_the_pair_between() -> None:
    positions = steady([0, 10])
    summary = flight_summary(positions, [contact(1, 0, 0), contact(2, 10, 10)], [])
    assert summary.coverage == 0.0


def test_handover_at_a_shared_snapshot_covers_both_pairs() -> None:
    positions = steady([0, 10, 20])
    summary = flight_summary(positions, [contact(1, 0, 10), contact(2, 10, 20)], [])
    assert summary.coverage == pytest.approx(1.0)


def test_airborne_coverage_only_looks_at_airborne_pairs() -> None:
    positions = [pos(1, 0, gs=10), pos(1, 10, gs=200), pos(1, 20, gs=200), pos(1, 30, gs=200)]
    # Contact on the ground pair and the first airborne pair only.
    summary = flight_summary(positions, [contact(1, 0, 20)], [])
    assert summary.airborne_minutes == pytest.approx(20.0)
    assert summary.coverage == pytest.approx(2 / 3)
    assert summary.airborne_coverage == pytest.approx(1 / 2)


def test_controllers_worked_sum_per_session_and_sort_by_minutes_then_callsign() -> None:
    contacts = [
        contact(1, 0, 10, "EGLL_TWR"),
        contact(2, 10, 30, "EGTT_CTR"),
        contact(1, 40, 50, "EGLL_TWR"),
        contact(3, 50, 70, "EGLL_APP"),
        contact(4, 70, 70, "EGLL_GND"),
    ]
    summary = flight_summary(steady([0, 70]), contacts, [])
    assert summary.controllers == [
        {"controller_session_id": 3, "callsign": "EGLL_APP", "minutes": pytest.approx(20.0)},
        {"controller_session_id": 1, "callsign": "EGLL_TWR", "minutes": pytest.approx(20.0)},
        {"controller_session_id": 2, "callsign": "EGTT_CTR", "minutes": pytest.approx(20.0)},
        {"controller_session_id": 4, "callsign": "EGLL_GND", "minutes": 0.0},
    ]


def test_sectors_sum_per_name_and_sort_by_minutes_then_name() -> None:
    visits = [
        SectorVisit("EGTT", at(0), at(30)),
        SectorVisit("EHAA", at(30), at(45)),
        SectorVisit("EGTT", at(80), at(90)),
        SectorVisit("EBBU", at(45), at(80)),
    ]
    summary = flight_summary([], [], visits)
    assert summary.sectors == [
        {"sector": "EGTT", "minutes": pytest.approx(40.0)},
        {"sector": "EBBU", "minutes": pytest.approx(35.0)},
        {"sector": "EHAA", "minutes": pytest.approx(15.0)},
    ]


def test_naive_datetimes_are_rejected_in_flights() -> None:
    naive = datetime(2024, 5, 1, 12, 0)
    with pytest.raises(ValueError, match="naive"):
        flight_summary([PositionSample(1, naive, 0, 0, 0, 0)], [], [])
    with pytest.raises(ValueError, match="naive"):
        flight_summary([], [ContactSpan(1, "X", "118.000", at(0), naive)], [])
    with pytest.raises(ValueError, match="naive"):
        flight_summary([], [], [SectorVisit("EGTT", naive, at(0))])


def test_intervals_ending_before_they_start_are_rejected() -> None:
    with pytest.raises(ValueError, match="before it starts"):
        flight_summary([], [contact(1, 10, 0)], [])
    with pytest.raises(ValueError, match="before it starts"):
        controller_summary(at(10), at(0), [], [])


# --- controllers -------------------------------------------------------------------------------


def test_session_across_midnight_splits_into_two_utc_hours() -> None:
    first, last = datetime(2024, 5, 1, 23, 40, tzinfo=UTC), datetime(2024, 5, 2, 0, 20, tzinfo=UTC)
    spans = [
        handled(
            1, datetime(2024, 5, 1, 23, 50, tzinfo=UTC), datetime(2024, 5, 2, 0, 10, tzinfo=UTC)
        ),
        handled(
            2, datetime(2024, 5, 2, 0, 15, tzinfo=UTC), datetime(2024, 5, 2, 0, 15, tzinfo=UTC)
        ),
    ]
    summary = controller_summary(first, last, ["118.500"], spans)
    assert summary.duration_minutes == pytest.approx(40.0)
    assert summary.hourly == [
        {
            "hour": datetime(2024, 5, 1, 23, tzinfo=UTC),
            "online_minutes": pytest.approx(20.0),
            "contact_minutes": pytest.approx(10.0),
            "aircraft": 1,
        },
        {
            "hour": datetime(2024, 5, 2, 0, tzinfo=UTC),
            "online_minutes": pytest.approx(20.0),
            "contact_minutes": pytest.approx(10.0),
            "aircraft": 2,
        },
    ]


def test_session_over_several_days_has_every_hour_in_between() -> None:
    first = datetime(2024, 12, 30, 22, 30, tzinfo=UTC)
    last = datetime(2025, 1, 1, 1, 15, tzinfo=UTC)
    summary = controller_summary(first, last, [], [])
    hours = [row["hour"] for row in summary.hourly]
    assert hours[0] == datetime(2024, 12, 30, 22, tzinfo=UTC)
    assert hours[-1] == datetime(2025, 1, 1, 1, tzinfo=UTC)
    assert len(hours) == 28
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(hours))
    minutes = [row["online_minutes"] for row in summary.hourly]
    assert minutes[0] == pytest.approx(30.0)
    assert minutes[-1] == pytest.approx(15.0)
    assert minutes[1:-1] == [pytest.approx(60.0)] * 26
    assert sum(minutes) == pytest.approx(summary.duration_minutes)


def test_hours_are_reported_in_utc_even_for_other_offsets() -> None:
    plus2 = datetime(2024, 5, 2, 3, 40, tzinfo=timezone(timedelta(hours=2)))
    summary = controller_summary(plus2, plus2 + timedelta(minutes=30), [], [])
    assert [row["hour"] for row in summary.hourly] == [
        datetime(2024, 5, 2, 1, tzinfo=UTC),
        datetime(2024, 5, 2, 2, tzinfo=UTC),
    ]
    assert all(row["hour"].utcoffset() == timedelta(0) for row in summary.hourly)


def test_hourly_aircraft_counts_distinct_flights_touching_each_hour() -> None:
    first, last = datetime(2024, 5, 1, 10, 0, tzinfo=UTC), datetime(2024, 5, 1, 13, 0, tzinfo=UTC)

    def t(hour: int, minute: int) -> datetime:
        return datetime(2024, 5, 1, hour, minute, tzinfo=UTC)

    spans = [
        handled(1, t(10, 5), t(10, 15)),  # flight 1 twice in hour 10: counts once
        handled(1, t(10, 30), t(10, 40)),
        handled(2, t(10, 50), t(11, 0)),  # ends exactly at 11:00, so it touches hour 11 too
        handled(3, t(11, 30), t(11, 30)),  # a single snapshot
        handled(4, t(12, 59), t(13, 0)),  # touches the last instant of the session
    ]
    summary = controller_summary(first, last, ["118.500"], spans)
    assert [(row["hour"].hour, row["aircraft"]) for row in summary.hourly] == [
        (10, 2),
        (11, 2),
        (12, 1),
        (13, 1),
    ]
    assert [row["contact_minutes"] for row in summary.hourly] == [
        pytest.approx(30.0),
        0.0,
        pytest.approx(1.0),
        0.0,
    ]
    # last_seen on the hour: that hour is present with no online time.
    assert summary.hourly[-1]["online_minutes"] == 0.0
    assert summary.aircraft_handled == 4


def test_contact_outside_the_session_belongs_to_no_hour_but_to_the_aircraft() -> None:
    first, last = at(0), at(30)
    summary = controller_summary(first, last, [], [handled(1, at(-10), at(10))])
    assert [row["contact_minutes"] for row in summary.hourly] == [pytest.approx(10.0)]
    assert summary.per_aircraft[0]["minutes"] == pytest.approx(20.0)


def test_sequential_aircraft_peak_at_one() -> None:
    spans = [handled(i, at(10 * i), at(10 * i + 5)) for i in range(5)]
    summary = controller_summary(at(0), at(60), [], spans)
    assert summary.aircraft_handled == 5
    assert summary.peak_concurrent == 1


def test_overlapping_aircraft_peak_at_their_count() -> None:
    spans = [handled(1, at(0), at(30)), handled(2, at(5), at(25)), handled(3, at(10), at(20))]
    spans += [handled(4, at(40), at(50))]
    summary = controller_summary(at(0), at(60), [], spans)
    assert summary.aircraft_handled == 4
    assert summary.peak_concurrent == 3


def test_one_flight_with_overlapping_intervals_counts_once() -> None:
    spans = [handled(1, at(0), at(20)), handled(1, at(10), at(30)), handled(1, at(30), at(40))]
    summary = controller_summary(at(0), at(40), [], spans)
    assert summary.aircraft_handled == 1
    assert summary.peak_concurrent == 1


def test_intervals_touching_at_one_instant_are_concurrent_then() -> None:
    spans = [handled(1, at(0), at(10)), handled(2, at(10), at(20)), handled(3, at(20), at(20))]
    summary = controller_summary(at(0), at(20), [], spans)
    assert summary.peak_concurrent == 2


def test_per_aircraft_minutes_and_order() -> None:
    spans = [
        handled(7, at(0), at(10), "BAW1"),
        handled(8, at(0), at(25), "DLH2"),
        handled(7, at(30), at(45), "BAW1"),
        handled(9, at(50), at(75), "AFR3"),
    ]
    summary = controller_summary(at(0), at(80), [], spans)
    assert summary.per_aircraft == [
        {"flight_id": 9, "callsign": "AFR3", "minutes": pytest.approx(25.0)},
        {"flight_id": 7, "callsign": "BAW1", "minutes": pytest.approx(25.0)},
        {"flight_id": 8, "callsign": "DLH2", "minutes": pytest.approx(25.0)},
    ]


def test_frequencies_are_deduplicated_in_first_seen_order() -> None:
    summary = controller_summary(at(0), at(1), ["121.500", "118.500", "121.500"], [])
    assert summary.frequencies == ["121.500", "118.500"]


def test_naive_datetimes_are_rejected_in_controller_sessions() -> None:
    naive = datetime(2024, 5, 1, 12, 0)
    with pytest.raises(ValueError, match="naive"):
        controller_summary(naive, at(10), [], [])
    with pytest.raises(ValueError, match="naive"):
        controller_summary(at(0), at(10), [], [HandledSpan(1, "X", naive, at(5))])


# --- properties --------------------------------------------------------------------------------

# Start anywhere in a day, so midnight and multi-day sessions come up naturally.
bases = st.integers(0, 24 * 3600 - 1).map(lambda s: T0 + timedelta(seconds=s))
sessions = st.lists(
    st.lists(
        st.tuples(
            st.integers(0, 900), st.integers(0, 500), st.floats(-80, 80), st.floats(-180, 180)
        ),
        min_size=1,
        max_size=8,
    ),
    max_size=4,
)
windows = st.lists(st.tuples(st.integers(0, 20000), st.integers(0, 6000)), max_size=8)


def build_flight(
    base: datetime,
    raw_sessions: list[list[tuple[int, int, float, float]]],
    raw_contacts: list[tuple[int, int]],
) -> tuple[list[PositionSample], list[ContactSpan]]:
    positions: list[PositionSample] = []
    clock = base
    for session_id, raw in enumerate(raw_sessions):
        for step, gs, lat, lon in raw:
            clock += timedelta(seconds=step)
            positions.append(PositionSample(session_id, clock, lat, lon, 10000, gs))
        clock += timedelta(minutes=20)  # a gap between sessions
    contacts = [
        ContactSpan(
            i % 3,
            f"C{i % 3}",
            "118.500",
            base + timedelta(seconds=s),
            base + timedelta(seconds=s + d),
        )
        for i, (s, d) in enumerate(raw_contacts)
    ]
    return positions, contacts


@given(bases, sessions, windows)
def test_coverage_is_a_fraction_and_matches_a_direct_check(
    base: datetime,
    raw_sessions: list[list[tuple[int, int, float, float]]],
    raw_contacts: list[tuple[int, int]],
) -> None:
    positions, contacts = build_flight(base, raw_sessions, raw_contacts)
    summary = flight_summary(positions, contacts, [])
    assert 0.0 <= summary.airborne_minutes <= summary.online_minutes

    online = airborne = covered = covered_airborne = 0.0
    for session_id in {p.session_id for p in positions}:
        own = sorted((p for p in positions if p.session_id == session_id), key=lambda p: p.at)
        for a, b in pairwise(own):
            dt = (b.at - a.at).total_seconds()
            hit = any(c.started_at <= a.at and c.ended_at >= b.at for c in contacts)
            online += dt
            covered += dt if hit else 0.0
            if a.groundspeed > 50:
                airborne += dt
                covered_airborne += dt if hit else 0.0
    if online == 0:
        assert summary.coverage is None
    else:
        assert summary.coverage is not None
        assert 0.0 <= summary.coverage <= 1.0
        assert summary.coverage == pytest.approx(covered / online)
    if airborne == 0:
        assert summary.airborne_coverage is None
    else:
        assert summary.airborne_coverage is not None
        assert 0.0 <= summary.airborne_coverage <= 1.0
        assert summary.airborne_coverage == pytest.approx(covered_airborne / airborne)


# Sessions of a flight flown at airliner speeds: every leg counts towards the distance.
flown_sessions = st.lists(
    st.lists(
        st.tuples(st.floats(-0.02, 0.02), st.floats(-0.02, 0.02), st.integers(0, 480)),
        min_size=2,
        max_size=12,
    ),
    min_size=1,
    max_size=4,
)


@given(bases, flown_sessions, windows, st.randoms(use_true_random=False))
def test_a_flight_summary_does_not_depend_on_the_order_of_its_rows(
    base: datetime,
    raw_sessions: list[list[tuple[float, float, int]]],
    raw_contacts: list[tuple[int, int]],
    shuffle: random.Random,
) -> None:
    # The database returns a flight's rows in no set order (on PostgreSQL it changes with the
    # table's history, e.g. after a rolled-back batch): every order must give the same row,
    # to the last bit of every float.
    positions: list[PositionSample] = []
    clock = base
    for session_id, moves in enumerate(raw_sessions):
        lat, lon = 10.0 + session_id, 20.0
        for dlat, dlon, gs in moves:
            clock += timedelta(seconds=15)
            lat, lon = lat + dlat, lon + dlon
            positions.append(PositionSample(session_id, clock, lat, lon, 30000, gs))
        clock += timedelta(minutes=20)
    _, contacts = build_flight(base, [], raw_contacts)
    visits = [SectorVisit(f"S{i % 2}", c.started_at, c.ended_at) for i, c in enumerate(contacts)]
    expected = flight_summary(positions, contacts, visits)
    for _ in range(3):
        shuffle.shuffle(positions)
        shuffle.shuffle(contacts)
        shuffle.shuffle(visits)
        assert flight_summary(positions, contacts, visits) == expected


handled_spans = st.lists(
    st.tuples(st.integers(1, 6), st.integers(0, 3 * 24 * 3600), st.integers(0, 4 * 3600)),
    max_size=20,
)


def brute_peak(spans: list[HandledSpan]) -> int:
    return max(
        (
            len({o.flight_id for o in spans if o.started_at <= s.started_at <= o.ended_at})
            for s in spans
        ),
        default=0,
    )


@given(bases, st.integers(0, 3 * 24 * 3600), handled_spans)
def test_controller_summary_invariants(
    base: datetime, length: int, raw: list[tuple[int, int, int]]
) -> None:
    first, last = base, base + timedelta(seconds=length)
    # Keep spans inside the session, as contacts only exist while the controller is online.
    spans = []
    for flight, start, duration in raw:
        begin = first + timedelta(seconds=min(start, length))
        spans.append(handled(flight, begin, min(begin + timedelta(seconds=duration), last)))
    summary = controller_summary(first, last, ["118.500"], spans)

    total = sum((s.ended_at - s.started_at).total_seconds() for s in spans) / 60
    assert summary.aircraft_handled == len({s.flight_id for s in spans})
    assert summary.peak_concurrent == brute_peak(spans)
    assert summary.peak_concurrent <= summary.aircraft_handled
    assert sum(r["online_minutes"] for r in summary.hourly) == pytest.approx(
        summary.duration_minutes
    )
    assert sum(r["minutes"] for r in summary.per_aircraft) == pytest.approx(total)
    assert sum(r["contact_minutes"] for r in summary.hourly) == pytest.approx(total)

    hours = [r["hour"] for r in summary.hourly]
    assert hours == sorted(hours)
    assert hours[0] <= first < hours[0] + timedelta(hours=1)
    assert hours[-1] <= last < hours[-1] + timedelta(hours=1)
    for row in summary.hourly:
        h, end = row["hour"], row["hour"] + timedelta(hours=1)
        touching = {s.flight_id for s in spans if s.started_at < end and s.ended_at >= h}
        assert row["aircraft"] == len(touching)
        overlap = sum(
            max(0.0, (min(s.ended_at, end) - max(s.started_at, h)).total_seconds()) for s in spans
        )
        assert row["contact_minutes"] == pytest.approx(overlap / 60, abs=1e-9)
