"""Flight summaries ignore positions no aircraft could have reached, and absurd altitudes, while
real tracks -- relocations and reconnects included -- count as before."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vatsim_collector.airspace.summaries import (
    MAX_GROUNDSPEED_KT,
    PositionSample,
    flight_summary,
)
from vatsim_collector.tracking.geodesy import great_circle_nm

T0 = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
STEP = timedelta(seconds=15)  # the feed's cadence
HEATHROW = (51.4706, -0.4619)


def sample(
    n: float, lat: float, lon: float, alt: int = 0, *, session: int = 1, gs: int = 0
) -> PositionSample:
    return PositionSample(session, T0 + n * STEP, lat, lon, alt, gs)


def flown(track: list[PositionSample]) -> float:
    """Distance along a track, leg by leg, summed exactly as the summary does (``fsum``)."""
    return math.fsum(
        great_circle_nm(a.latitude, a.longitude, b.latitude, b.longitude)
        for a, b in pairwise(track)
    )


def parked(samples: int, alt: int = 83) -> list[PositionSample]:
    return [sample(n, *HEATHROW, alt) for n in range(samples)]


def test_the_issues_parked_flight_has_no_distance_and_its_real_altitude() -> None:
    # 14 minutes at the gate, and one position 3,000 nm away at 99,999,999,999 ft.
    track = parked(57)
    bogus = sample(20.5, HEATHROW[0] - 50.0, HEATHROW[1] - 0.5, 99_999_999_999)
    summary = flight_summary([*track, bogus], [], [])
    assert summary.distance_nm == 0.0
    assert summary.max_altitude == 83
    assert summary.online_minutes == pytest.approx(14.0)  # time still counts every position


def test_a_few_bad_positions_in_a_row_are_stepped_over() -> None:
    track = [sample(n, 50.0 + n * 0.02, 0.0, 30_000) for n in range(12)]
    bad = [sample(5.3, -40.0, 120.0, 41_000), sample(5.6, -40.0, 120.0, 41_000)]
    summary = flight_summary([*track, *bad], [], [])
    assert summary.distance_nm == flown(track)
    assert summary.max_altitude == 30_000


@pytest.mark.parametrize("where", ["first", "last"])
def test_a_bad_first_or_last_position_is_dropped(where: str) -> None:
    track = [sample(n, 50.0 + n * 0.02, 0.0, 10_000 + n) for n in range(1, 9)]
    at = 0 if where == "first" else 9
    bogus = sample(at, 10.0, 100.0, 60_000)
    summary = flight_summary([*track, bogus], [], [])
    assert summary.distance_nm == flown(track)
    assert summary.max_altitude == 10_008


def test_a_relocation_inside_a_session_keeps_both_parts_but_not_the_jump() -> None:
    # Slewed from Heathrow to Frankfurt (about 350 nm) in one snapshot, then flying on.
    before = [sample(n, 51.47 + n * 0.01, -0.46, 2_000) for n in range(10)]
    after = [sample(10 + n, 50.03 + n * 0.01, 8.57, 5_000) for n in range(10)]
    summary = flight_summary([*before, *after], [], [])
    assert summary.distance_nm == pytest.approx(flown(before) + flown(after))
    assert summary.max_altitude == 5_000


def test_a_far_jump_after_missed_snapshots_is_flight_when_the_time_allows() -> None:
    # Two hours without a position, then 800 nm further on: 400 kt, a possible flight.
    first = [sample(n, 40.0, -30.0 + n * 0.03, 37_000) for n in range(5)]
    later = sample(4 + 480, 40.0, -30.0 + 800 / 60 / math.cos(math.radians(40.0)), 37_000)
    summary = flight_summary([*first, later], [], [])
    assert summary.distance_nm == pytest.approx(flown([*first, later]))
    assert summary.distance_nm > 790


def test_a_reconnect_far_away_is_a_new_session_and_counts() -> None:
    one = [sample(n, *HEATHROW, 0, session=1) for n in range(4)]
    two = [sample(5 + n, 40.64 + n * 0.01, -73.78, 1_500, session=2) for n in range(4)]
    summary = flight_summary([*one, *two], [], [])
    assert summary.distance_nm == pytest.approx(flown(two))
    assert summary.max_altitude == 1_500


@pytest.mark.parametrize("altitude", [100_001, 2_000_000_000, -2_001, -99_999])
def test_altitudes_outside_the_plausible_band_are_not_the_maximum(altitude: int) -> None:
    track = parked(5, alt=3_000)
    odd = sample(5, *HEATHROW, altitude)
    assert flight_summary([*track, odd], [], []).max_altitude == 3_000
    assert flight_summary([odd], [], []).max_altitude is None


@pytest.mark.parametrize("altitude", [99_999, 100_000, -2_000, -1_300])
def test_altitudes_inside_the_band_count(altitude: int) -> None:
    assert flight_summary([sample(0, *HEATHROW, altitude)], [], []).max_altitude == altitude


@pytest.mark.parametrize(
    ("lat", "lon"), [(1e308, 0.0), (math.nan, 0.0), (0.0, math.inf), (91.0, 0.0), (0.0, -181.0)]
)
def test_coordinates_off_the_earth_are_never_part_of_the_track(lat: float, lon: float) -> None:
    track = [sample(n, 50.0 + n * 0.02, 0.0, 8_000) for n in range(6)]
    summary = flight_summary([*track, sample(2.5, lat, lon, 9_000)], [], [])
    assert summary.distance_nm == flown(track)
    assert summary.max_altitude == 8_000


# --- properties --------------------------------------------------------------------------------

# Each step at most 0.03 degrees of latitude and of longitude: under 2.6 nm in 15 s, about
# 620 kt, a fast airliner; real tracks are far from the bound.
steps = st.tuples(st.floats(-0.03, 0.03), st.floats(-0.03, 0.03), st.integers(-1_000, 45_000))
starts = st.tuples(st.floats(-60.0, 60.0), st.floats(-170.0, 170.0))


def track_of(
    start: tuple[float, float], raw: list[tuple[float, float, int]]
) -> list[PositionSample]:
    lat, lon = start
    track: list[PositionSample] = []
    for n, (dlat, dlon, alt) in enumerate(raw):
        lat, lon = lat + dlat, lon + dlon
        track.append(sample(2 * n, lat, lon, alt, gs=400))  # 30 s apart: room for an outlier
    return track


@given(starts, st.lists(steps, min_size=1, max_size=40))
def test_a_real_track_counts_every_leg_and_every_altitude(
    start: tuple[float, float], raw: list[tuple[float, float, int]]
) -> None:
    track = track_of(start, raw)
    summary = flight_summary(track, [], [])
    assert summary.distance_nm == flown(track)
    assert summary.max_altitude == max(p.altitude for p in track)


@given(
    starts,
    st.lists(steps, min_size=2, max_size=40),
    st.integers(0, 40),
    st.one_of(st.integers(-2_000, 100_000), st.integers(10**6, 10**12)),
)
def test_a_track_with_an_outlier_gives_what_the_track_without_it_gives(
    start: tuple[float, float], raw: list[tuple[float, float, int]], where: int, altitude: int
) -> None:
    track = track_of(start, raw)
    where = min(where, len(track))
    # Half-way in time between its neighbours, near the antipode of the start: thousands of
    # nautical miles from every real position, in 15 s.
    outlier = sample(2 * where - 1, -start[0], start[1] - 180.0, altitude)
    assert great_circle_nm(start[0], start[1], outlier.latitude, outlier.longitude) > (
        MAX_GROUNDSPEED_KT
    )
    with_outlier = flight_summary([*track, outlier], [], [])
    without = flight_summary(track, [], [])
    assert with_outlier.distance_nm == without.distance_nm
    assert with_outlier.max_altitude == without.max_altitude
    assert with_outlier.online_minutes >= without.online_minutes  # its time is still online
