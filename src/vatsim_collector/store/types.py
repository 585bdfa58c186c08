"""Column types that behave the same on SQLite and PostgreSQL, to the application."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Float, Integer
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out.

    SQLite has no time zones; without this, values would come back naive and compare wrongly
    with the aware times the feed produces.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given where UTC is required")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


MICRO_DEGREES_PER_DEGREE = 1_000_000


def to_micro_degrees(degrees: float) -> int:
    """The stored integer of a coordinate: the nearest micro-degree (within 0.5e-6 degree)."""
    return round(degrees * MICRO_DEGREES_PER_DEGREE)


class MicroDegrees(TypeDecorator[float]):
    """Latitude or longitude in degrees to the application; on PostgreSQL stored as integer
    micro-degrees (int4, half the bytes of a double).

    Every value read back is within 0.5e-6 degree of the value written (about 5.6 cm of
    latitude), and a value with at most six decimals, as the feed sends them, reads back as the
    very same double; a float4 keeps neither (its step near 180 degrees is about 1.5e-5).
    |longitude| <= 180 is 1.8e8 micro-degrees, far inside int4. SQLite keeps its 8-byte REAL:
    it is not the compact backend.

    Only comparisons with bound values are translated; SQL arithmetic on these columns (an
    average, a distance) sees micro-degrees on PostgreSQL, so no query does any.
    """

    impl = Float
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Integer())
        return dialect.type_descriptor(Float())

    def process_bind_param(self, value: float | None, dialect: Dialect) -> Any:
        if value is None or dialect.name != "postgresql":
            return value
        return to_micro_degrees(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> float | None:
        if value is None or dialect.name != "postgresql":
            return value  # type: ignore[no-any-return]
        return int(value) / MICRO_DEGREES_PER_DEGREE
