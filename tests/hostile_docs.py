"""Crafted feed documents: one builder per row of issue 15's table of hostile input.

A builder takes the valid documents the feed is about to publish (data and transceivers, as
JSON values) and returns the bytes to serve instead, with what the collector should make of
them: which records are bad (and how to recognise each one among the held documents), which
pilots are good and must be stored, and what becomes of the document as a whole.

Bad records are added beside the network's own records, never made of them, so the good
records of a crafted document are exactly those of the valid one. Each bad record carries a
callsign starting with ``HX<row>`` (its marker) and, where it has one, a name that must never
reach ``held_documents`` (names are not stored by default).
"""

from __future__ import annotations

import copy
import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson

Json = dict[str, Any]
Document = Literal["data", "transceivers"]
# What becomes of the crafted document itself.
Outcome = Literal["accepted", "quarantined", "rejected"]

# Rendered by orjson, then swapped for bytes orjson refuses to write (1e999, invalid UTF-8).
_SENTINEL_FLOAT = 987654.321987
_SENTINEL_INT = 4_098_765_431_234
_BASE_CID = 1_990_000


@dataclass(frozen=True)
class BadRecord:
    section: str  # pilots, controllers, atis, prefiles or transceivers
    why: str  # what is wrong with it, for failure messages
    # Text found in the held sample of this record, or None when the record has nothing to
    # recognise it by (a bare number in place of an object).
    marker: str | None


@dataclass(frozen=True)
class Crafted:
    row: str  # the table row, as a short name
    document: Document
    # Served to the first requests of the tick, one each; then the valid document if
    # ``then_valid`` (as when a mirror briefly serves junk), else the last body again.
    bodies: tuple[bytes, ...]
    then_valid: bool
    # The update_timestamp the crafted document claims (None if it has none to read).
    claimed_timestamp: datetime | None
    outcome: Outcome
    bad: tuple[BadRecord, ...] = ()
    # (cid, callsign) of every pilot that must have a position in the claimed snapshot.
    good_pilots: frozenset[tuple[int, str]] = frozenset()
    # (callsign, transceiver id) that must be stored for the snapshot (transceivers rows).
    good_transceivers: frozenset[tuple[str, int]] | None = None
    # Text identifying the whole document among held documents (quarantined or rejected).
    document_marker: str | None = None
    # Text that must never appear in any held document: names of the injected records.
    secrets: tuple[str, ...] = ()
    sections_served: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ValidDocuments:
    data: Json
    transceivers: list[Json]


Builder = Callable[[ValidDocuments], Crafted]


