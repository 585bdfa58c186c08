"""Issue 14, point 3: the compact volume tables (migration 0007) keep every value.

A database is built at the previous revision (0006) with positions and transceivers holding
extreme values, upgraded, and read back through the application's view: every coordinate is
within 0.5e-6 degree of what was written and every other value is exact. On PostgreSQL the
stored integers are also the ones the application writes for the same degrees, so migrated and
newly written rows agree. Then a snapshot goes through the real ingest path and comes back
through the API. Runs on both backends; on SQLite 0007 changes nothing.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Float,
    Integer,
    SmallInteger,
    Text,
    column,
    func,
    insert,
    inspect,
    select,
    table,
    text,
)

from feeds import SMALL, load, parse_time
from vatsim_collector.api import create_app
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor, Outcome
from vatsim_collector.store import schema as t
from vatsim_collector.store.engine import create_db_engine
from vatsim_collector.store.migrate import alembic_config, current_revision, head_revision, upgrade
from vatsim_collector.store.partitions import PartitionManager, day_of
from vatsim_collector.store.recompute_rows import snapshot_positions
from vatsim_collector.store.types import to_micro_degrees

PREVIOUS = "0006"
# The stated precision, plus the doubles' own rounding: a read-back value is the double
# nearest n / 1e6, up to half an ulp (1.4e-14 near 180 degrees) away from it.
HALF_MICRO_DEGREE = 0.5e-6 + 1e-12

# The layout at revision 0006, written without the application's types.
OLD_POSITIONS = table(
    "positions",
    column("snapshot_id", BigInteger),
    column("pilot_session_id", BigInteger),
    column("latitude", Float),
    column("longitude", Float),
    column("altitude", Integer),
    column("groundspeed", SmallInteger),
    column("heading", SmallInteger),
    column("transponder", SmallInteger),
    column("qnh_mb", SmallInteger),
)
OLD_TRANSCEIVERS = table(
    "transceivers",
    column("snapshot_id", BigInteger),
    column("callsign", Text),
    column("transceiver_id", SmallInteger),
    column("frequency_hz", Integer),
    column("latitude", Float),
    column("longitude", Float),
    column("height_msl_m", Float),
    column("height_agl_m", Float),
    column("pilot_session_id", BigInteger),
    column("controller_session_id", BigInteger),
    column("atis_session_id", BigInteger),
)

LATITUDES = [
    90.0,
    -90.0,
    0.0,
    51.4775123456789,
    -33.946111111111,
    1e-7,
    -4.9999999e-7,
    0.0000005,
    89.9999995,
    -89.99999949,
    12.3456785,
    -0.0,
]
LONGITUDES = [
    180.0,
    -180.0,
    -0.0,
    179.9999994999,
    -179.999999501,
    0.1234565,
    -151.17722222222,
    2.5e-7,
    -2.5000001e-7,
    100.00000050000001,
    -0.0000015,
    33.333333333333,
]
START = datetime(2026, 11, 30, 23, 59, 30, tzinfo=UTC)  # the rows span two UTC days
SESSION_IDS = (1, 2**31 - 1)  # the largest id an int4 session reference holds


def _snapshot_ids() -> list[int]:
    return [t.snapshot_id_for(START + timedelta(seconds=15 * i)) for i in range(6)]


def _position_rows() -> list[dict[str, Any]]:
    rows = []
    for i, (snapshot_id, session_id) in enumerate(
        (s, p) for s in _snapshot_ids() for p in SESSION_IDS
    ):
        rows.append(
            {
                "snapshot_id": snapshot_id,
                "pilot_session_id": session_id,
                "latitude": LATITUDES[i],
                "longitude": LONGITUDES[i],
                "altitude": (2**31 - 1, -(2**31), 0, 37_000)[i % 4],
                "groundspeed": (32_767, -32_768, 0)[i % 3],
                "heading": i * 30,
                "transponder": None if i % 2 else 7777,
                "qnh_mb": None if i % 3 == 0 else 1013 - i,
            }
        )
    return rows


def _transceiver_rows() -> list[dict[str, Any]]:
    heights = [12_345.678901234567, -0.000001, 1e-300, None, 8848.86, -428.5]
    rows = []
    for i, snapshot_id in enumerate(_snapshot_ids()):
        links = [
            {"pilot_session_id": SESSION_IDS[1]},
            {"controller_session_id": 7},
            {"atis_session_id": 9},
            {},
        ][i % 4]
        rows.append(
            {
                "snapshot_id": snapshot_id,
                "callsign": ("DLH4AB", "EDDF_TWR", "EDDF_ATIS", "X")[i % 4],
                "transceiver_id": (0, 32_767)[i % 2],
                "frequency_hz": (2**31 - 1, 118_005_000)[i % 2],
                # Each coordinate may be missing on its own.
                "latitude": None if i == 3 else LATITUDES[-1 - i],
                "longitude": None if i == 4 else LONGITUDES[-1 - i],
                "height_msl_m": heights[i],
                "height_agl_m": heights[-1 - i],
                "pilot_session_id": None,
                "controller_session_id": None,
                "atis_session_id": None,
                **links,
            }
        )
    return rows


def _parents(conn: Connection) -> None:
    """Snapshots and the sessions the rows refer to, at revision 0006 (tables 0007 leaves)."""
    at = START
    for snapshot_id in _snapshot_ids():
        conn.execute(
            insert(t.snapshots).values(
                id=snapshot_id,
                update_timestamp=datetime(1970, 1, 1, tzinfo=UTC)
                + timedelta(milliseconds=snapshot_id),
                fetched_at=at,
                status="accepted",
                pilots=2,
                controllers=1,
                atis=1,
                prefiles=0,
            )
        )
    flight_id = conn.execute(
        insert(t.flights)
        .values(cid=1_000_000, callsign="DLH4AB", started_at=at)
        .returning(t.flights.c.id)
    ).scalar_one()
    session = {"cid": 1_000_000, "logon_time": at, "first_seen_at": at, "last_seen_at": at}
    for session_id in SESSION_IDS:
        conn.execute(
            insert(t.pilot_sessions).values(
                id=session_id, callsign=f"DLH{session_id}", flight_id=flight_id, **session
            )
        )
    station = {"facility": 4, "is_observer": False, "is_supervisor": False, **session}
    conn.execute(insert(t.controller_sessions).values(id=7, callsign="EDDF_TWR", **station))
    conn.execute(insert(t.atis_sessions).values(id=9, callsign="EDDF_ATIS", **station))


def _build_previous(engine: Engine) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    upgrade(engine, PREVIOUS)
    assert current_revision(engine) == PREVIOUS
    positions, transceivers = _position_rows(), _transceiver_rows()
    with engine.begin() as conn:
        if PartitionManager.applies(conn):
            for day in sorted({day_of(s) for s in _snapshot_ids()}):
                PartitionManager.create(conn, day)
        _parents(conn)
        conn.execute(insert(OLD_POSITIONS), positions)
        conn.execute(insert(OLD_TRANSCEIVERS), transceivers)
    return positions, transceivers


def _near(read: float | None, written: float | None) -> bool:
    if read is None or written is None:
        return read is None and written is None
    return abs(read - written) <= HALF_MICRO_DEGREE


def _assert_kept(
    read: list[dict[str, Any]], written: list[dict[str, Any]], key: tuple[str, ...]
) -> None:
    by_key = {tuple(r[k] for k in key): r for r in read}
    assert len(by_key) == len(read) == len(written)
    for row in written:
        got = by_key[tuple(row[k] for k in key)]
        for name, value in row.items():
            if name in ("latitude", "longitude"):
                assert _near(got[name], value), (name, got[name], value)
            else:
                assert got[name] == value, (name, got[name], value)


def test_the_migration_keeps_every_value_within_the_stated_precision(engine: Engine) -> None:
    """Downgraded past 0007 first (the fixture built head), rebuilt with data, upgraded."""
    _downgrade(engine, "0005")
    positions, transceivers = _build_previous(engine)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        read_positions = [dict(r) for r in conn.execute(select(t.positions)).mappings()]
        read_transceivers = [dict(r) for r in conn.execute(select(t.transceivers)).mappings()]
        # The analysts' views show degrees too, whatever the backend stores.
        view_positions = [
            dict(r) for r in conn.execute(text("SELECT * FROM v_positions")).mappings()
        ]
        view_transceivers = [
            dict(r) for r in conn.execute(text("SELECT * FROM v_transceivers")).mappings()
        ]
        if conn.dialect.name == "postgresql":
            # The migration's round() and the application's to_micro_degrees agree exactly,
            # so a migrated row and one written today hold the same integers.
            stored = conn.execute(
                text("SELECT snapshot_id, pilot_session_id, latitude, longitude FROM positions")
            ).all()
            expected = {
                (p["snapshot_id"], p["pilot_session_id"]): (
                    to_micro_degrees(p["latitude"]),
                    to_micro_degrees(p["longitude"]),
                )
                for p in positions
            }
            assert {(s, p): (la, lo) for s, p, la, lo in stored} == expected
    _assert_kept(read_positions, positions, ("snapshot_id", "pilot_session_id"))
    _assert_kept(read_transceivers, transceivers, ("snapshot_id", "callsign", "transceiver_id"))
    _assert_kept(view_positions, positions, ("snapshot_id", "pilot_session_id"))
    _assert_kept(view_transceivers, transceivers, ("snapshot_id", "callsign", "transceiver_id"))


def test_rows_written_after_the_migration_read_back_within_the_precision(engine: Engine) -> None:
    """The application's own statements (bound parameters, not COPY) through the new types."""
    with engine.begin() as conn:
        if PartitionManager.applies(conn):
            for day in sorted({day_of(s) for s in _snapshot_ids()}):
                PartitionManager.create(conn, day)
        _parents(conn)
        conn.execute(insert(t.positions), _position_rows())
        conn.execute(insert(t.transceivers), _transceiver_rows())
        read = [dict(r) for r in conn.execute(select(t.positions)).mappings()]
        # A comparison with degrees is translated too: the two rows within 1e-4 of the pole.
        south = conn.execute(
            select(func.count()).select_from(t.positions).where(t.positions.c.latitude <= -89.9999)
        ).scalar_one()
        read_tx = [dict(r) for r in conn.execute(select(t.transceivers)).mappings()]
    _assert_kept(read, _position_rows(), ("snapshot_id", "pilot_session_id"))
    _assert_kept(read_tx, _transceiver_rows(), ("snapshot_id", "callsign", "transceiver_id"))
    assert south == 2


