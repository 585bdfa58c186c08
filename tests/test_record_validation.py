"""One bad record costs only that record; every kept record keeps every limit of feed/limits.py.

Documents are built as bytes, so values no JSON encoder writes (NaN, invalid UTF-8, unpaired
surrogates) can be served exactly as a hostile feed would.
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from feeds import SMALL, load
from vatsim_collector.feed import limits
from vatsim_collector.feed.decode import (
    FeedDecodeError,
    decode_snapshot_records,
    decode_transceivers_records,
)
from vatsim_collector.feed.limits import LIMITS, FloatLimit, IntLimit, TextLimit
from vatsim_collector.feed.models import Snapshot, StationTransceivers
from vatsim_collector.feed.report import REASONS, SNAPSHOT_SECTIONS
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor, Outcome
from vatsim_collector.store import schema as t

STAMP = "2024-02-20T23:19:51.0000000Z"
AT = datetime(2024, 2, 20, 23, 19, 51, tzinfo=UTC)
SLOT = "@@value@@"

PILOT: dict[str, Any] = {
    "cid": 1234567,
    "name": "Test Pilot",
    "callsign": "AAL123",
    "server": "USA-EAST",
    "pilot_rating": 1,
    "military_rating": 0,
    "latitude": 40.6,
    "longitude": -73.7,
    "altitude": 15000,
    "groundspeed": 250,
    "transponder": "2200",
    "heading": 90,
    "qnh_i_hg": 29.92,
    "qnh_mb": 1013,
    "flight_plan": {
        "flight_rules": "I",
        "aircraft": "B738/L-SDE2E3FGHIRWY/LB1",
        "aircraft_faa": "H/B738/L",
        "aircraft_short": "B738",
        "departure": "KJFK",
        "arrival": "EGLL",
        "alternate": "EGKK",
        "cruise_tas": "450",
        "altitude": "FL360",
        "deptime": "1200",
        "enroute_time": "0700",
        "fuel_time": "0830",
        "remarks": "PBN/A1B1C1D1",
        "route": "DCT MERIT",
        "revision_id": 1,
        "assigned_transponder": "2200",
    },
    "logon_time": "2024-02-20T22:00:00Z",
    "last_updated": STAMP,
}
CONTROLLER: dict[str, Any] = {
    "cid": 7654321,
    "name": "Test Controller",
    "callsign": "EGLL_TWR",
    "frequency": "118.500",
    "facility": 4,
    "rating": 5,
    "server": "UK",
    "visual_range": 50,
    "text_atis": ["Heathrow Tower", "line two"],
    "logon_time": "2024-02-20T22:00:00Z",
    "last_updated": STAMP,
}
ATIS: dict[str, Any] = {**CONTROLLER, "callsign": "EGLL_ATIS", "atis_code": "A"}
PREFILE: dict[str, Any] = {
    "cid": 1111111,
    "name": "Prefiler",
    "callsign": "BAW1",
    "flight_plan": PILOT["flight_plan"],
    "last_updated": STAMP,
}
STATION: dict[str, Any] = {
    "callsign": "AAL123",
    "transceivers": [
        {"id": 0, "frequency": 122800000, "latDeg": 40.6, "lonDeg": -73.7, "heightMslM": 100.0}
    ],
}
TEMPLATES = {"pilots": PILOT, "controllers": CONTROLLER, "atis": ATIS, "prefiles": PREFILE}


def with_value(record: dict[str, Any], path: str, token: bytes | None) -> bytes:
    """``record`` as JSON bytes with the value at ``path`` (``a.b``) replaced by the raw JSON
    ``token``, or removed when ``token`` is None."""
    edited = copy.deepcopy(record)
    *parents, last = path.split(".")
    node = edited
    for name in parents:
        node = node[name]
    if token is None:
        del node[last]
        return orjson.dumps(edited)
    node[last] = SLOT
    return orjson.dumps(edited).replace(orjson.dumps(SLOT), token)


def document(**sections: list[bytes]) -> bytes:
    general = b'{"version": 3, "update_timestamp": "' + STAMP.encode() + b'"}'
    parts = [b'"general": ' + general]
    parts += [f'"{name}": ['.encode() + b", ".join(raws) + b"]" for name, raws in sections.items()]
    return b"{" + b", ".join(parts) + b"}"


def text(n: int, char: str = "A") -> bytes:
    return orjson.dumps(char * n)


# (section, path, raw JSON value, reason or None when the record must be kept)
CASES: list[tuple[str, str, bytes | None, str | None]] = [
    # integer columns: the boundary is kept, one past it dropped
    ("pilots", "groundspeed", b"32767", None),
    ("pilots", "groundspeed", b"32768", "out_of_range"),
    ("pilots", "groundspeed", b"70000", "out_of_range"),
    ("pilots", "heading", b"-32768", None),
    ("pilots", "heading", b"-32769", "out_of_range"),
    ("pilots", "qnh_mb", b"32768", "out_of_range"),
    ("pilots", "pilot_rating", b"32768", "out_of_range"),
    ("pilots", "altitude", b"2147483647", None),
    ("pilots", "altitude", b"2147483648", "out_of_range"),
    ("pilots", "altitude", b"-2147483649", "out_of_range"),
    ("pilots", "cid", b"2147483647", None),
    ("pilots", "cid", b"2147483648", "out_of_range"),
    ("pilots", "cid", b"100000000000000000000", "out_of_range"),
    ("pilots", "cid", b"1e20", "out_of_range"),
    ("pilots", "flight_plan.revision_id", b"2147483648", "out_of_range"),
    ("controllers", "facility", b"32768", "out_of_range"),
    ("controllers", "visual_range", b"2147483648", "out_of_range"),
    # coordinates
    ("pilots", "latitude", b"90", None),
    ("pilots", "latitude", b"-90.0", None),
    ("pilots", "latitude", b"90.000001", "bad_coordinates"),
    ("pilots", "longitude", b"-180", None),
    ("pilots", "longitude", b"180.5", "bad_coordinates"),
    ("pilots", "latitude", b"1e308", "bad_coordinates"),
    # non-finite numbers
    ("pilots", "latitude", b"NaN", "non_finite"),
    ("pilots", "longitude", b"Infinity", "non_finite"),
    ("pilots", "qnh_i_hg", b"-Infinity", "non_finite"),
    ("pilots", "qnh_i_hg", b"1e999", "non_finite"),
    ("pilots", "altitude", b"NaN", "non_finite"),
    # text length: identifiers short enough for a btree index, free text capped
    ("pilots", "callsign", text(32), None),
    ("pilots", "callsign", text(32, "\U0001f6eb"), None),
    ("pilots", "callsign", text(33), "too_long"),
    ("pilots", "callsign", text(3000), "too_long"),
    ("pilots", "flight_plan.departure", text(33), "too_long"),
    ("pilots", "flight_plan.route", text(8192), None),
    ("pilots", "flight_plan.route", text(8193), "too_long"),
    ("pilots", "name", text(257), "too_long"),
    ("atis", "text_atis", orjson.dumps(["x"] * 64), None),
    ("atis", "text_atis", orjson.dumps(["x"] * 65), "too_long"),
    ("atis", "text_atis", orjson.dumps(["x" * 1025]), "too_long"),
    # control characters: NUL and friends refused, tab, newline, carriage return and DEL kept
    ("pilots", "callsign", b'"AAL\\u0000123"', "control_chars"),
    ("pilots", "flight_plan.remarks", b'"a\\u001b[31mred"', "control_chars"),
    ("pilots", "flight_plan.remarks", b'"form\\ffeed"', "control_chars"),
    ("pilots", "flight_plan.remarks", b'"tab\\there\\nnew\\r\\u007f"', None),
    ("pilots", "flight_plan.remarks", b'"a literal backslash-b: \\\\b"', None),
    ("pilots", "flight_plan.remarks", b'"raw\ttab"', "control_chars"),
    ("atis", "text_atis", b'["ok", "bad\\u0000"]', "control_chars"),
    # invalid text
    ("pilots", "callsign", b'"AAL\xff\xfe"', "invalid_utf8"),
    ("pilots", "flight_plan.route", b'"\xc3("', "invalid_utf8"),
    ("pilots", "callsign", b'"\\ud800"', "invalid_utf8"),
    # missing keys and wrong types
    ("pilots", "cid", None, "missing_field"),
    ("pilots", "callsign", None, "missing_field"),
    ("pilots", "logon_time", None, "missing_field"),
    ("pilots", "latitude", None, "missing_field"),
    ("controllers", "cid", None, "missing_field"),
    ("prefiles", "callsign", None, "missing_field"),
    ("pilots", "groundspeed", b"[1]", "bad_type"),
    ("pilots", "groundspeed", b"true", "bad_type"),
    ("pilots", "groundspeed", b"null", "bad_type"),
    ("pilots", "callsign", b"5", "bad_type"),
    ("pilots", "flight_plan", b'"IFR"', "bad_type"),
    ("pilots", "cid", b'"12x"', "bad_type"),
    ("controllers", "text_atis", b'"one line"', "bad_type"),
    # times
    ("pilots", "logon_time", b'"yesterday"', "bad_time"),
    ("pilots", "logon_time", b'"2024-02-20T22:00:00"', "bad_time"),
    ("pilots", "logon_time", b'"2024-02-20T23:20:51Z"', None),  # 60 s after: tolerated
    ("pilots", "logon_time", b'"2024-02-20T23:20:52Z"', "logon_after_snapshot"),
    ("pilots", "logon_time", b'"2099-01-01T00:00:00Z"', "logon_after_snapshot"),
    ("controllers", "logon_time", b'"2099-01-01T00:00:00Z"', "logon_after_snapshot"),
    ("atis", "logon_time", b'"2099-01-01T00:00:00Z"', "logon_after_snapshot"),
    # benign drift, coerced
    ("pilots", "altitude", b"35000.0", None),
    ("pilots", "altitude", b"35000.4", None),
    ("pilots", "groundspeed", b'"250"', None),
    ("pilots", "latitude", b'"51.5"', None),
]


@pytest.mark.parametrize(
    ("section", "path", "token", "reason"),
    CASES,
    ids=[f"{s}.{p}={(v or b'<missing>')[:24]!r}" for s, p, v, _ in CASES],
)
def test_one_bad_value_costs_only_its_record(
    section: str, path: str, token: bytes | None, reason: str | None
) -> None:
    good = orjson.dumps(TEMPLATES[section])
    bad = with_value(TEMPLATES[section], path, token)
    raw = document(**{section: [good, bad, good]})
    snapshot, report = decode_snapshot_records(raw)
    kept = getattr(snapshot, section)
    assert report.served[section] == 3
    if reason is None:
        assert report.dropped == []
        assert len(kept) == 3
        assert_within_limits(snapshot)
        return
    assert len(kept) == 2
    [dropped] = report.dropped
    assert (dropped.section, dropped.index, dropped.reason) == (section, 1, reason)
    assert dropped.reason in REASONS
    assert dropped.raw == bad  # the record's bytes exactly as served
    assert dropped.detail.startswith(f"{section}[1]")
    assert report.counts_by_reason() == {(section, reason): 1}


def test_details_name_the_field_and_value_but_never_a_name() -> None:
    raw = document(
        pilots=[
            with_value(PILOT, "groundspeed", b"70000"),
            with_value(PILOT, "name", b'"Jane\\u0000Doe"'),
            with_value(PILOT, "name", text(300, "J")),
        ]
    )
    _, report = decode_snapshot_records(raw)
    details = [d.detail for d in report.dropped]
    assert details[0] == "pilots[0].groundspeed 70000 is above 32767"
    assert details[1].startswith("pilots[1].name ")
    assert details[2] == "pilots[2].name has 300 characters, more than 256"
    assert not any("Jane" in d or "JJJ" in d for d in details)


def test_a_held_sample_can_be_kept_without_the_members_name() -> None:
    """Even a record without a cid (which ``strip_names`` would not recognise) or with bytes no
    parser takes loses its name."""
    raw = document(
        pilots=[
            with_value(PILOT, "cid", None),
            with_value(PILOT, "heading", b"NaN"),
            with_value(PILOT, "callsign", b'"\xff"'),
        ]
    )
    _, report = decode_snapshot_records(raw)
    assert len(report.dropped) == 3
    for dropped in report.dropped:
        assert b"Test Pilot" in dropped.raw
        assert b"Test Pilot" not in dropped.raw_without_name()
        assert b'"callsign"' in dropped.raw_without_name()


def test_not_an_object_and_every_section() -> None:
    raw = document(
        pilots=[b"5", b'"AAL1"', b"null", b"[]", orjson.dumps(PILOT)],
        controllers=[b"{}"],
        atis=[b"true"],
        prefiles=[b"1.5"],
    )
    snapshot, report = decode_snapshot_records(raw)
    assert len(snapshot.pilots) == 1
    assert report.counts_by_reason() == {
        ("pilots", "not_an_object"): 4,
        ("controllers", "missing_field"): 1,
        ("atis", "not_an_object"): 1,
        ("prefiles", "not_an_object"): 1,
    }


def test_coercions_are_counted_and_applied() -> None:
    raw = document(
        pilots=[
            with_value(PILOT, "altitude", b"35000.5"),
            with_value(PILOT, "altitude", b"35001.6"),
            with_value(PILOT, "cid", b'"42"'),
            with_value(PILOT, "flight_plan.revision_id", b"3.0"),
        ]
    )
    snapshot, report = decode_snapshot_records(raw)
    assert [p.altitude for p in snapshot.pilots] == [35000, 35002, 15000, 15000]
    assert snapshot.pilots[2].cid == 42
    assert report.dropped == []
    assert report.coerced == {
        "pilots.altitude float->int": 2,
        "pilots.cid str->int": 1,
        "pilots.flight_plan.revision_id float->int": 1,
    }


def test_a_coerced_value_still_outside_its_column_is_dropped_not_counted() -> None:
    raw = document(pilots=[with_value(PILOT, "groundspeed", b"32767.9")])
    snapshot, report = decode_snapshot_records(raw)
    assert snapshot.pilots == []
    assert report.counts_by_reason() == {("pilots", "out_of_range"): 1}
    assert report.coerced == {}


def test_the_envelope_survives_records_no_json_parser_accepts() -> None:
    """NaN, Infinity and lone surrogates make msgspec refuse the whole document; only the
    records holding them are lost, and the document's other sections are kept."""
    raw = document(
        pilots=[orjson.dumps(PILOT), with_value(PILOT, "heading", b"NaN")],
        controllers=[with_value(CONTROLLER, "callsign", b'"\\udc00"'), orjson.dumps(CONTROLLER)],
        prefiles=[orjson.dumps(PREFILE)],
    )
    snapshot, report = decode_snapshot_records(raw)
    assert (len(snapshot.pilots), len(snapshot.controllers), len(snapshot.prefiles)) == (1, 1, 1)
    assert report.counts_by_reason() == {
        ("pilots", "non_finite"): 1,
        ("controllers", "invalid_utf8"): 1,
    }