def feed_time(value: datetime) -> str:
    """The feed's own format: seven fractional digits and a Z."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def parse_feed_time(value: str) -> datetime:
    whole, _, fraction = value.rstrip("Z").partition(".")
    tenths = int((fraction + "0000000")[:7])
    return datetime.fromisoformat(f"{whole}+00:00") + timedelta(microseconds=(tenths + 5) // 10)


def stamp_of(data: Json) -> datetime:
    return parse_feed_time(str(data["general"]["update_timestamp"]))


def pilot_keys(data: Json) -> frozenset[tuple[int, str]]:
    return frozenset((int(p["cid"]), str(p["callsign"])) for p in data["pilots"])


def transceiver_keys(stations: list[Json]) -> frozenset[tuple[str, int]]:
    return frozenset(
        (str(s["callsign"]), int(tx["id"])) for s in stations for tx in s.get("transceivers", [])
    )


def section_counts(data: Json) -> dict[str, int]:
    return {k: len(data.get(k, [])) for k in ("pilots", "controllers", "atis", "prefiles")}


def _injected_pilot(valid: ValidDocuments, row: int, index: int) -> Json:
    """A plausible pilot of its own (a copy of a real one under a fresh cid and callsign)."""
    pilot: Json = copy.deepcopy(valid.data["pilots"][index % len(valid.data["pilots"])])
    pilot["cid"] = _BASE_CID + row * 10 + index
    pilot["callsign"] = f"HX{row:02d}P{index}"
    pilot["name"] = f"Hostile Secret {row:02d}{index}"
    return pilot


def _with_pilots(valid: ValidDocuments, extra: list[Any]) -> Json:
    data = copy.deepcopy(valid.data)
    data["pilots"] = [*data["pilots"], *extra]
    return data


def _record_rows(
    row: str,
    valid: ValidDocuments,
    data: Json,
    bad: list[BadRecord],
    *,
    swaps: tuple[tuple[bytes, bytes], ...] = (),
    secrets: tuple[str, ...] = (),
) -> Crafted:
    """A data document with bad records beside the good ones: stored without them."""
    body = orjson.dumps(data)
    for sentinel, replacement in swaps:
        assert sentinel in body, f"{row}: sentinel {sentinel!r} not rendered"
        body = body.replace(sentinel, replacement)
    return Crafted(
        row=row,
        document="data",
        bodies=(body,),
        then_valid=False,
        claimed_timestamp=stamp_of(valid.data),
        outcome="accepted",
        bad=tuple(bad),
        good_pilots=pilot_keys(valid.data),
        secrets=secrets,
        sections_served=section_counts(data),
    )


# ----- one builder per row ---------------------------------------------------------------


def future_2099(valid: ValidDocuments) -> Crafted:
    """Row 1: update_timestamp 2099; the real document of the tick follows."""
    data = copy.deepcopy(valid.data)
    when = datetime(2099, 1, 1, tzinfo=UTC)
    data["general"]["update_timestamp"] = feed_time(when)
    return _whole_document("future_2099", valid, data, when, "quarantined", "2099-01-01T00:00:00")


def long_random_callsign(valid: ValidDocuments) -> Crafted:
    """Row 2: one pilot with a 3,000-character random callsign (a poison pill on PostgreSQL)."""
    rng = random.Random(2)
    pilot = _injected_pilot(valid, 2, 0)
    alphabet = string.ascii_letters + string.digits + "-_/"
    pilot["callsign"] = "HX02" + "".join(rng.choice(alphabet) for _ in range(2996))
    bad = [BadRecord("pilots", "3,000-character callsign", "HX02")]
    return _record_rows(
        "long_random_callsign",
        valid,
        _with_pilots(valid, [pilot]),
        bad,
        secrets=(pilot["name"],),
    )


def smallint_overflow(valid: ValidDocuments) -> Crafted:
    """Row 3a: groundspeed, heading and qnh_mb beyond a SMALLINT (32,767)."""
    pilots, bad = [], []
    for index, key in enumerate(("groundspeed", "heading", "qnh_mb")):
        pilot = _injected_pilot(valid, 3, index)
        pilot[key] = 40_000
        pilots.append(pilot)
        bad.append(BadRecord("pilots", f"{key} 40,000", pilot["callsign"]))
    return _record_rows(
        "smallint_overflow",
        valid,
        _with_pilots(valid, pilots),
        bad,
        secrets=tuple(p["name"] for p in pilots),
    )


def integer_overflow(valid: ValidDocuments) -> Crafted:
    """Row 3b: altitude and cid beyond an INTEGER (2^31 - 1), and a cid beyond 64 bits."""
    altitude = _injected_pilot(valid, 4, 0)
    altitude["altitude"] = 2**31
    big_cid = _injected_pilot(valid, 4, 1)
    big_cid["cid"] = 2**31
    huge_cid = _injected_pilot(valid, 4, 2)
    # orjson writes 64-bit integers only: render a stand-in, then swap in 10^20.
    huge_cid["cid"] = _SENTINEL_INT
    pilots = [altitude, big_cid, huge_cid]
    bad = [
        BadRecord("pilots", "altitude 2^31", altitude["callsign"]),
        BadRecord("pilots", "cid 2^31", big_cid["callsign"]),
        BadRecord("pilots", "cid 10^20", huge_cid["callsign"]),
    ]
    return _record_rows(
        "integer_overflow",
        valid,
        _with_pilots(valid, pilots),
        bad,
        swaps=((str(_SENTINEL_INT).encode(), str(10**20).encode()),),
        secrets=tuple(p["name"] for p in pilots),
    )


def nul_bytes(valid: ValidDocuments) -> Crafted:
    """Row 3c: a NUL byte in a callsign and in flight-plan remarks (PostgreSQL refuses both)."""
    in_callsign = _injected_pilot(valid, 5, 0)
    in_callsign["callsign"] = "HX05P0\x00X"
    in_remarks = _injected_pilot(valid, 5, 1)
    plan = in_remarks.get("flight_plan") or {}
    in_remarks["flight_plan"] = {**plan, "remarks": "HX05 remarks \x00 end"}
    bad = [
        BadRecord("pilots", "NUL in callsign", "HX05P0"),
        BadRecord("pilots", "NUL in remarks", "HX05P1"),
    ]
    return _record_rows(
        "nul_bytes",
        valid,
        _with_pilots(valid, [in_callsign, in_remarks]),
        bad,
        secrets=(in_callsign["name"], in_remarks["name"]),
    )


def transceiver_out_of_range(valid: ValidDocuments) -> Crafted:
    """Row 3d: a transceiver frequency of 3x10^9 Hz and a transceiver id of 70,000."""
    stations = copy.deepcopy(valid.transceivers)
    radio = {"latDeg": 50.0, "lonDeg": 8.0, "heightMslM": 100.0, "heightAglM": 0.0}
    stations.append(
        {"callsign": "HX06A", "transceivers": [{"id": 0, "frequency": 3_000_000_000, **radio}]}
    )
    stations.append(
        {"callsign": "HX06B", "transceivers": [{"id": 70_000, "frequency": 122_800_000, **radio}]}
    )
    bad = (
        BadRecord("transceivers", "frequency 3e9", "HX06A"),
        BadRecord("transceivers", "id 70,000", "HX06B"),
    )
    return _transceivers_row("transceiver_out_of_range", valid, orjson.dumps(stations), bad)


def wrong_type(valid: ValidDocuments) -> Crafted:
    """Row 4a: a record with a wrong-typed field, and a bare number where a record belongs."""
    pilot = _injected_pilot(valid, 7, 0)
    pilot["groundspeed"] = "fast"
    bad = [
        BadRecord("pilots", "groundspeed is a string", pilot["callsign"]),
        BadRecord("pilots", "a number instead of a record", None),
    ]
    return _record_rows(
        "wrong_type", valid, _with_pilots(valid, [pilot, 42]), bad, secrets=(pilot["name"],)
    )


def non_finite(valid: ValidDocuments) -> Crafted:
    """Row 4b: 1e999 (infinity once parsed) as a latitude and -1e999 as an altitude."""
    latitude = _injected_pilot(valid, 8, 0)
    latitude["latitude"] = _SENTINEL_FLOAT
    altitude = _injected_pilot(valid, 8, 1)
    altitude["altitude"] = -_SENTINEL_FLOAT
    bad = [
        BadRecord("pilots", "latitude 1e999", latitude["callsign"]),
        BadRecord("pilots", "altitude -1e999", altitude["callsign"]),
    ]
    sentinel = orjson.dumps(_SENTINEL_FLOAT)
    return _record_rows(
        "non_finite",
        valid,
        _with_pilots(valid, [latitude, altitude]),
        bad,
        # "-" first is kept: -<sentinel> becomes -1e999.
        swaps=((sentinel, b"1e999"),),
        secrets=(latitude["name"], altitude["name"]),
    )


def missing_key(valid: ValidDocuments) -> Crafted:
    """Row 4c: a pilot without a latitude, and one without a callsign."""
    no_latitude = _injected_pilot(valid, 9, 0)
    del no_latitude["latitude"]
    no_callsign = _injected_pilot(valid, 9, 1)
    del no_callsign["callsign"]
    bad = [
        BadRecord("pilots", "no latitude", no_latitude["callsign"]),
        BadRecord("pilots", "no callsign", str(no_callsign["cid"])),
    ]
    return _record_rows(
        "missing_key",
        valid,
        _with_pilots(valid, [no_latitude, no_callsign]),
        bad,
        secrets=(no_latitude["name"], no_callsign["name"]),
    )


def future_logon(valid: ValidDocuments) -> Crafted:
    """Row 4d: a pilot whose logon is a year after the snapshot."""
    pilot = _injected_pilot(valid, 10, 0)
    pilot["logon_time"] = feed_time(stamp_of(valid.data) + timedelta(days=365))
    bad = [BadRecord("pilots", "logon a year ahead", pilot["callsign"])]
    return _record_rows(
        "future_logon", valid, _with_pilots(valid, [pilot]), bad, secrets=(pilot["name"],)
    )


def invalid_utf8_data(valid: ValidDocuments) -> Crafted:
    """Row 5a: invalid UTF-8 in one pilot's callsign of the data document."""
    pilot = _injected_pilot(valid, 11, 0)
    pilot["callsign"] = "HX11P0@@BADUTF8@@"
    bad = [BadRecord("pilots", "invalid UTF-8 in callsign", "HX11P0")]
    return _record_rows(
        "invalid_utf8_data",
        valid,
        _with_pilots(valid, [pilot]),
        bad,
        swaps=((b"@@BADUTF8@@", b"\xff\xfe\xc3"),),
        secrets=(pilot["name"],),
    )