def test_the_downgrade_gives_back_degrees_and_primary_keys(engine: Engine) -> None:
    _downgrade(engine, "0005")
    positions, _ = _build_previous(engine)
    upgrade(engine)
    _downgrade(engine, PREVIOUS)
    with engine.connect() as conn:
        back = [dict(r) for r in conn.execute(select(OLD_POSITIONS)).mappings()]
    _assert_kept(back, positions, ("snapshot_id", "pilot_session_id"))
    keys = inspect(engine)
    assert keys.get_pk_constraint("positions")["constrained_columns"] == [
        "snapshot_id",
        "pilot_session_id",
    ]
    assert keys.get_pk_constraint("transceivers")["constrained_columns"] == [
        "snapshot_id",
        "callsign",
        "transceiver_id",
    ]
    upgrade(engine)
    assert current_revision(engine) == head_revision()


def _downgrade(engine: Engine, revision: str) -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


# -- the application's round trip ----------------------------------------------------------


# At most six decimals, as the feed sends them: these come back as the very same doubles
# (n / 1e6, correctly rounded, is the double nearest the six-decimal number).
SIX_DECIMALS = (51.477512, -0.461389)


def _extreme_snapshot() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    doc = load(SMALL)
    pilots = doc["pilots"]
    for pilot, (lat, lon) in zip(
        pilots,
        [(90.0, 180.0), (-90.0, -180.0), (12.3456785, -98.7654321987), SIX_DECIMALS],
        strict=False,
    ):
        pilot["latitude"], pilot["longitude"] = lat, lon
    first = pilots[0]["callsign"]
    transceivers = [
        {
            "callsign": first,
            "transceivers": [
                {
                    "id": 0,
                    "frequency": 121_500_000,
                    "latDeg": -89.9999995,
                    "lonDeg": 179.9999994999,
                    "heightMslM": 10_972.801234567,
                    "heightAglM": 10_650.1,
                },
                {"id": 1, "frequency": 122_800_000},
            ],
        }
    ]
    return doc, transceivers


