"""The nearest-airport lookup against a brute-force haversine over every airport, including the
poles and the antimeridian."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vatsim_collector.airports.nearest import AirportIndex, haversine_nm
from vatsim_collector.airports.reference import Airport, AirportReference

PACKAGED = AirportIndex(AirportReference.packaged())


def brute_force(index: AirportIndex, lat: float, lon: float, radius_nm: float) -> tuple[int, float]:
    ref = index.reference
    dist = haversine_nm(lat, lon, ref.lat, ref.lon)
    inside = np.flatnonzero(dist <= radius_nm)
    if inside.size == 0:
        return -1, float("nan")
    best = inside[np.argmin(dist[inside])]
    return int(best), float(dist[best])


def assert_same(index: AirportIndex, lats: list[float], lons: list[float], radius: float) -> None:
    got = index.nearest(np.array(lats), np.array(lons), radius_nm=radius)
    for k, (lat, lon) in enumerate(zip(lats, lons, strict=True)):
        want, want_nm = brute_force(index, lat, lon, radius)
        if want < 0:
            assert got.index[k] == -1, (lat, lon)
            assert np.isnan(got.distance_nm[k])
            continue
        assert got.index[k] >= 0, (lat, lon, index.reference.airports[want])
        # Ties aside: the same distance, and the same airport unless two are equally near.
        assert got.distance_nm[k] == pytest.approx(want_nm, abs=1e-9)
        if got.index[k] != want:
            ref = index.reference
            other = haversine_nm(lat, lon, ref.lat[got.index[k]], ref.lon[got.index[k]])
            assert float(other) == pytest.approx(want_nm, abs=1e-9)


latitudes = st.floats(-90, 90, allow_nan=False)
longitudes = st.floats(-180, 180, allow_nan=False)
# Positions crowded where boxes are hardest: near the poles and across the antimeridian.
polar = st.builds(lambda lat, lon: (lat, lon), st.floats(84, 90) | st.floats(-90, -84), longitudes)
antimeridian = st.builds(
    lambda lat, lon: (lat, lon), latitudes, st.floats(175, 180) | st.floats(-180, -175)
)
positions = st.tuples(latitudes, longitudes) | polar | antimeridian


@st.composite
def near_an_airport(draw: st.DrawFn) -> tuple[float, float]:
    """A point a few nautical miles from a real airport (where the lookup matters)."""
    i = draw(st.integers(0, len(PACKAGED.reference) - 1))
    a = PACKAGED.reference.airports[i]
    lat = min(90.0, max(-90.0, a.lat + draw(st.floats(-0.15, 0.15))))
    lon = (a.lon + draw(st.floats(-0.3, 0.3)) + 180.0) % 360.0 - 180.0
    return lat, lon


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    points=st.lists(positions | near_an_airport(), min_size=1, max_size=40),
    radius=st.sampled_from([0.5, 2.0, 5.0, 12.0]),
)
def test_packaged_reference_matches_brute_force(
    points: list[tuple[float, float]], radius: float
) -> None:
    assert_same(PACKAGED, [p[0] for p in points], [p[1] for p in points], radius)


@settings(max_examples=120, deadline=None)
@given(
    airports=st.lists(positions, min_size=1, max_size=30),
    points=st.lists(positions, min_size=1, max_size=30),
    radius=st.floats(0.1, 600),
)
def test_made_up_airports_at_poles_and_antimeridian_match_brute_force(
    airports: list[tuple[float, float]], points: list[tuple[float, float]], radius: float
) -> None:
    ref = AirportReference(
        Airport(f"X{i:03d}", "", lat, lon, 0.0, "", "") for i, (lat, lon) in enumerate(airports)
    )
    assert_same(AirportIndex(ref), [p[0] for p in points], [p[1] for p in points], radius)


def test_across_the_antimeridian_and_at_the_pole() -> None:
    ref = AirportReference(
        [
            Airport("EAST", "", 10.0, 179.99, 0.0, "", ""),
            Airport("WEST", "", 10.0, -179.99, 0.0, "", ""),
            Airport("POLE", "", 89.999, 100.0, 0.0, "", ""),
        ]
    )
    index = AirportIndex(ref)
    got = index.nearest([10.0, 10.0, 90.0, 89.99], [-179.995, 179.995, 0.0, -80.0], radius_nm=5)
    assert [ref.airports[i].icao for i in got.index] == ["WEST", "EAST", "POLE", "POLE"]
    # 0.015° of longitude at 10°N is 0.89 nm, whichever side of 180° the point is.
    assert got.distance_nm[0] == pytest.approx(0.005 * 60 * np.cos(np.radians(10)), rel=1e-3)


def test_nothing_within_the_radius_and_empty_input() -> None:
    got = PACKAGED.nearest([0.0], [-30.0], radius_nm=5)  # mid-Atlantic
    assert got.index.tolist() == [-1]
    assert np.isnan(got.distance_nm[0])
    empty = PACKAGED.nearest([], [], radius_nm=5)
    assert empty.index.size == 0
    with pytest.raises(ValueError, match="radius_nm must be positive"):
        PACKAGED.nearest([0.0], [0.0], radius_nm=0)