def test_nesting_too_deep_for_any_parser_costs_the_record_or_the_envelope() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    nested = orjson.dumps({**PILOT, "extra": SLOT}).replace(orjson.dumps(SLOT), deep)
    snapshot, report = decode_snapshot_records(document(pilots=[nested, orjson.dumps(PILOT)]))
    assert len(snapshot.pilots) == 1
    assert report.counts_by_reason() == {("pilots", "invalid_json"): 1}
    with pytest.raises(FeedDecodeError, match="nested too deeply"):
        decode_snapshot_records(document(pilots=[])[:-1] + b', "servers": ' + deep + b"}")
    stations, radios = decode_transceivers_records(b"[" + deep + b"]")
    assert stations == []
    assert radios.counts_by_reason() == {("transceivers", "not_an_object"): 1}


@pytest.mark.parametrize(
    "raw",
    [
        document(pilots=[orjson.dumps(PILOT), b'{"cid": 1,,}']),
        document(pilots=[orjson.dumps(PILOT), b""]),
        document(pilots=[b"NaN"])[:-3],
        document(pilots=[b"NaN", b"{"]),
    ],
    ids=["double-comma", "empty-element", "truncated", "unbalanced"],
)
def test_broken_syntax_is_still_the_documents_fault(raw: bytes) -> None:
    with pytest.raises(FeedDecodeError, match="malformed JSON"):
        decode_snapshot_records(raw)


