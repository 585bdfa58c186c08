"""What an archive file of positions or transceivers holds: its columns, their order, types
and Parquet encodings, the query that reads them from the database, and the conversion of a
page of database rows into an Arrow record batch.

A file is usable alone: each row carries its snapshot time (``time``, UTC) and the keys of its
session (id, cid, callsign, logon time), never a name. Rows are sorted by session and then time,
so within a session the keys repeat and times, coordinates and speeds change little from row to
row: delta encoding of integers turns them into a few bits per row, then zstd. Latitude and
longitude of positions are stored as DECIMAL(9,6) (integer micro-degrees) when every value of
the file is exactly such a decimal, as the feed's five-decimal values are; a file with a value
that is not (none seen in the real feed) keeps them as DOUBLE, so nothing is ever rounded.
Transceiver coordinates and heights are DOUBLE (the feed sends them unrounded).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import aliased

from vatsim_collector.errors.exceptions import DataRejected
from vatsim_collector.store import schema as t

if TYPE_CHECKING:
    import pyarrow as pa

ARCHIVED_TABLES = ("positions", "transceivers")
Coordinates = Literal["decimal", "double"]
# Micro-degrees: the feed's five decimals are kept exactly, and ±180° fits a 32-bit integer.
DEGREE_SCALE = 6
_DECIMAL_PRECISION = 9


class InexactCoordinates(DataRejected):
    """A latitude or longitude is not exactly a DEGREE_SCALE-decimal number."""


@dataclass(frozen=True)
class Layout:
    table: str
    # (name, kind) in file order; kind is one of _ARROW_KINDS or "degrees" (positions' lat/lon).
    columns: tuple[tuple[str, str], ...]
    # The columns identifying a row, to compare a file's rows with the database's.
    key: tuple[str, ...]

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.columns]

    def schema(self, coordinates: Coordinates) -> pa.Schema:
        import pyarrow as pa

        return pa.schema([pa.field(n, _arrow_type(k, coordinates)) for n, k in self.columns])

    def parquet_options(self, coordinates: Coordinates) -> dict[str, Any]:
        """Encodings per column (``pyarrow.parquet.ParquetWriter`` keywords)."""
        encodings = {}
        for name, kind in self.columns:
            if kind == "text":
                continue  # dictionary-encoded: a handful of callsigns repeated in runs
            floating = kind == "float64" or (kind == "degrees" and coordinates == "double")
            encodings[name] = "BYTE_STREAM_SPLIT" if floating else "DELTA_BINARY_PACKED"
        return {
            "use_dictionary": [n for n, k in self.columns if k == "text"],
            "column_encoding": encodings,
            "store_decimal_as_integer": True,
        }

    def query(self, start_id: int, end_id: int) -> Select[Any]:
        """Every row with a snapshot id in [start_id, end_id), in file order and columns."""
        return _QUERIES[self.table](start_id, end_id)

    def key_query(self, start_id: int, end_id: int) -> Select[Any]:
        """The ``key`` columns of every row in the window (``time`` as the snapshot id)."""
        table = t.metadata.tables[self.table]
        columns = [table.c["snapshot_id" if k == "time" else k] for k in self.key]
        return select(*columns).where(_in_window(table.c.snapshot_id, start_id, end_id))

    def count(self, start_id: int, end_id: int) -> Select[Any]:
        table = t.metadata.tables[self.table]
        return (
            select(func.count())
            .select_from(table)
            .where(table.c.snapshot_id >= start_id, table.c.snapshot_id < end_id)
        )

    def batch(self, rows: Sequence[Sequence[Any]], coordinates: Coordinates) -> pa.RecordBatch:
        """Database rows (in ``query`` order) as a record batch of ``schema(coordinates)``."""
        import pyarrow as pa

        values = list(zip(*rows, strict=True)) if rows else [()] * len(self.columns)
        arrays = [
            _arrow_array(column, kind, coordinates)
            for column, (_, kind) in zip(values, self.columns, strict=True)
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema(coordinates))


POSITIONS = Layout(
    "positions",
    (
        ("pilot_session_id", "int64"),
        ("cid", "int32"),
        ("callsign", "text"),
        ("logon_time", "time_us"),
        ("time", "time_ms"),
        ("latitude", "degrees"),
        ("longitude", "degrees"),
        ("altitude", "int32"),
        ("groundspeed", "int16"),
        ("heading", "int16"),
        ("transponder", "int16"),
        ("qnh_mb", "int16"),
    ),
    key=("time", "pilot_session_id"),
)

TRANSCEIVERS = Layout(
    "transceivers",
    (
        ("callsign", "text"),
        ("transceiver_id", "int16"),
        ("cid", "int32"),
        ("logon_time", "time_us"),
        ("pilot_session_id", "int64"),
        ("controller_session_id", "int64"),
        ("atis_session_id", "int64"),
        ("time", "time_ms"),
        ("frequency_hz", "int32"),
        ("latitude", "float64"),
        ("longitude", "float64"),
        ("height_msl_m", "float64"),
        ("height_agl_m", "float64"),
    ),
    key=("time", "callsign", "transceiver_id"),
)

LAYOUTS = {layout.table: layout for layout in (POSITIONS, TRANSCEIVERS)}


def _in_window(column: Any, start_id: int, end_id: int) -> ColumnElement[bool]:
    condition: ColumnElement[bool] = (column >= start_id) & (column < end_id)
    return condition


def _positions_query(start_id: int, end_id: int) -> Select[Any]:
    p, s = t.positions, t.pilot_sessions
    return (
        select(
            p.c.pilot_session_id,
            s.c.cid,
            s.c.callsign,
            s.c.logon_time,
            p.c.snapshot_id,
            p.c.latitude,
            p.c.longitude,
            p.c.altitude,
            p.c.groundspeed,
            p.c.heading,
            p.c.transponder,
            p.c.qnh_mb,
        )
        .join(s, s.c.id == p.c.pilot_session_id)
        .where(_in_window(p.c.snapshot_id, start_id, end_id))
        .order_by(p.c.pilot_session_id, p.c.snapshot_id)
    )


def _transceivers_query(start_id: int, end_id: int) -> Select[Any]:
    x = t.transceivers
    pilot = aliased(t.pilot_sessions)
    controller = aliased(t.controller_sessions)
    atis = aliased(t.atis_sessions)
    return (
        select(
            x.c.callsign,
            x.c.transceiver_id,
            func.coalesce(pilot.c.cid, controller.c.cid, atis.c.cid),
            func.coalesce(pilot.c.logon_time, controller.c.logon_time, atis.c.logon_time),
            x.c.pilot_session_id,
            x.c.controller_session_id,
            x.c.atis_session_id,
            x.c.snapshot_id,
            x.c.frequency_hz,
            x.c.latitude,
            x.c.longitude,
            x.c.height_msl_m,
            x.c.height_agl_m,
        )
        .outerjoin(pilot, pilot.c.id == x.c.pilot_session_id)
        .outerjoin(controller, controller.c.id == x.c.controller_session_id)
        .outerjoin(atis, atis.c.id == x.c.atis_session_id)
        .where(_in_window(x.c.snapshot_id, start_id, end_id))
        .order_by(x.c.callsign, x.c.transceiver_id, x.c.snapshot_id)
    )


_QUERIES = {"positions": _positions_query, "transceivers": _transceivers_query}


def _arrow_type(kind: str, coordinates: Coordinates) -> pa.DataType:
    import pyarrow as pa

    if kind == "degrees":
        if coordinates == "decimal":
            return pa.decimal32(_DECIMAL_PRECISION, DEGREE_SCALE)
        return pa.float64()
    simple: dict[str, pa.DataType] = {
        "int16": pa.int16(),
        "int32": pa.int32(),
        "int64": pa.int64(),
        "float64": pa.float64(),
        "text": pa.string(),
        "time_ms": pa.timestamp("ms", tz="UTC"),
        "time_us": pa.timestamp("us", tz="UTC"),
    }
    return simple[kind]


def _arrow_array(values: Sequence[Any], kind: str, coordinates: Coordinates) -> pa.Array[Any]:
    import pyarrow as pa

    if kind == "time_ms":
        # Snapshot ids are the snapshot's time in milliseconds since the epoch.
        return pa.array(values, pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
    if kind == "degrees" and coordinates == "decimal":
        return _micro_degrees(values)
    return pa.array(values, _arrow_type(kind, coordinates))


def _micro_degrees(values: Sequence[Any]) -> pa.Array[Any]:
    """``values`` as DECIMAL(9,6), or InexactCoordinates if that would change any of them.

    A decimal reads back as the double nearest to it (integer / 10**6, correctly rounded), so
    the test below is exactly "reads back as the same double"."""
    import numpy as np
    import pyarrow as pa

    degrees = np.asarray(values, dtype=np.float64)
    scaled = np.rint(degrees * 10**DEGREE_SCALE)
    if not np.array_equal(scaled / 10**DEGREE_SCALE, degrees):
        raise InexactCoordinates("a coordinate has more than six decimals")
    micro = scaled.astype(np.int32)
    return pa.Array.from_buffers(
        pa.decimal32(_DECIMAL_PRECISION, DEGREE_SCALE), len(micro), [None, pa.py_buffer(micro)]
    )
