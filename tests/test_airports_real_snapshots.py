"""Acceptance (issue 13): on the real shared snapshots, pilots on the ground are placed at the
airport they filed from or to wherever one of those is within the radius (docs/airports.md;
``scripts/airport_agreement.py`` prints the same figures with every case listed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from feeds import REAL_FEEDS
from vatsim_collector.airports.agreement import agreement
from vatsim_collector.airports.ground import GroundRule, place_on_ground
from vatsim_collector.airports.nearest import AirportIndex, haversine_nm
from vatsim_collector.airports.reference import AirportReference
from vatsim_collector.feed.decode import decode_snapshot

pytestmark = pytest.mark.skipif(
    not REAL_FEEDS, reason="the shared snapshots (../shared/data/feeds) are not there"
)
RADIUS = 5.0
PACKAGED = AirportIndex(AirportReference.packaged())


@pytest.mark.parametrize("path", REAL_FEEDS, ids=lambda p: p.stem)
def test_pilots_on_the_ground_are_placed_where_they_filed(path: Path) -> None:
    pilots = decode_snapshot(path.read_bytes()).pilots
    report = agreement(PACKAGED, pilots, radius_nm=RADIUS)
    print(
        f"{path.stem}: {report.on_ground} on the ground, {report.checked} checked,"
        f" {report.agreeing} agree"
    )
    assert report.on_ground > 0
    assert report.checked > 0
    assert report.disagreements == []
    assert report.agreeing == report.checked


@pytest.mark.parametrize("path", REAL_FEEDS, ids=lambda p: p.stem)
def test_every_slow_pilot_near_its_filed_airport_is_placed(path: Path) -> None:
    """Independent of the placement: a slow pilot, low over a filed airport within the radius,
    is on the ground there (or at an airport nearer still)."""
    pilots = decode_snapshot(path.read_bytes()).pilots
    ref, rule = PACKAGED.reference, GroundRule()
    lat = np.array([p.latitude for p in pilots])
    lon = np.array([p.longitude for p in pilots])
    alt = np.array([p.altitude for p in pilots], dtype=float)
    speed = np.array([p.groundspeed for p in pilots], dtype=float)
    place = place_on_ground(PACKAGED, lat, lon, alt, speed, radius_nm=RADIUS)
    expected = 0
    for i, pilot in enumerate(pilots):
        plan = pilot.flight_plan
        if plan is None or pilot.groundspeed > rule.max_ground_speed_kt:
            continue
        for code in {plan.departure.upper(), plan.arrival.upper()} - {""}:
            airport = ref.get(code)
            if airport is None:
                continue
            d = float(haversine_nm(lat[i], lon[i], airport.lat, airport.lon))
            if d <= RADIUS and alt[i] - airport.elevation_ft <= rule.max_height_ft:
                expected += 1
                assert place.on_ground[i], (pilot.callsign, code)
                assert place.distance_nm[i] <= d + 1e-9
                break
    assert expected > 0


def test_an_override_file_corrects_a_misplaced_reference_airport(tmp_path: Path) -> None:
    """airportsdata puts ELLX (Luxembourg) 15 nm south-west of the field, so the real snapshots'
    aircraft parked there are placed nowhere; the override file puts it right."""
    lux = [p for p in REAL_FEEDS if "20210613" in p.name or "20201209" in p.name]
    if not lux:
        pytest.skip("the snapshots with aircraft parked at ELLX are not there")
    override = tmp_path / "airports.csv"
    override.write_text("icao,lat,lon\nELLX,49.6233,6.2044\n")
    fixed = AirportIndex(AirportReference.load(override))
    for path in lux:
        pilots = decode_snapshot(path.read_bytes()).pilots
        before = agreement(PACKAGED, pilots, radius_nm=RADIUS)
        after = agreement(fixed, pilots, radius_nm=RADIUS)
        assert after.disagreements == []
        assert len(after.slow_unplaced) < len(before.slow_unplaced)
        assert after.checked > before.checked
        assert set(after.slow_unplaced) < set(before.slow_unplaced)


CORRECTIONS = Path(__file__).resolve().parents[1] / "docs" / "airports-corrections.csv"


@pytest.mark.parametrize("path", REAL_FEEDS, ids=lambda p: p.stem)
def test_with_the_documented_corrections_only_co_located_codes_disagree(path: Path) -> None:
    """docs/airports-corrections.csv moves Brussels, Melsbroek, Luxembourg and other Belgian
    fields to where they are; pilots parked there are then checked too. A disagreement left is
    a pilot placed at another code of the same airfield (Brussels and Melsbroek share one)."""
    fixed = AirportIndex(AirportReference.load(CORRECTIONS))
    pilots = decode_snapshot(path.read_bytes()).pilots
    before = agreement(PACKAGED, pilots, radius_nm=RADIUS)
    after = agreement(fixed, pilots, radius_nm=RADIUS)
    assert after.checked >= before.checked
    assert len(after.slow_unplaced) <= len(before.slow_unplaced)
    ref = fixed.reference
    for d in after.disagreements:
        placed = ref.get(d.placed)
        assert placed is not None
        apart = [
            float(haversine_nm(placed.lat, placed.lon, a.lat, a.lon))
            for a in (ref.get(code) for code in d.filed_within)
            if a is not None
        ]
        assert min(apart) <= 1.5, d