TRANSCEIVER_CASES: list[tuple[str, bytes | None, str | None]] = [
    ("frequency", b"2147483647", None),
    ("frequency", b"3000000000", "out_of_range"),
    ("id", b"32767", None),
    ("id", b"70000", "out_of_range"),
    ("latDeg", b"91", "bad_coordinates"),
    ("heightMslM", b"1e999", "non_finite"),
    ("heightAglM", b"NaN", "non_finite"),
    ("frequency", b"122800000.0", None),
]


@pytest.mark.parametrize(("path", "token", "reason"), TRANSCEIVER_CASES)
def test_a_bad_transceiver_costs_only_its_station(
    path: str, token: bytes | None, reason: str | None
) -> None:
    good = orjson.dumps(STATION)
    bad_station = copy.deepcopy(STATION)
    bad = with_value(bad_station["transceivers"][0], path, token)
    bad_raw = orjson.dumps({**STATION, "transceivers": [SLOT]}).replace(orjson.dumps(SLOT), bad)
    stations, report = decode_transceivers_records(b"[" + b", ".join([good, bad_raw, good]) + b"]")
    assert report.served == {"transceivers": 3}
    if reason is None:
        assert len(stations) == 3
        assert report.dropped == []
        return
    assert len(stations) == 2
    assert [(d.index, d.reason) for d in report.dropped] == [(1, reason)]


