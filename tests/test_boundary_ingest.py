"""The optional boundary filter in ingest: only the region's traffic is recorded, and what was
left out is counted."""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from feeds import SMALL, load
from vatsim_collector.airspace.boundary import BoundaryFilter
from vatsim_collector.airspace.sectors import SectorSet
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor, Outcome
from vatsim_collector.store import schema as t

EUROPE = SectorSet.from_mapping(
    {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"id": "EUR"},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[-10, 35], [30, 35], [30, 70], [-10, 70], [-10, 35]]],
                },
            }
        ],
    }
)


def count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_only_pilots_inside_and_matching_controllers_are_recorded(engine: Engine) -> None:
    doc = load(SMALL)
    boundary = BoundaryFilter.from_sectors(EUROPE, ["EUR"], controller_patterns=["ED*", "LF*"])
    ingestor = Ingestor(engine, IngestConfig(), boundary=boundary)
    ingestor.restore()
    raw = SMALL.read_bytes()
    assert ingestor.ingest(raw).outcome is Outcome.INGESTED

    inside = [p for p in doc["pilots"] if -10 <= p["longitude"] <= 30 and 35 <= p["latitude"] <= 70]
    wanted = [c for c in doc["controllers"] if c["callsign"].upper().startswith(("ED", "LF"))]
    wanted_atis = [a for a in doc["atis"] if a["callsign"].upper().startswith(("ED", "LF"))]
    assert 0 < len(inside) < len(doc["pilots"])
    assert wanted
    assert count(engine, t.pilot_sessions) == len(inside)
    assert count(engine, t.positions) == len(inside)
    assert count(engine, t.controller_sessions) == len(wanted)
    assert count(engine, t.atis_sessions) == len(wanted_atis)
    stats = ingestor.stats.as_dict()
    assert stats["pilots_filtered"] == len(doc["pilots"]) - len(inside)
    assert stats["controllers_filtered"] == len(doc["controllers"]) - len(wanted)
    assert stats["atis_filtered"] == len(doc["atis"]) - len(wanted_atis)


def test_a_margin_keeps_pilots_just_outside(engine: Engine) -> None:
    doc = load(SMALL)
    near = [
        p
        for p in doc["pilots"]
        if -10.5 <= p["longitude"] <= 30.5
        and 34.6 <= p["latitude"] <= 70.4
        and not (-10 <= p["longitude"] <= 30 and 35 <= p["latitude"] <= 70)
    ]
    wide = BoundaryFilter.from_sectors(EUROPE, ["EUR"], margin_nm=60)
    narrow = BoundaryFilter.from_sectors(EUROPE, ["EUR"])
    lons = [p["longitude"] for p in near]
    lats = [p["latitude"] for p in near]
    assert near  # two pilots of this snapshot are within 0.5° outside the box
    assert wide.pilots_inside(lons, lats).all()
    assert not narrow.pilots_inside(lons, lats).any()
