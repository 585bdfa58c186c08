"""The boundary filter (area, margin in nm, controller patterns) and the distances it relies on."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import orjson
import pytest
import shapely

from vatsim_collector.airspace.boundary import BoundaryFilter
from vatsim_collector.airspace.sectors import SectorLoadError, SectorSet
from vatsim_collector.tracking.geodesy import (
    EARTH_RADIUS_NM,
    great_circle_nm,
    great_circle_nm_array,
)


def destination(
    lat: float, lon: float, bearing_deg: float, distance_nm: float
) -> tuple[float, float]:
    """(lat, lon) reached from a point along a great circle (the spherical direct problem)."""
    phi, lam, theta = math.radians(lat), math.radians(lon), math.radians(bearing_deg)
    delta = distance_nm / EARTH_RADIUS_NM
    phi2 = math.asin(
        math.sin(phi) * math.cos(delta) + math.cos(phi) * math.sin(delta) * math.cos(theta)
    )
    lam2 = lam + math.atan2(
        math.sin(theta) * math.sin(delta) * math.cos(phi),
        math.cos(delta) - math.sin(phi) * math.sin(phi2),
    )
    return math.degrees(phi2), (math.degrees(lam2) + 540.0) % 360.0 - 180.0


def distance_to_area_nm(area: shapely.Geometry, lat: float, lon: float) -> float:
    """Great-circle distance to the nearest point of a densely sampled boundary."""
    edge = shapely.get_coordinates(shapely.segmentize(shapely.boundary(area), 0.002))
    return float(great_circle_nm_array(lat, lon, edge[:, 1], edge[:, 0]).min())


# -- geodesy ----------------------------------------------------------------------------------


def test_great_circle_known_distances() -> None:
    one_degree = EARTH_RADIUS_NM * math.pi / 180.0
    assert great_circle_nm(50.0, 8.0, 50.0, 8.0) == 0.0
    assert great_circle_nm(0.0, 0.0, 1.0, 0.0) == pytest.approx(one_degree)
    assert great_circle_nm(0.0, 179.5, 0.0, -179.5) == pytest.approx(one_degree)
    assert great_circle_nm(-10.0, 0.0, 10.0, 180.0) == pytest.approx(math.pi * EARTH_RADIUS_NM)
    # Frankfurt to London Heathrow, about 354 nm
    assert great_circle_nm(50.033, 8.570, 51.470, -0.454) == pytest.approx(354, abs=3)


def test_great_circle_array_matches_scalar_and_broadcasts() -> None:
    rng = np.random.default_rng(7)
    lat1, lat2 = rng.uniform(-90, 90, 200), rng.uniform(-90, 90, 200)
    lon1, lon2 = rng.uniform(-180, 180, 200), rng.uniform(-180, 180, 200)
    array = great_circle_nm_array(lat1, lon1, lat2, lon2)
    scalar = [great_circle_nm(*row) for row in zip(lat1, lon1, lat2, lon2, strict=True)]
    np.testing.assert_allclose(array, scalar, rtol=1e-12)
    assert great_circle_nm_array(0.0, 0.0, [0.0, 1.0], 0.0).shape == (2,)


# -- area and margin --------------------------------------------------------------------------

BOX = shapely.box(7.0, 49.0, 10.0, 51.0)


def test_without_margin_the_area_and_its_edge_are_inside() -> None:
    boundary = BoundaryFilter(BOX)
    inside = boundary.pilots_inside([8.0, 10.0, 10.01, 0.0], [50.0, 50.0, 50.0, 50.0])
    assert inside.tolist() == [True, True, False, False]
    assert inside.dtype == np.bool_


@pytest.mark.parametrize("margin_nm", [10.0, 30.0, 100.0])
@pytest.mark.parametrize(
    ("start", "bearing"),
    [
        ((50.0, 10.0), 90.0),  # east at 50°N
        ((50.0, 7.0), 270.0),  # west at 50°N
        ((51.0, 8.5), 0.0),
        ((49.0, 8.5), 180.0),
        ((51.0, 10.0), 45.0),  # off a corner
        ((49.0, 7.0), 225.0),
    ],
)
def test_margin_keeps_everything_within_it_and_little_beyond(
    margin_nm: float, start: tuple[float, float], bearing: float
) -> None:
    boundary = BoundaryFilter(BOX, margin_nm=margin_nm)
    near = destination(*start, bearing, margin_nm - 1.0)
    far = destination(*start, bearing, margin_nm + 5.0)
    assert distance_to_area_nm(BOX, *near) <= margin_nm - 1.0 + 1e-6
    assert distance_to_area_nm(BOX, *far) >= margin_nm + 4.9
    inside = boundary.pilots_inside([near[1], far[1]], [near[0], far[0]])
    assert inside.tolist() == [True, False]


def test_margin_holds_all_round_on_a_grid() -> None:
    margin = 30.0
    boundary = BoundaryFilter(BOX, margin_nm=margin)
    grid_lons, grid_lats = np.meshgrid(np.linspace(5.5, 11.5, 61), np.linspace(48.0, 52.0, 41))
    lons, lats = grid_lons.ravel(), grid_lats.ravel()
    inside = boundary.pilots_inside(lons, lats)
    distance = np.array(
        [
            distance_to_area_nm(BOX, float(lat), float(lon))
            for lat, lon in zip(lats, lons, strict=True)
        ]
    )
    in_box = shapely.intersects_xy(BOX, lons, lats)
    assert inside[in_box | (distance <= margin)].all()
    assert not inside[~in_box & (distance >= margin + 5.0)].any()


def test_margin_wraps_across_the_antimeridian() -> None:
    boundary = BoundaryFilter(shapely.box(170.0, -10.0, 180.0, 10.0), margin_nm=30.0)
    # 0.2° of longitude at the equator is 12 nm; 1° is 60 nm
    assert boundary.pilots_inside([-179.8, -179.0, 179.0], [0.0, 0.0, 0.0]).tolist() == [
        True,
        False,
        True,
    ]


def test_invalid_area_is_repaired_and_bad_arguments_refused() -> None:
    bow_tie = shapely.Polygon([(0, 0), (2, 2), (2, 0), (0, 2)])
    boundary = BoundaryFilter(bow_tie)
    assert boundary.pilots_inside([0.3, 1.0], [1.0, 0.3]).tolist() == [True, False]
    with pytest.raises(ValueError, match="margin_nm"):
        BoundaryFilter(BOX, margin_nm=-1.0)
    with pytest.raises(ValueError, match="non-empty"):
        BoundaryFilter(shapely.Polygon())


# -- from sectors and files -------------------------------------------------------------------


def sector_set() -> SectorSet:
    def feature(name: str, geometry: shapely.Polygon) -> dict[str, object]:
        return {
            "type": "Feature",
            "properties": {"id": name},
            "geometry": orjson.loads(shapely.to_geojson(geometry)),
        }

    return SectorSet.from_mapping(
        {
            "type": "FeatureCollection",
            "features": [
                feature("WEST", shapely.box(0, 0, 2, 2)),
                feature("EAST", shapely.box(2, 0, 4, 2)),
                feature("WEST", shapely.box(10, 10, 12, 12)),
                feature("OTHER", shapely.box(20, 20, 22, 22)),
            ],
        }
    )


def test_from_sectors_is_the_union_of_every_feature_with_those_names() -> None:
    boundary = BoundaryFilter.from_sectors(sector_set(), ["WEST", "EAST"])
    inside = boundary.pilots_inside([1, 3, 11, 21, 2], [1, 1, 11, 21, 1])
    assert inside.tolist() == [True, True, True, False, True]


def test_from_sectors_unknown_name_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="NOWHERE"):
        BoundaryFilter.from_sectors(sector_set(), ["WEST", "NOWHERE"])


def test_from_geojson_unions_polygons_and_skips_other_features(tmp_path: Path) -> None:
    path = tmp_path / "area.geojson"
    features = [
        {"type": "Feature", "properties": {}, "geometry": orjson.loads(shapely.to_geojson(g))}
        for g in (shapely.box(0, 0, 1, 1), shapely.box(5, 5, 6, 6), shapely.Point(3, 3))
    ]
    path.write_bytes(orjson.dumps({"type": "FeatureCollection", "features": features}))
    boundary = BoundaryFilter.from_geojson(path, margin_nm=0.0)
    assert boundary.pilots_inside([0.5, 5.5, 3.0], [0.5, 5.5, 3.0]).tolist() == [True, True, False]


def test_from_geojson_unusable_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "area.txt"
    path.write_text("no json here")
    with pytest.raises(SectorLoadError, match=r"area\.txt"):
        BoundaryFilter.from_geojson(path)
    points_only = tmp_path / "points.geojson"
    point = {
        "type": "Feature",
        "properties": {},
        "geometry": {"type": "Point", "coordinates": [0, 0]},
    }
    points_only.write_bytes(orjson.dumps({"type": "FeatureCollection", "features": [point]}))
    with pytest.raises(SectorLoadError, match="no usable polygon"):
        BoundaryFilter.from_geojson(points_only)


def test_a_boundary_file_may_be_a_bare_multipolygon(tmp_path: Path) -> None:
    path = tmp_path / "division.geojson"
    shape = shapely.MultiPolygon([shapely.box(0, 0, 1, 1), shapely.box(5, 5, 6, 6)])
    path.write_bytes(shapely.to_geojson(shape).encode())
    boundary = BoundaryFilter.from_geojson(path, margin_nm=0.0)
    assert boundary.pilots_inside([0.5, 5.5, 3.0], [0.5, 5.5, 3.0]).tolist() == [True, True, False]


def test_vatspy_langen_with_a_margin() -> None:
    boundary = BoundaryFilter.from_sectors(SectorSet.default(), ["EDGG"], margin_nm=20.0)
    # Frankfurt inside; Paris and Munich (EDMM) well outside
    inside = boundary.pilots_inside([8.57, 2.55, 11.79], [50.03, 49.01, 48.35])
    assert inside.tolist() == [True, False, False]


# -- controllers ------------------------------------------------------------------------------


def test_controller_patterns_match_case_insensitively() -> None:
    boundary = BoundaryFilter(BOX, controller_patterns=["ED*", "lovv_*_ctr"])
    assert boundary.controller_allowed("EDDF_TWR")
    assert boundary.controller_allowed("eddf_n_app")
    assert boundary.controller_allowed("LOVV_N_CTR")
    assert not boundary.controller_allowed("LOVV_TWR")
    assert not boundary.controller_allowed("LFPG_TWR")


def test_without_patterns_every_controller_is_allowed() -> None:
    assert BoundaryFilter(BOX).controller_allowed("ANY_CTR")