def test_a_snapshot_report_absorbs_the_transceivers_report() -> None:
    _, report = decode_snapshot_records(
        document(pilots=[with_value(PILOT, "altitude", b"1.0"), with_value(PILOT, "cid", None)])
    )
    _, radios = decode_transceivers_records(
        b'[{"callsign": "A", "transceivers": [{"id": 1.0}]}, {"callsign": 5}]'
    )
    report.absorb(radios)
    assert report.served == {
        "pilots": 2,
        "controllers": 0,
        "atis": 0,
        "prefiles": 0,
        "transceivers": 2,
    }
    assert report.counts_by_reason() == {
        ("pilots", "missing_field"): 1,
        ("transceivers", "bad_type"): 1,
    }
    assert report.coerced == {
        "pilots.altitude float->int": 1,
        "transceivers.transceivers.id float->int": 1,
    }


def test_a_transceivers_document_with_bad_bytes_raises_only_feed_decode_error() -> None:
    stations, report = decode_transceivers_records(
        b'[{"callsign": "A\xff"}, {"callsign": "B\\u0000"}, {"callsign": "C"}]'
    )
    assert [s.callsign for s in stations] == ["C"]
    assert report.counts_by_reason() == {
        ("transceivers", "invalid_utf8"): 1,
        ("transceivers", "control_chars"): 1,
    }
    for broken in (b"[\xff", b'{"callsign": "A"}', b"", b'[{"callsign": "A"}'):
        with pytest.raises(FeedDecodeError):
            decode_transceivers_records(broken)


