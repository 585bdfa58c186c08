"""Sector loading and assignment: every sector rule of docs/architecture.md, on hand-built
GeoJSON."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from vatsim_collector.airspace.sectors import Sector, SectorLoadError, SectorSet

Json = dict[str, Any]


def box(x0: float, y0: float, x1: float, y1: float) -> list[list[list[float]]]:
    return [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]


def feature(
    ident: Any,
    coordinates: Any,
    *,
    kind: str = "Polygon",
    lower: Any = None,
    upper: Any = None,
    **extra: Any,
) -> Json:
    properties: Json = {"id": ident, **extra}
    if lower is not None:
        properties["lower_ft"] = lower
    if upper is not None:
        properties["upper_ft"] = upper
    return {
        "type": "Feature",
        "properties": properties,
        "geometry": {"type": kind, "coordinates": coordinates},
    }


def collection(*features: Any) -> Json:
    return {"type": "FeatureCollection", "features": list(features)}


def names_at(
    sectors: SectorSet, points: Sequence[tuple[float, float]], alt: float = 30_000.0
) -> list[str | None]:
    lons = [p[0] for p in points]
    lats = [p[1] for p in points]
    found = sectors.assign(lons, lats, [alt] * len(points))
    return [sectors.sectors[i].name if i >= 0 else None for i in found]


# -- most specific wins -----------------------------------------------------------------------


def test_nested_small_sector_wins_inside_it_and_big_one_elsewhere() -> None:
    sectors = SectorSet.from_mapping(
        collection(feature("BIG", box(0, 0, 10, 10)), feature("SMALL", box(2, 2, 4, 4)))
    )
    assert names_at(sectors, [(3, 3), (8, 8), (20, 20)]) == ["SMALL", "BIG", None]


@pytest.mark.parametrize("order", [("A", "B"), ("B", "A")])
def test_overlapping_sectors_smaller_area_wins_whatever_the_file_order(
    order: tuple[str, str],
) -> None:
    shapes = {"A": box(0, 0, 6, 6), "B": box(4, 4, 8, 8)}  # A 36 sq deg, B 16
    sectors = SectorSet.from_mapping(collection(*(feature(n, shapes[n]) for n in order)))
    assert names_at(sectors, [(5, 5), (1, 1), (7, 7)]) == ["B", "A", "B"]


def test_equal_areas_tie_break_on_file_order() -> None:
    sectors = SectorSet.from_mapping(
        collection(feature("FIRST", box(0, 0, 2, 2)), feature("SECOND", box(1, 0, 3, 2)))
    )
    assert names_at(sectors, [(1.5, 1)]) == ["FIRST"]


def test_boundary_points_count_as_inside() -> None:
    sectors = SectorSet.from_mapping(collection(feature("S", box(0, 0, 10, 10))))
    assert names_at(sectors, [(10, 5), (0, 0), (10.000001, 5)]) == ["S", "S", None]


def test_area_is_square_degrees_scaled_by_cos_latitude() -> None:
    sectors = SectorSet.from_mapping(
        collection(feature("EQ", box(0, -1, 2, 1)), feature("SIXTY", box(0, 59, 2, 61)))
    )
    equator, sixty = sectors.sectors
    assert equator.area == pytest.approx(4.0)
    assert sixty.area == pytest.approx(4.0 * math.cos(math.radians(60.0)))


# -- altitude bands ---------------------------------------------------------------------------


def band_set() -> SectorSet:
    return SectorSet.from_mapping(
        collection(
            # the band sector is the larger one: a band beats area
            feature("UPPER", box(0, 0, 10, 10), lower=10_000, upper="24500"),
            feature("LOCAL", box(2, 2, 4, 4)),
        )
    )


@pytest.mark.parametrize(
    ("alt", "expected"),
    [
        (20_000.0, "UPPER"),  # inside the band: band beats the smaller unbounded sector
        (10_000.0, "UPPER"),  # lower limit inclusive
        (24_499.0, "UPPER"),
        (24_500.0, "LOCAL"),  # upper limit exclusive
        (5_000.0, "LOCAL"),  # below the band the unbounded sector wins
        (float("nan"), "LOCAL"),  # unknown altitude fits no band
    ],
)
def test_band_sector_wins_only_within_its_band(alt: float, expected: str) -> None:
    assert names_at(band_set(), [(3, 3)], alt) == [expected]


def test_outside_every_band_and_no_unbounded_sector_is_nowhere() -> None:
    assert names_at(band_set(), [(8, 8)], 5_000.0) == [None]
    assert names_at(band_set(), [(8, 8)], 15_000.0) == ["UPPER"]


def test_stacked_bands_share_a_limit_without_overlap() -> None:
    sectors = SectorSet.from_mapping(
        collection(
            feature("LOW", box(0, 0, 10, 10), upper=10_000),
            feature("HIGH", box(0, 0, 10, 10), lower="10000"),
        )
    )
    found = sectors.assign([5, 5, 5], [5, 5, 5], [9_999, 10_000, 45_000])
    assert [sectors.sectors[i].name for i in found] == ["LOW", "HIGH", "HIGH"]
    low, high = sectors.sectors
    assert (low.lower_ft, low.upper_ft, high.lower_ft, high.upper_ft) == (
        None,
        10_000.0,
        10_000.0,
        None,
    )


def test_altitude_properties_can_be_renamed_or_ignored() -> None:
    data = collection(feature("S", box(0, 0, 1, 1), floor=100, ceiling=200, lower="junk"))
    renamed = SectorSet.from_mapping(data, lower_property="floor", upper_property="ceiling")
    assert (renamed.sectors[0].lower_ft, renamed.sectors[0].upper_ft) == (100.0, 200.0)
    ignored = SectorSet.from_mapping(data, lower_property=None, upper_property=None)
    assert (ignored.sectors[0].lower_ft, ignored.sectors[0].upper_ft) == (None, None)


# -- the antimeridian -------------------------------------------------------------------------

ACROSS = [(179.9, 0), (-179.9, 0), (180, 0), (175, 5), (-175, -5)]
AWAY = [(0, 0), (165, 0), (-165, 0), (179.9, 20)]


@pytest.mark.parametrize(
    "ring",
    [
        [[170, -10], [-170, -10], [-170, 10], [170, 10], [170, -10]],  # drawn across, 170 → -170
        [[170, -10], [190, -10], [190, 10], [170, 10], [170, -10]],  # longitudes beyond 180
        [[-190, -10], [-170, -10], [-170, 10], [-190, 10], [-190, -10]],  # beyond -180
    ],
)
def test_ring_crossing_the_antimeridian_is_split_and_works(ring: list[list[float]]) -> None:
    sectors = SectorSet.from_mapping(collection(feature("PAC", [ring])))
    assert names_at(sectors, ACROSS) == ["PAC"] * len(ACROSS)
    assert names_at(sectors, AWAY) == [None] * len(AWAY)
    assert sectors.report.split_at_antimeridian == ["PAC"]
    xmin, _, xmax, _ = sectors.sectors[0].geometry.bounds
    assert (xmin, xmax) == (-180, 180)
    assert sectors.sectors[0].area == pytest.approx(400 * math.cos(0), rel=1e-6)


def test_hole_across_the_antimeridian_stays_a_hole() -> None:
    shell = [[160, -10], [-160, -10], [-160, 10], [160, 10], [160, -10]]
    hole = [[175, -5], [175, 5], [-175, 5], [-175, -5], [175, -5]]
    sectors = SectorSet.from_mapping(collection(feature("RING", [shell, hole])))
    assert names_at(sectors, [(170, 0), (-165, 0), (179.9, 0), (-179.9, 0)]) == [
        "RING",
        "RING",
        None,
        None,
    ]


def test_ring_round_a_pole_encloses_the_cap() -> None:
    ring = [[0, -60], [90, -60], [180, -60], [-90, -60], [0, -60]]
    sectors = SectorSet.from_mapping(collection(feature("SOUTH", [ring])))
    assert names_at(sectors, [(0, -70), (135, -89), (-179.9, -61)]) == ["SOUTH"] * 3
    assert names_at(sectors, [(0, -50), (100, 10)]) == [None, None]


def test_band_drawn_from_minus_180_to_180_spans_the_globe() -> None:
    sectors = SectorSet.from_mapping(collection(feature("CAP", box(-180, -90, 180, -60))))
    assert names_at(sectors, [(0, -70), (179.9, -70), (-179.9, -89)]) == ["CAP"] * 3
    assert names_at(sectors, [(0, -50)]) == [None]
    assert sectors.report.split_at_antimeridian == []


def test_polygon_already_split_at_the_antimeridian_like_vatspy() -> None:
    parts = [box(170, -10, 180, 10), box(-180, -10, -170, 10)]
    sectors = SectorSet.from_mapping(collection(feature("NZZO", parts, kind="MultiPolygon")))
    assert names_at(sectors, ACROSS) == ["NZZO"] * len(ACROSS)
    assert names_at(sectors, AWAY) == [None] * len(AWAY)
    assert sectors.report.split_at_antimeridian == []


def test_longitudes_beyond_180_in_queries_are_wrapped() -> None:
    sectors = SectorSet.from_mapping(collection(feature("S", box(-175, 0, -170, 5))))
    assert names_at(sectors, [(187.5, 2.5)]) == ["S"]


# -- repair and rejection ---------------------------------------------------------------------


def test_bow_tie_is_repaired_keeping_both_lobes_and_reported() -> None:
    bow_tie = [[[0, 0], [2, 2], [2, 0], [0, 2], [0, 0]]]
    sectors = SectorSet.from_mapping(collection(feature("BOW", bow_tie)))
    assert sectors.report.repaired == ["BOW"]
    assert names_at(sectors, [(0.3, 1), (1.7, 1), (1, 0.3), (1, 1.7)]) == ["BOW", "BOW", None, None]
    assert sectors.sectors[0].geometry.is_valid


def test_unclosed_ring_is_closed() -> None:
    sectors = SectorSet.from_mapping(
        collection(feature("OPEN", [[[0, 0], [4, 0], [4, 4], [0, 4]]]))
    )
    assert names_at(sectors, [(2, 2)]) == ["OPEN"]
    assert sectors.report.repaired == []


def test_bad_features_are_rejected_with_reasons_and_the_rest_load() -> None:
    nameless = feature("", box(0, 0, 1, 1))
    del nameless["properties"]["id"]
    data = collection(
        feature("GOOD", box(0, 0, 1, 1)),
        nameless,
        feature("PT", [1.0, 2.0], kind="Point"),
        feature("INVERTED", box(0, 0, 1, 1), lower=20_000, upper=10_000),
        feature("EQUAL", box(0, 0, 1, 1), lower=10_000, upper=10_000),
        feature("WORDS", box(0, 0, 1, 1), lower="FL100"),
        {"type": "Feature", "properties": {"id": "NOGEO"}, "geometry": None},
        feature("EMPTY", []),
        feature("FLAT", [[[0, 0], [1, 1], [2, 2], [0, 0]]]),
        feature("POLAR", box(0, 80, 1, 95)),
        "not a feature",
    )
    sectors = SectorSet.from_mapping(data)
    assert [s.name for s in sectors.sectors] == ["GOOD"]
    reasons = dict(sectors.report.rejected)
    assert list(reasons) == [
        "#1",
        "PT",
        "INVERTED",
        "EQUAL",
        "WORDS",
        "NOGEO",
        "EMPTY",
        "FLAT",
        "POLAR",
        "#10",
    ]
    assert "no name" in reasons["#1"]
    assert "'Point' is not polygonal" in reasons["PT"]
    assert "not below upper" in reasons["INVERTED"]
    assert "not below upper" in reasons["EQUAL"]
    assert "lower_ft is not a finite number: 'FL100'" in reasons["WORDS"]
    assert reasons["NOGEO"] == "no geometry"
    assert "empty" in reasons["EMPTY"]
    assert "unrepairable" in reasons["FLAT"]
    assert "latitude" in reasons["POLAR"]
    assert reasons["#10"] == "not a GeoJSON Feature"


def test_duplicate_names_are_all_usable() -> None:
    sectors = SectorSet.from_mapping(
        collection(
            feature("FIR", box(0, 0, 1, 1)),
            feature("OTHER", box(5, 5, 6, 6)),
            feature("FIR", box(10, 10, 11, 11)),
        )
    )
    assert sectors.names() == ["FIR", "OTHER"]
    assert [s.index for s in sectors.by_name("FIR")] == [0, 2]
    assert sectors.by_name("NOPE") == []
    assert list(sectors.assign([0.5, 10.5], [0.5, 10.5], [0, 0])) == [0, 2]


def test_numeric_names_become_strings() -> None:
    sectors = SectorSet.from_mapping(collection(feature(42, box(0, 0, 1, 1))))
    assert sectors.names() == ["42"]


def test_assign_shapes_and_empty_input() -> None:
    sectors = SectorSet.from_mapping(collection(feature("S", box(0, 0, 1, 1))))
    empty = sectors.assign([], [], [])
    assert empty.dtype == np.int64
    assert empty.shape == (0,)
    nan = float("nan")
    assert sectors.assign([nan, 0.5], [0.5, nan], [0.0, 0.0]).tolist() == [-1, -1]
    with pytest.raises(ValueError, match="equal length"):
        sectors.assign([0.5, 0.5], [0.5], [0.0])


# -- files ------------------------------------------------------------------------------------


def test_from_geojson_with_a_custom_name_property(tmp_path: Path) -> None:
    path = tmp_path / "sectors.geojson"
    data = collection(feature("ignored", box(0, 0, 1, 1), name="Alpha"))
    path.write_bytes(orjson.dumps(data))
    sectors = SectorSet.from_geojson(path, name_property="name")
    assert sectors.names() == ["Alpha"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"<kml>not json</kml>", "not GeoJSON"),
        (b"[1, 2, 3]", "not GeoJSON"),
        (b'{"type": "Feature", "features": []}', "no usable sector among 1 feature(s)"),
        (b'{"type": "FeatureCollection"}', "FeatureCollection without a features list"),
        (b'{"type": "Topology", "objects": {}}', "expected a FeatureCollection, a Feature or a"),
        (b'{"coordinates": [[0, 0]]}', "found an object without a type"),
        (b'{"type": "FeatureCollection", "features": []}', "no usable sector"),
        (
            orjson.dumps(collection(feature("PT", [0, 0], kind="Point"))),
            "no usable sector among 1 feature(s); first problem: PT",
        ),
    ],
)
def test_unusable_file_raises_naming_file_and_problem(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "broken.geojson"
    path.write_bytes(content)
    with pytest.raises(SectorLoadError) as raised:
        SectorSet.from_geojson(path)
    assert str(path) in str(raised.value)
    assert problem in str(raised.value)


@pytest.mark.parametrize("kind", ["Polygon", "MultiPolygon"])
def test_a_bare_geometry_file_is_one_sector_named_after_the_file(tmp_path: Path, kind: str) -> None:
    """Some divisions publish their area as a bare geometry, not a FeatureCollection."""
    shape = shapely.box(0, 0, 1, 1)
    if kind == "MultiPolygon":
        shape = shapely.MultiPolygon([shape, shapely.box(2, 2, 3, 3)])
    path = tmp_path / "EDWW-area.geojson"
    path.write_bytes(shapely.to_geojson(shape).encode())
    sectors = SectorSet.from_geojson(path)
    assert sectors.names() == ["EDWW-area"]
    assert sectors.by_name("EDWW-area")[0].geometry.equals(shape)


def test_a_file_of_one_feature_is_that_sector(tmp_path: Path) -> None:
    path = tmp_path / "one.geojson"
    path.write_bytes(orjson.dumps(feature("EGTT", box(0, 0, 1, 1))))
    assert SectorSet.from_geojson(path).names() == ["EGTT"]


def test_missing_file_raises_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.geojson"
    with pytest.raises(SectorLoadError, match=r"nowhere\.geojson"):
        SectorSet.from_geojson(path)


# -- the shipped VATSpy file ------------------------------------------------------------------


@pytest.fixture(scope="module")
def vatspy() -> SectorSet:
    return SectorSet.default()


def test_vatspy_loads_whole(vatspy: SectorSet) -> None:
    # 1,102 features, 6 ids drawn twice; 16 features have self-intersecting rings.
    assert len(vatspy.sectors) == 1102
    assert len(vatspy.names()) == 1096
    assert vatspy.report.rejected == []
    assert vatspy.report.split_at_antimeridian == []  # already split at ±180 in the file
    assert len(vatspy.report.repaired) == 16
    assert {"ENBD", "LDZO", "GMMM", "VAAH"} <= set(vatspy.report.repaired)
    for sector in vatspy.sectors:
        assert sector.geometry.is_valid
        xmin, ymin, xmax, ymax = sector.geometry.bounds
        assert -180 <= xmin <= xmax <= 180
        assert -90 <= ymin <= ymax <= 90


def test_vatspy_frankfurt_is_in_the_smallest_langen_sector(vatspy: SectorSet) -> None:
    # Frankfurt lies inside EDGG, its sub-sectors EDGG-BAD, -CS, -S and upper EDXX;
    # EDGG-BAD has the smallest area.
    assert names_at(vatspy, [(8.57, 50.03)]) == ["EDGG-BAD"]
    point = shapely.Point(8.57, 50.03)
    assert shapely.intersects(vatspy.by_name("EDGG")[0].geometry, point)


def test_vatspy_pacific_across_the_antimeridian(vatspy: SectorSet) -> None:
    points = [(179.9, -40), (-179.9, -40), (179.9, 60), (-179.9, 60), (179.9, -17), (-179.9, -17)]
    assert names_at(vatspy, points) == ["NZZO", "NZZO", "UHMM-K1", "PAZA-P", "NFFJ", "NFFJ"]


# -- assign agrees with a slow reference ------------------------------------------------------


def reference_assign(sectors: list[Sector], points: list[tuple[float, float, float]]) -> list[int]:
    """Straight from the rule: among containing sectors whose band fits, band first, then
    smallest cos-latitude-scaled area, then the first in the file."""
    out = []
    for lon, lat, alt in points:
        candidates = []
        for s in sectors:
            if not shapely.intersects(s.geometry, shapely.Point(lon, lat)):
                continue
            if s.lower_ft is not None and not alt >= s.lower_ft:
                continue
            if s.upper_ft is not None and not alt < s.upper_ft:
                continue
            g = s.geometry
            area = g.area * math.cos(math.radians(g.centroid.y))
            has_band = s.lower_ft is not None or s.upper_ft is not None
            candidates.append((not has_band, area, s.index))
        out.append(min(candidates)[2] if candidates else -1)
    return out


LIMITS = st.one_of(st.none(), st.sampled_from([0.0, 5_000.0, 10_000.0, 20_000.0, 30_000.0]))


@st.composite
def random_boxes(draw: st.DrawFn) -> Json:
    features = []
    for i in range(draw(st.integers(1, 7))):
        x0, y0 = draw(st.integers(0, 2)), draw(st.integers(45, 46))
        x1, y1 = x0 + draw(st.integers(1, 3)), y0 + draw(st.integers(1, 3))
        lower, upper = draw(LIMITS), draw(LIMITS)
        if lower is not None and upper is not None and lower >= upper:
            lower, upper = None, upper
        features.append(feature(f"S{i % 3}", box(x0, y0, x1, y1), lower=lower, upper=upper))
    return collection(*features)


def coordinate(low: int, high: int) -> st.SearchStrategy[float]:
    """Grid lines and half-way points (edges, shared corners, ties) as well as any float."""
    return st.one_of(
        st.integers(low, high).map(float),
        st.integers(2 * low, 2 * high).map(lambda h: h / 2),
        st.floats(low, high),
    )


@settings(max_examples=200, deadline=None)
@given(
    data=random_boxes(),
    points=st.lists(
        st.tuples(
            coordinate(-1, 6),
            coordinate(44, 50),
            st.sampled_from([0.0, 4_999.0, 5_000.0, 10_000.0, 15_000.0, 20_000.0, 35_000.0]),
        ),
        min_size=1,
        max_size=40,
    ),
)
def test_assign_matches_slow_reference(
    data: Json, points: list[tuple[float, float, float]]
) -> None:
    sectors = SectorSet.from_mapping(data)
    lons, lats, alts = (np.array(column) for column in zip(*points, strict=True))
    assert sectors.assign(lons, lats, alts).tolist() == reference_assign(sectors.sectors, points)
