"""The limits table (feed/limits.py), the models and the schema cannot drift apart.

Every integer limit is exactly the range of the narrowest column its field feeds; every column a
record field feeds is named by the table; and every field of a feed record with a bound in the
models reads it from the table.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from sqlalchemy import BigInteger, Column, Float, Integer, SmallInteger, Text

from vatsim_collector.feed import limits, models
from vatsim_collector.feed.limits import LIMITS, FloatLimit, IntLimit, TextLimit
from vatsim_collector.store import schema as t
from vatsim_collector.store.types import MicroDegrees, to_micro_degrees

TYPE_RANGES = {SmallInteger: limits.SMALLINT, Integer: limits.INTEGER, BigInteger: limits.BIGINT}

# Tables a feed record's fields are written to, directly or carried along (flights, summaries,
# sector occupancy and contacts copy a pilot's or controller's values).
RECORD_FED_TABLES = [
    t.pilot_sessions,
    t.flights,
    t.flight_plans,
    t.positions,
    t.controller_sessions,
    t.atis_sessions,
    t.atis_revisions,
    t.controller_frequencies,
    t.prefiles,
    t.transceivers,
    t.flight_summaries,
    t.controller_summaries,
    t.sector_occupancy,
    t.contact_intervals,
]

# Columns of those tables that no record field is written to, and why that is safe.
NOT_FROM_A_RECORD_FIELD = {
    # the parsed squawk: four digits or NULL, at most 9999
    "positions.transponder",
    # JSON and figures computed by the collector itself
    "flight_summaries.online_minutes",
    "flight_summaries.airborne_minutes",
    "flight_summaries.distance_nm",
    "flight_summaries.coverage",
    "flight_summaries.airborne_coverage",
    "flight_summaries.controllers",
    "flight_summaries.sectors",
    "controller_summaries.duration_minutes",
    "controller_summaries.frequencies",
    "controller_summaries.aircraft_handled",
    "controller_summaries.peak_concurrent",
    "controller_summaries.hourly",
    "controller_summaries.per_aircraft",
    # sector names come from the collector's own sector files
    "sector_occupancy.sector",
}
# Column kinds that only the collector fills: ids, foreign keys, times and flags.
CHECKED_TYPES = (SmallInteger, Integer, BigInteger, Text, Float, MicroDegrees)


def _is_collector_owned(column: Column[Any]) -> bool:
    return (
        column.primary_key and column.name in {"id", "flight_id", "controller_session_id"}
    ) or bool(column.foreign_keys)


def _column(name: str) -> Column[Any]:
    table, column = name.split(".")
    return t.metadata.tables[table].c[column]


def _range_of(column: Column[Any]) -> tuple[int, int]:
    for kind, column_range in TYPE_RANGES.items():
        if type(column.type) is kind:
            return column_range
    raise AssertionError(f"{column} is no integer column: {column.type!r}")


@pytest.mark.parametrize("field", sorted(LIMITS))
def test_every_named_column_exists_and_suits_the_limit(field: str) -> None:
    limit = LIMITS[field]
    columns = [_column(name) for name in limit.columns]
    if isinstance(limit, IntLimit):
        assert columns, f"{field}: an integer limit must come from the columns it feeds"
        ranges = [_range_of(c) for c in columns]
        narrowest = (max(low for low, _ in ranges), min(high for _, high in ranges))
        assert (limit.low, limit.high) == narrowest, field
    elif isinstance(limit, TextLimit):
        for column in columns:
            assert isinstance(column.type, Text), f"{field} feeds {column}, which is no Text"
        assert 0 < limit.max_chars <= limits.FREE_TEXT_CHARS
    else:
        assert isinstance(limit, FloatLimit)
        for column in columns:
            if isinstance(column.type, MicroDegrees):
                # Degrees to the application, int4 micro-degrees on PostgreSQL: the whole
                # range must fit the int4.
                stored = [to_micro_degrees(limit.low), to_micro_degrees(limit.high)]
                assert all(-(2**31) <= v < 2**31 for v in stored), f"{field} overflows {column}"
                continue
            assert isinstance(column.type, Float), f"{field} feeds {column}, which is no Float"
        assert -1.8e308 < limit.low < limit.high < 1.8e308


def test_every_record_fed_column_has_a_limit_or_a_reason() -> None:
    named = {name for limit in LIMITS.values() for name in limit.columns}
    missing = [
        f"{table.name}.{column.name}"
        for table in RECORD_FED_TABLES
        for column in table.c
        if isinstance(column.type, CHECKED_TYPES)
        and not _is_collector_owned(column)
        and f"{table.name}.{column.name}" not in named | NOT_FROM_A_RECORD_FIELD
    ]
    assert missing == []


def _indexed_text_columns() -> set[str]:
    found = set()
    for table in t.metadata.tables.values():
        indexed = [c for index in table.indexes for c in index.columns]
        indexed += [
            c for constraint in table.constraints for c in getattr(constraint, "columns", [])
        ]
        found |= {f"{table.name}.{c.name}" for c in indexed if isinstance(c.type, Text)}
    return found


def test_indexed_text_stays_far_below_the_btree_entry_limit() -> None:
    """PostgreSQL refuses an index entry above about 2,700 bytes; UTF-8 takes up to 4 a char."""
    indexed = _indexed_text_columns()
    fed = {
        name: limit
        for limit in LIMITS.values()
        if isinstance(limit, TextLimit)
        for name in limit.columns
        if name in indexed
    }
    assert {"pilot_sessions.callsign", "flight_summaries.arrival", "transceivers.callsign"} <= set(
        fed
    )
    for name, limit in fed.items():
        assert limit.max_chars == limits.IDENTIFIER_CHARS, name
    assert limits.IDENTIFIER_CHARS * 4 * 3 < 2700  # even three such columns in one entry


RECORD_MODELS = [
    models.Pilot,
    models.FlightPlan,
    models.Controller,
    models.Atis,
    models.Prefile,
    models.StationTransceivers,
    models.Transceiver,
]


def _constraint(info: Any) -> tuple[str, Any] | None:
    """``(kind, constraint)`` of a model field's msgspec type, unwrapping ``X | None``."""
    if isinstance(info, msgspec.inspect.UnionType):
        inner = [i for i in info.types if not isinstance(i, msgspec.inspect.NoneType)]
        assert len(inner) == 1
        info = inner[0]
    if isinstance(info, msgspec.inspect.IntType):
        return "int", (info.ge, info.le)
    if isinstance(info, msgspec.inspect.FloatType):
        return "float", (info.ge, info.le)
    if isinstance(info, msgspec.inspect.StrType):
        return "str", info.max_length
    if isinstance(info, msgspec.inspect.ListType) and isinstance(
        info.item_type, msgspec.inspect.StrType
    ):
        return "lines", (info.item_type.max_length, info.max_length)
    return None


@pytest.mark.parametrize("model", RECORD_MODELS, ids=lambda m: m.__name__)
def test_every_record_field_is_bounded_by_the_table(model: type[msgspec.Struct]) -> None:
    info = msgspec.inspect.type_info(model)
    assert isinstance(info, msgspec.inspect.StructType)
    for field in info.fields:
        key = f"{model.__name__}.{field.name}"
        found = _constraint(field.type)
        if found is None:
            assert key not in LIMITS, f"{key} has a limit its model does not apply"
            continue
        kind, constraint = found
        limit = LIMITS.get(key)
        assert limit is not None, f"{key} ({kind}) has no limit in feed/limits.py"
        if kind in ("int", "float"):
            assert isinstance(limit, IntLimit | FloatLimit)
            assert constraint == (limit.low, limit.high), key
        elif kind == "str":
            assert isinstance(limit, TextLimit)
            assert constraint == limit.max_chars, key
        else:
            assert isinstance(limit, TextLimit)
            assert constraint == (limit.max_chars, limit.max_items), key