# -- an independent check of the limits table, for the property test ------------------------

_FORBIDDEN = re.compile(f"[{limits.FORBIDDEN_CONTROLS}]")


def _assert_field(key: str, value: Any) -> None:
    limit = LIMITS.get(key)
    if limit is None or value is None:
        return
    if isinstance(limit, IntLimit):
        assert isinstance(value, int)
        assert limit.low <= value <= limit.high, (key, value)
    elif isinstance(limit, FloatLimit):
        assert isinstance(value, float)
        assert limit.low <= value <= limit.high, (key, value)
    else:
        assert isinstance(limit, TextLimit)
        lines = value if isinstance(value, list) else [value]
        if limit.max_items is not None:
            assert len(lines) <= limit.max_items, key
        for line in lines:
            assert len(line) <= limit.max_chars, key
            assert not _FORBIDDEN.search(line), key
            line.encode("utf-8")  # no unpaired surrogate either


def assert_record_within_limits(record: msgspec.Struct) -> None:
    model = type(record).__name__
    for name in record.__struct_fields__:
        value = getattr(record, name)
        if isinstance(value, msgspec.Struct):
            assert_record_within_limits(value)
        elif isinstance(value, list) and value and isinstance(value[0], msgspec.Struct):
            for item in value:
                assert_record_within_limits(item)
        else:
            _assert_field(f"{model}.{name}", value)