def invalid_utf8_transceivers(valid: ValidDocuments) -> Crafted:
    """Row 5b: invalid UTF-8 in one station's callsign of the transceivers document."""
    stations = copy.deepcopy(valid.transceivers)
    radio = {"id": 0, "frequency": 122_800_000, "latDeg": 50.0, "lonDeg": 8.0}
    stations.append({"callsign": "HX12@@BADUTF8@@", "transceivers": [radio]})
    body = orjson.dumps(stations).replace(b"@@BADUTF8@@", b"\xff\xfe\xc3")
    bad = (BadRecord("transceivers", "invalid UTF-8 in callsign", "HX12"),)
    return _transceivers_row("invalid_utf8_transceivers", valid, body, bad)


def v2_then_v3(valid: ValidDocuments) -> Crafted:
    """Row 6: a v2 document, then the real v3 document with the same update_timestamp."""
    general = {**valid.data["general"], "version": 2}
    clients = [
        {**{k: v for k, v in p.items() if k != "flight_plan"}, "clienttype": "PILOT"}
        for p in valid.data["pilots"]
    ]
    v2 = {"general": general, "clients": clients, "servers": valid.data.get("servers", [])}
    return Crafted(
        row="v2_then_v3",
        document="data",
        bodies=(orjson.dumps(v2),),
        then_valid=True,
        claimed_timestamp=stamp_of(valid.data),
        outcome="rejected",
        good_pilots=pilot_keys(valid.data),
        document_marker='"clients"',
    )