def test_ingested_positions_come_back_through_the_api_within_the_precision(
    database_url: str,
) -> None:
    engine = create_db_engine(database_url)
    upgrade(engine)
    try:
        doc, transceivers = _extreme_snapshot()
        ingestor = Ingestor(engine, IngestConfig())
        ingestor.restore()
        raw = orjson.dumps(doc)
        result = ingestor.ingest(raw, transceivers_raw=orjson.dumps(transceivers))
        assert result.outcome is Outcome.INGESTED
        snapshot_id = t.snapshot_id_for(parse_time(doc["general"]["update_timestamp"]))
        with engine.connect() as conn:
            stored = snapshot_positions(conn, snapshot_id)
            callsigns = dict(
                conn.execute(select(t.pilot_sessions.c.id, t.pilot_sessions.c.callsign)).all()
            )
            radio = conn.execute(
                select(t.transceivers).order_by(t.transceivers.c.transceiver_id)
            ).all()
        by_callsign = {p["callsign"]: p for p in doc["pilots"]}
        assert len(stored) == len(doc["pilots"])
        for row in stored:
            pilot = by_callsign[callsigns[row.pilot_session_id]]
            assert _near(row.latitude, pilot["latitude"])
            assert _near(row.longitude, pilot["longitude"])
            assert (row.altitude, row.groundspeed, row.heading) == (
                pilot["altitude"],
                pilot["groundspeed"],
                pilot["heading"],
            )
        six = next(
            r for r in stored if callsigns[r.pilot_session_id] == doc["pilots"][3]["callsign"]
        )
        assert (six.latitude, six.longitude) == SIX_DECIMALS
        sent = transceivers[0]["transceivers"][0]
        assert _near(radio[0].latitude, sent["latDeg"])
        assert _near(radio[0].longitude, sent["lonDeg"])
        assert (radio[0].height_msl_m, radio[0].height_agl_m) == (
            sent["heightMslM"],
            sent["heightAglM"],
        )
        assert (radio[1].latitude, radio[1].longitude, radio[1].height_msl_m) == (None, None, None)

        client = TestClient(create_app(ingestor, stale_after=3600))
        for pilot in doc["pilots"][:3]:
            response = client.get(f"/api/flights/{pilot['callsign']}/track")
            assert response.status_code == 200, response.text
            (point,) = response.json()["positions"]
            assert _near(point["latitude"], pilot["latitude"])
            assert _near(point["longitude"], pilot["longitude"])

        # The same snapshot again is refused whole: its rows are never written twice.
        assert ingestor.ingest(raw).outcome is not Outcome.INGESTED
        with engine.connect() as conn:
            assert len(snapshot_positions(conn, snapshot_id)) == len(doc["pilots"])
    finally:
        engine.dispose()


def test_a_pilot_repeated_in_the_feed_gets_one_position(ingestor: Ingestor) -> None:
    """No unique index stands behind (snapshot, session) on PostgreSQL any more."""
    doc = load(SMALL)
    later = parse_time(doc["general"]["update_timestamp"]) + timedelta(seconds=15)
    doc["general"]["update_timestamp"] = later.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    doc["pilots"].append(copy.deepcopy(doc["pilots"][0]))
    result = ingestor.ingest(orjson.dumps(doc))
    with ingestor.engine.connect() as conn:
        repeated = conn.execute(
            select(t.positions.c.snapshot_id, t.positions.c.pilot_session_id)
            .group_by(t.positions.c.snapshot_id, t.positions.c.pilot_session_id)
            .having(func.count() > 1)
        ).all()
        stored = snapshot_positions(conn, t.snapshot_id_for(later))
    assert repeated == []
    # The snapshot itself is kept, with one position per pilot session.
    assert result.outcome is Outcome.INGESTED
    assert len(stored) == len({(p["cid"], p["callsign"], p["logon_time"]) for p in doc["pilots"]})