def assert_within_limits(snapshot: Snapshot) -> None:
    latest = snapshot.update_timestamp + timedelta(seconds=limits.LOGON_TOLERANCE_SECONDS)
    for name in SNAPSHOT_SECTIONS:
        for record in getattr(snapshot, name):
            assert_record_within_limits(record)
            logon = getattr(record, "logon_time", None)
            if logon is not None:
                assert logon.tzinfo is not None
                assert logon <= latest


# -- property: arbitrary bad records inside a valid envelope ---------------------------------

REAL = load(SMALL)
REAL_RECORDS = {name: [orjson.dumps(r) for r in REAL[name][:40]] for name in SNAPSHOT_SECTIONS}
BAD_TOKENS = [
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"1e999",
    b"-1e999",
    b"1e308",
    b"32768",
    b"-32769",
    b"2147483648",
    b"100000000000000000000",
    b"35000.5",
    b'"123"',
    b'"12.5"',
    b'"x"',
    b'"\\u0000"',
    b'"\\u001b"',
    b'"\\b"',
    b'"\\ud800"',
    b'"\xff\xfe"',
    b'"\xc3"',
    b'"2099-01-01T00:00:00Z"',
    b'"2024-02-20T00:00:00"',
    b"null",
    b"true",
    b"[]",
    b"{}",
    b'["a", 1]',
    text(40),
    text(300),
    text(9000),
]
FIELDS = sorted({key.split(".", 1)[1] for key in LIMITS} | {"logon_time", "flight_plan"})


@st.composite
def mutated_record(draw: st.DrawFn, section: str) -> bytes:
    return draw(mutated(draw(st.sampled_from(REAL_RECORDS[section]))))


@st.composite
def mutated(draw: st.DrawFn, raw: bytes) -> bytes:
    """``raw`` as it is, or with one value (perhaps nested), a key or the whole spoiled."""
    kind = draw(st.sampled_from(["keep", "value", "drop_key", "nested", "whole"]))
    if kind == "keep":
        return raw
    if kind == "whole":
        return draw(st.sampled_from([b"5", b'"x"', b"null", b"[]", b"NaN", b"{}"]))
    record = orjson.loads(raw)
    if kind == "drop_key":
        record.pop(draw(st.sampled_from(sorted(record))), None)
        return orjson.dumps(record)
    token = draw(st.sampled_from(BAD_TOKENS))
    if kind == "nested" and isinstance(record.get("flight_plan"), dict):
        target = record["flight_plan"]
    else:
        target = record
    target[draw(st.sampled_from(FIELDS))] = SLOT
    return orjson.dumps(record).replace(orjson.dumps(SLOT), token)


@st.composite
def hostile_document(draw: st.DrawFn) -> tuple[bytes, dict[str, int]]:
    sections = {
        name: draw(st.lists(mutated_record(name), max_size=6)) for name in SNAPSHOT_SECTIONS
    }
    general = orjson.dumps(REAL["general"])
    body = b", ".join(
        [b'"general": ' + general]
        + [f'"{name}": ['.encode() + b", ".join(raws) + b"]" for name, raws in sections.items()]
    )
    return b"{" + body + b"}", {name: len(raws) for name, raws in sections.items()}


@settings(max_examples=300, deadline=None)
@given(hostile_document())
def test_bad_records_never_escape_and_every_kept_record_keeps_every_limit(
    case: tuple[bytes, dict[str, int]],
) -> None:
    raw, served = case
    snapshot, report = decode_snapshot_records(raw)
    assert report.served == served
    for name in SNAPSHOT_SECTIONS:
        assert len(getattr(snapshot, name)) + report.dropped_count(name) == served[name]
    assert all(d.reason in REASONS for d in report.dropped)
    assert_within_limits(snapshot)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(BAD_TOKENS), max_size=5), st.data())