def dated_1970(valid: ValidDocuments) -> Crafted:
    """Row 7a: a snapshot dated the Unix epoch."""
    data = copy.deepcopy(valid.data)
    when = datetime(1970, 1, 1, tzinfo=UTC)
    data["general"]["update_timestamp"] = feed_time(when)
    return _whole_document("dated_1970", valid, data, when, "quarantined", "1970-01-01T00:00:00")


def dated_year_1(valid: ValidDocuments) -> Crafted:
    """Row 7b: a snapshot dated year 1."""
    data = copy.deepcopy(valid.data)
    when = datetime(1, 1, 1, tzinfo=UTC)
    data["general"]["update_timestamp"] = "0001-01-01T00:00:00.0000000Z"
    return _whole_document("dated_year_1", valid, data, when, "quarantined", "0001-01-01T00:00:00")


def hundred_thousand_pilots(valid: ValidDocuments) -> Crafted:
    """Row 8: a document of 100,000 pilots, far beyond any real network: quarantined whole."""
    data = copy.deepcopy(valid.data)
    logon = feed_time(stamp_of(valid.data) - timedelta(hours=1))
    data["pilots"] = [
        {
            "cid": 2_000_000 + i,
            "callsign": f"HXK{i}",
            "logon_time": logon,
            "latitude": (i % 170) - 85.0,
            "longitude": (i % 350) - 175.0,
            "altitude": 30_000,
            "groundspeed": 450,
            "heading": i % 360,
        }
        for i in range(100_000)
    ]
    data["general"]["connected_clients"] = len(data["pilots"])
    stamp = stamp_of(valid.data)
    return Crafted(
        row="hundred_thousand_pilots",
        document="data",
        bodies=(orjson.dumps(data),),
        then_valid=False,
        claimed_timestamp=stamp,
        outcome="quarantined",
        document_marker="HXK99999",
        sections_served=section_counts(data),
    )


