"""The one table of limits a feed record's fields must keep to be stored, on either backend.

A value that decodes fine can still fail the database write, and the two backends disagree on
which: PostgreSQL refuses a groundspeed above 32,767 in a SMALLINT, a NUL in text, or an index
entry above about 2,700 bytes, where SQLite stores all of them (and overflows on a cid of
10^20). So the decoder drops any record outside these limits, and SQLite and PostgreSQL then
accept exactly the same records. ``tests/test_column_limits.py`` checks this table against
``store/schema.py`` so the two cannot drift apart: every integer limit is the range of the
column types the field feeds, and every text column a record feeds has a length limit here.

``models.py`` reads its msgspec constraints from here, so decoding enforces ranges and lengths
in C, in the same pass that builds the records; ``records.py`` adds the control characters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Final

import msgspec

# Ranges of the SQL integer types (identical on PostgreSQL and SQLite's declared types).
SMALLINT: Final = (-(2**15), 2**15 - 1)
INTEGER: Final = (-(2**31), 2**31 - 1)
BIGINT: Final = (-(2**63), 2**63 - 1)

# PostgreSQL refuses NUL in text outright. The other C0 controls (except tab, line feed and
# carriage return, which real remarks and ATIS text contain) are refused too: no feed field
# means them, and an escape sequence in a callsign would reach terminals and logs. DEL and
# everything above it are kept: real routes contain DEL.
# (Checked by feed/records.py, not by msgspec: a regex per string would cost five decodes.)
FORBIDDEN_CONTROLS: Final = "\x00-\x08\x0b\x0c\x0e-\x1f"

# Identifiers are stored in btree indexes (callsign, departure, arrival): an entry above about
# 2,700 bytes fails the whole write on PostgreSQL. 32 characters (at most 128 bytes of UTF-8)
# is three times the longest real callsign and far below the index limit.
IDENTIFIER_CHARS: Final = 32
# Short free-form fields (server, frequency, aircraft codes, times as the pilot typed them).
SHORT_CHARS: Final = 64
# Longer free text nobody indexes; real remarks and routes stay under 1,000 characters.
NAME_CHARS: Final = 256
FREE_TEXT_CHARS: Final = 8192
ATIS_LINE_CHARS: Final = 1024
ATIS_LINES: Final = 64


@dataclass(frozen=True)
class IntLimit:
    """An integer field: the range the narrowest column it feeds can hold."""

    low: int
    high: int
    columns: tuple[str, ...]

    def meta(self) -> msgspec.Meta:
        return msgspec.Meta(ge=self.low, le=self.high)


@dataclass(frozen=True)
class FloatLimit:
    """A float field: finite and within its domain (|latitude| <= 90, |longitude| <= 180)."""

    low: float
    high: float
    columns: tuple[str, ...]

    def meta(self) -> msgspec.Meta:
        # A bound excludes both infinities; NaN is no JSON and msgspec refuses it anyway.
        return msgspec.Meta(ge=self.low, le=self.high)


@dataclass(frozen=True)
class TextLimit:
    """A text field: at most ``max_chars`` characters, none of ``FORBIDDEN_CONTROLS``.

    ``max_items`` is set for a list of lines (ATIS text), stored joined by newlines.
    """

    max_chars: int
    columns: tuple[str, ...]
    max_items: int | None = None

    def meta(self) -> msgspec.Meta:
        return msgspec.Meta(max_length=self.max_chars)

    def items_meta(self) -> msgspec.Meta:
        assert self.max_items is not None
        return msgspec.Meta(max_length=self.max_items)


Limit = IntLimit | FloatLimit | TextLimit

# A float column that holds any finite value; the bound only shuts out the infinities.
_FINITE = (-1.7976931348623157e308, 1.7976931348623157e308)


def _int(column_range: tuple[int, int], *columns: str) -> IntLimit:
    return IntLimit(column_range[0], column_range[1], columns)


def _float(low: float, high: float, *columns: str) -> FloatLimit:
    return FloatLimit(low, high, columns)


def _text(max_chars: int, *columns: str) -> TextLimit:
    return TextLimit(max_chars, columns)


def _plan(field: str, max_chars: int, *more: str) -> TextLimit:
    return _text(max_chars, f"flight_plans.{field}", f"prefiles.{field}", *more)


def _session_fields(model: str, table: str, *also: str) -> dict[str, Limit]:
    """Fields every connected client has: its session ``table`` holds them all, the ``also``
    tables (flights, summaries) its cid and callsign."""
    return {
        f"{model}.cid": _int(INTEGER, f"{table}.cid", *(f"{o}.cid" for o in also)),
        f"{model}.callsign": _text(
            IDENTIFIER_CHARS, f"{table}.callsign", *(f"{o}.callsign" for o in also)
        ),
        f"{model}.name": _text(NAME_CHARS, f"{table}.name"),
        f"{model}.server": _text(SHORT_CHARS, f"{table}.server"),
    }


def _controller_fields(model: str, table: str, *, history: bool) -> dict[str, Limit]:
    """A controller's or ATIS's fields; ``history``: controllers also keep frequency changes
    (controller_frequencies) and summaries."""
    more = ("controller_frequencies", "controller_summaries") if history else ()
    return {
        **_session_fields(model, table, *more[1:]),
        f"{model}.frequency": _text(
            SHORT_CHARS, f"{table}.frequency", *(f"{o}.frequency" for o in more[:1])
        ),
        f"{model}.facility": _int(SMALLINT, f"{table}.facility", *(f"{o}.facility" for o in more)),
        f"{model}.rating": _int(SMALLINT, f"{table}.rating"),
        f"{model}.visual_range": _int(INTEGER, f"{table}.visual_range"),
    }


_LIMITS: dict[str, Limit] = {
    # -- pilots --
    **_session_fields("Pilot", "pilot_sessions", "flights", "flight_summaries"),
    "Pilot.pilot_rating": _int(SMALLINT, "pilot_sessions.pilot_rating"),
    "Pilot.military_rating": _int(SMALLINT, "pilot_sessions.military_rating"),
    "Pilot.latitude": _float(
        -90.0,
        90.0,
        "positions.latitude",
        "sector_occupancy.entry_latitude",
        "sector_occupancy.exit_latitude",
    ),
    "Pilot.longitude": _float(
        -180.0,
        180.0,
        "positions.longitude",
        "sector_occupancy.entry_longitude",
        "sector_occupancy.exit_longitude",
    ),
    "Pilot.altitude": _int(
        INTEGER,
        "positions.altitude",
        "sector_occupancy.entry_altitude",
        "sector_occupancy.exit_altitude",
        "flight_summaries.max_altitude",
    ),
    "Pilot.groundspeed": _int(SMALLINT, "positions.groundspeed"),
    "Pilot.heading": _int(SMALLINT, "positions.heading"),
    "Pilot.qnh_mb": _int(SMALLINT, "positions.qnh_mb"),
    # Not stored; kept finite so nothing downstream meets an infinity.
    "Pilot.qnh_i_hg": _float(*_FINITE),
    # Stored parsed (four digits or NULL) in positions.transponder, so only length matters.
    "Pilot.transponder": _text(SHORT_CHARS),
    # -- flight plans (pilots' and prefiles') --
    "FlightPlan.flight_rules": _plan("flight_rules", SHORT_CHARS),
    "FlightPlan.aircraft": _plan("aircraft", NAME_CHARS, "flight_summaries.aircraft"),
    "FlightPlan.aircraft_faa": _plan("aircraft_faa", SHORT_CHARS),
    "FlightPlan.aircraft_short": _plan("aircraft_short", SHORT_CHARS),
    "FlightPlan.departure": _plan(
        "departure", IDENTIFIER_CHARS, "flights.departure", "flight_summaries.departure"
    ),
    "FlightPlan.arrival": _plan(
        "arrival", IDENTIFIER_CHARS, "flights.arrival", "flight_summaries.arrival"
    ),
    "FlightPlan.alternate": _plan("alternate", IDENTIFIER_CHARS),
    "FlightPlan.cruise_tas": _plan("cruise_tas", SHORT_CHARS),
    "FlightPlan.altitude": _plan("altitude", SHORT_CHARS),
    "FlightPlan.deptime": _plan("deptime", SHORT_CHARS),
    "FlightPlan.enroute_time": _plan("enroute_time", SHORT_CHARS),
    "FlightPlan.fuel_time": _plan("fuel_time", SHORT_CHARS),
    "FlightPlan.remarks": _plan("remarks", FREE_TEXT_CHARS),
    "FlightPlan.route": _plan("route", FREE_TEXT_CHARS),
    "FlightPlan.revision_id": _int(INTEGER, "flight_plans.revision_id", "prefiles.revision_id"),
    "FlightPlan.assigned_transponder": _plan("assigned_transponder", SHORT_CHARS),
    # -- controllers and ATIS --
    **_controller_fields("Controller", "controller_sessions", history=True),
    "Controller.text_atis": TextLimit(ATIS_LINE_CHARS, (), max_items=ATIS_LINES),
    **_controller_fields("Atis", "atis_sessions", history=False),
    "Atis.atis_code": _text(SHORT_CHARS, "atis_revisions.atis_code"),
    "Atis.text_atis": TextLimit(
        ATIS_LINE_CHARS, ("atis_revisions.text_atis",), max_items=ATIS_LINES
    ),
    # -- prefiles --
    "Prefile.cid": _int(INTEGER, "prefiles.cid"),
    "Prefile.callsign": _text(IDENTIFIER_CHARS, "prefiles.callsign"),
    "Prefile.name": _text(NAME_CHARS, "prefiles.name"),
    # -- transceivers --
    "StationTransceivers.callsign": _text(IDENTIFIER_CHARS, "transceivers.callsign"),
    "Transceiver.id": _int(SMALLINT, "transceivers.transceiver_id"),
    "Transceiver.frequency": _int(
        INTEGER, "transceivers.frequency_hz", "contact_intervals.frequency_hz"
    ),
    "Transceiver.latDeg": _float(
        -90.0,
        90.0,
        "transceivers.latitude",
        "controller_sessions.latitude",
        "atis_sessions.latitude",
    ),
    "Transceiver.lonDeg": _float(
        -180.0,
        180.0,
        "transceivers.longitude",
        "controller_sessions.longitude",
        "atis_sessions.longitude",
    ),
    "Transceiver.heightMslM": _float(*_FINITE, "transceivers.height_msl_m"),
    "Transceiver.heightAglM": _float(*_FINITE, "transceivers.height_agl_m"),
}

LIMITS: Final[Mapping[str, Limit]] = MappingProxyType(_LIMITS)

# Fields whose bound is a fact about the world rather than a column: a record outside them is
# dropped as ``bad_coordinates`` rather than ``out_of_range``.
COORDINATE_FIELDS: Final = frozenset({"latitude", "longitude", "latDeg", "lonDeg"})

# A client cannot have logged on after the snapshot that lists it; a little slack allows for
# the feed's own clocks disagreeing.
LOGON_TOLERANCE_SECONDS: Final = 60.0

# No true VATSIM document is dated before this: the network itself started in 2001.
FEED_EPOCH: Final = datetime(2001, 1, 1, tzinfo=UTC)


def bound(field: str) -> msgspec.Meta:
    """The msgspec constraint for ``Model.field`` (a KeyError names a field missing above)."""
    return LIMITS[field].meta()


def items_bound(field: str) -> msgspec.Meta:
    """The constraint on the number of lines of a list-of-lines field."""
    limit = LIMITS[field]
    assert isinstance(limit, TextLimit)
    return limit.items_meta()