def test_bad_stations_never_escape(tokens: list[bytes], data: st.DataObject) -> None:
    fields = ["callsign", "id", "frequency", "latDeg", "lonDeg", "heightMslM", "heightAglM"]
    stations = []
    for token in tokens:
        field = data.draw(st.sampled_from(fields))
        if field == "callsign":
            stations.append(with_value(STATION, "callsign", token))
        else:
            inner = with_value(STATION["transceivers"][0], field, token)
            stations.append(
                orjson.dumps({**STATION, "transceivers": [SLOT]}).replace(orjson.dumps(SLOT), inner)
            )
    stations.append(orjson.dumps(STATION))
    kept, report = decode_transceivers_records(b"[" + b",".join(stations) + b"]")
    assert len(kept) + report.dropped_count("transceivers") == len(stations)
    for station in kept:
        assert isinstance(station, StationTransceivers)
        assert_record_within_limits(station)


# -- the limits are sufficient: records exactly at every limit are stored on both backends ----

INT_MAX, INT_MIN = limits.INTEGER[1], limits.INTEGER[0]
SMALL_MAX, SMALL_MIN = limits.SMALLINT[1], limits.SMALLINT[0]
# Four bytes of UTF-8 per character: the most bytes an identifier can have.
WIDE = "\U0001f6eb"


def _at_limit(key: str, char: str = "A") -> str:
    limit = LIMITS[key]
    assert isinstance(limit, TextLimit)
    return char * limit.max_chars


def _plan_at_limits() -> dict[str, Any]:
    plan: dict[str, Any] = {
        name: _at_limit(f"FlightPlan.{name}", WIDE)
        for name in PILOT["flight_plan"]
        if name != "revision_id"
    }
    plan["remarks"] = ("tab\there\nnewline\r\x7f" + _at_limit("FlightPlan.remarks"))[:8192]
    plan["revision_id"] = INT_MAX
    return plan


def extreme_records(base_cid: int) -> dict[str, list[dict[str, Any]]]:
    """One record per section with every field at the top of its range, one at the bottom."""
    logon = "2024-02-20T23:20:51Z"  # exactly at the tolerance after the snapshot
    top = {
        **PILOT,
        "cid": INT_MAX,
        "callsign": _at_limit("Pilot.callsign", WIDE),
        "name": _at_limit("Pilot.name", WIDE),
        "server": _at_limit("Pilot.server", WIDE),
        "transponder": _at_limit("Pilot.transponder"),
        "pilot_rating": SMALL_MAX,
        "military_rating": SMALL_MAX,
        "latitude": 90.0,
        "longitude": 180.0,
        "altitude": INT_MAX,
        "groundspeed": SMALL_MAX,
        "heading": SMALL_MAX,
        "qnh_mb": SMALL_MAX,
        "qnh_i_hg": 1.7976931348623157e308,
        "flight_plan": _plan_at_limits(),
        "logon_time": logon,
    }
    bottom = {
        **PILOT,
        "cid": INT_MIN,
        "callsign": "B" * 32,
        "pilot_rating": SMALL_MIN,
        "military_rating": SMALL_MIN,
        "latitude": -90.0,
        "longitude": -180.0,
        "altitude": INT_MIN,
        "groundspeed": SMALL_MIN,
        "heading": SMALL_MIN,
        "qnh_mb": SMALL_MIN,
        "flight_plan": {**_plan_at_limits(), "revision_id": INT_MIN},
    }
    atis_lines = [_at_limit("Atis.text_atis", WIDE)] * limits.ATIS_LINES
    controller = {
        **CONTROLLER,
        "cid": INT_MAX,
        "callsign": _at_limit("Controller.callsign", "\U0001f6ec"),
        "frequency": _at_limit("Controller.frequency"),
        "facility": SMALL_MAX,
        "rating": SMALL_MAX,
        "visual_range": INT_MAX,
        "text_atis": atis_lines,
        "logon_time": logon,
    }
    atis = {
        **controller,
        "callsign": _at_limit("Atis.callsign", "C"),
        "atis_code": _at_limit("Atis.atis_code"),
        "facility": SMALL_MIN,
        "rating": SMALL_MIN,
        "visual_range": INT_MIN,
        "cid": INT_MIN,
    }
    prefile = {
        **PREFILE,
        "cid": base_cid,
        "callsign": _at_limit("Prefile.callsign", "\U0001f6e9"),
        "name": _at_limit("Prefile.name", WIDE),
        "flight_plan": _plan_at_limits(),
    }
    return {
        "pilots": [top, bottom],
        "controllers": [controller],
        "atis": [atis],
        "prefiles": [prefile],
    }