def impossible_position(valid: ValidDocuments) -> Crafted:
    """Row 8b: a pilot at latitude 1e308."""
    pilot = _injected_pilot(valid, 17, 0)
    pilot["latitude"] = 1e308
    bad = [BadRecord("pilots", "latitude 1e308", pilot["callsign"])]
    return _record_rows(
        "impossible_position", valid, _with_pilots(valid, [pilot]), bad, secrets=(pilot["name"],)
    )


def client_without_cid(valid: ValidDocuments) -> Crafted:
    """Row 9: a pilot and a controller without a cid, each with a name that must not be held."""
    pilot = _injected_pilot(valid, 18, 0)
    del pilot["cid"]
    data = _with_pilots(valid, [pilot])
    controller = copy.deepcopy(valid.data["controllers"][0])
    del controller["cid"]
    controller["callsign"] = "HX18C_CTR"
    controller["name"] = "Hostile Secret Controller"
    data["controllers"] = [*data["controllers"], controller]
    bad = [
        BadRecord("pilots", "no cid", pilot["callsign"]),
        BadRecord("controllers", "no cid", "HX18C_CTR"),
    ]
    return _record_rows(
        "client_without_cid", valid, data, bad, secrets=(pilot["name"], controller["name"])
    )


def _whole_document(
    row: str, valid: ValidDocuments, data: Json, when: datetime, outcome: Outcome, marker: str
) -> Crafted:
    """A document judged whole by its timestamp; the tick's real document follows it."""
    return Crafted(
        row=row,
        document="data",
        bodies=(orjson.dumps(data),),
        then_valid=True,
        claimed_timestamp=when,
        outcome=outcome,
        good_pilots=pilot_keys(valid.data),
        document_marker=marker,
        sections_served=section_counts(data),
    )


def _transceivers_row(
    row: str, valid: ValidDocuments, body: bytes, bad: tuple[BadRecord, ...]
) -> Crafted:
    """A bad transceivers document: the data snapshot and the good stations are still stored."""
    return Crafted(
        row=row,
        document="transceivers",
        bodies=(body,),
        then_valid=False,
        claimed_timestamp=stamp_of(valid.data),
        outcome="accepted",
        bad=bad,
        good_pilots=pilot_keys(valid.data),
        good_transceivers=transceiver_keys(valid.transceivers),
        sections_served={"transceivers": len(valid.transceivers) + len(bad)},
    )


# Every row of the table the feed can carry (HTTP hygiene and the spool are tested elsewhere).
ALL_ROWS: tuple[Builder, ...] = (
    smallint_overflow,
    integer_overflow,
    nul_bytes,
    transceiver_out_of_range,
    wrong_type,
    non_finite,
    missing_key,
    future_logon,
    invalid_utf8_data,
    invalid_utf8_transceivers,
    v2_then_v3,
    dated_1970,
    dated_year_1,
    hundred_thousand_pilots,
    impossible_position,
    client_without_cid,
    # Last: before the fixes these two stop collection for good (or poison PostgreSQL), which
    # would hide what every later row does.
    long_random_callsign,
    future_2099,
)