def extreme_stations(callsigns: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "callsign": callsign,
            "transceivers": [
                {
                    "id": SMALL_MAX,
                    "frequency": INT_MAX,
                    "latDeg": 90.0,
                    "lonDeg": 180.0,
                    "heightMslM": 1.7976931348623157e308,
                    "heightAglM": -1.7976931348623157e308,
                },
                {"id": SMALL_MIN, "frequency": INT_MIN, "latDeg": -90.0, "lonDeg": -180.0},
            ],
        }
        for callsign in callsigns
    ]


def test_records_at_every_limit_are_stored_on_this_backend(engine: Engine) -> None:
    doc = load(SMALL)
    doc["general"]["update_timestamp"] = STAMP
    extremes = extreme_records(base_cid=INT_MAX)
    for name, records in extremes.items():
        doc[name] = [*doc[name], *records]
    raw = orjson.dumps(doc)
    snapshot, report = decode_snapshot_records(raw)
    assert report.clean, report.dropped[:3]
    assert_within_limits(snapshot)
    callsigns = [
        r["callsign"] for name in ("pilots", "controllers", "atis") for r in extremes[name]
    ]
    stations, station_report = decode_transceivers_records(
        orjson.dumps(extreme_stations(callsigns))
    )
    assert station_report.clean

    ingestor = Ingestor(engine, IngestConfig())
    ingestor.restore()
    result = ingestor.ingest_snapshot(
        snapshot, stations, raw=raw, fetched_at=AT + timedelta(seconds=2)
    )
    assert result.outcome is Outcome.INGESTED

    with engine.connect() as conn:
        pilots = {
            r.cid: r
            for r in conn.execute(
                select(t.pilot_sessions).where(t.pilot_sessions.c.cid.in_([INT_MAX, INT_MIN]))
            )
        }
        positions = {
            (r.altitude, r.groundspeed, r.heading, r.qnh_mb, r.latitude, r.longitude)
            for r in conn.execute(
                select(t.positions).where(
                    t.positions.c.pilot_session_id.in_([p.id for p in pilots.values()])
                )
            )
        }
        plans = list(
            conn.execute(
                select(t.flight_plans).where(
                    t.flight_plans.c.pilot_session_id.in_([p.id for p in pilots.values()])
                )
            )
        )
        revisions = list(conn.execute(select(t.atis_revisions.c.text_atis)))
        radios = {
            (r.transceiver_id, r.frequency_hz)
            for r in conn.execute(
                select(t.transceivers).where(t.transceivers.c.callsign.in_(callsigns))
            )
        }
        prefile = conn.execute(
            select(t.prefiles).where(t.prefiles.c.callsign == extremes["prefiles"][0]["callsign"])
        ).one()
    assert pilots[INT_MAX].callsign == WIDE * 32
    assert pilots[INT_MAX].pilot_rating == SMALL_MAX
    assert pilots[INT_MIN].military_rating == SMALL_MIN
    assert positions == {
        (INT_MAX, SMALL_MAX, SMALL_MAX, SMALL_MAX, 90.0, 180.0),
        (INT_MIN, SMALL_MIN, SMALL_MIN, SMALL_MIN, -90.0, -180.0),
    }
    assert {len(p.route) for p in plans} == {limits.FREE_TEXT_CHARS}
    assert {p.revision_id for p in plans} == {INT_MAX, INT_MIN}
    assert any(r.text_atis and len(r.text_atis.split("\n")) == limits.ATIS_LINES for r in revisions)
    assert radios == {(SMALL_MAX, INT_MAX), (SMALL_MIN, INT_MIN)}
    assert prefile.departure == WIDE * limits.IDENTIFIER_CHARS
