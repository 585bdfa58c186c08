"""Bytes from the wire to typed documents, record by record, or a clear error that names what is
wrong with the document as a whole.

Decoding is lenient per record: a pilot, controller, ATIS, prefile or transceivers station that
is malformed or outside the limits of ``feed/limits.py`` is left out of the snapshot and
reported (``RecordReport``); the rest is kept. Only a broken envelope rejects the document
(``FeedDecodeError``): no JSON object (array for transceivers), no valid ``general``, a version
other than 3, a section that is not a list, or broken JSON syntax.

Fast path: one typed decode of the whole document enforces every limit in C; a snapshot passes
if that succeeds, no escaped control character occurs in its bytes, and no logon is after the
snapshot. Only otherwise is the document cut into records and each decoded on its own.

``decode_snapshot`` and ``decode_transceivers`` keep the old all-or-nothing contract on top of
this: any dropped record rejects the document.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, TypeVar

import msgspec

from vatsim_collector.errors.exceptions import DataRejected
from vatsim_collector.feed.models import (
    Atis,
    Controller,
    General,
    Pilot,
    Prefile,
    Snapshot,
    StationTransceivers,
)
from vatsim_collector.feed.records import (
    CONTROL_ESCAPE,
    MalformedRecord,
    RecordDecoder,
    latest_logon,
)
from vatsim_collector.feed.report import (
    SNAPSHOT_SECTIONS,
    TRANSCEIVERS_SECTION,
    DroppedRecord,
    RecordReport,
)
from vatsim_collector.feed.split import StructureError, split_sections

__all__ = [
    "DroppedRecord",
    "FeedDecodeError",
    "RecordReport",
    "decode_snapshot",
    "decode_snapshot_records",
    "decode_transceivers",
    "decode_transceivers_records",
]

R = TypeVar("R", bound=msgspec.Struct)

# What msgspec raises for bytes it cannot use: invalid UTF-8 inside a string it decodes comes
# out as UnicodeDecodeError, and arrays nested thousands deep as RecursionError.
_UNUSABLE = (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError)


class FeedDecodeError(DataRejected):
    """The document is not a usable VATSIM v3 snapshot; the message says why."""


class _Envelope(msgspec.Struct, gc=False):
    general: General
    pilots: list[msgspec.Raw] = []
    controllers: list[msgspec.Raw] = []
    atis: list[msgspec.Raw] = []
    prefiles: list[msgspec.Raw] = []


_snapshot_decoder = msgspec.json.Decoder(Snapshot)
_envelope_decoder = msgspec.json.Decoder(_Envelope)
_transceivers_decoder = msgspec.json.Decoder(list[StationTransceivers])
_raw_list_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_record_decoders: dict[str, RecordDecoder[Any]] = {
    "pilots": RecordDecoder("pilots", Pilot),
    "controllers": RecordDecoder("controllers", Controller),
    "atis": RecordDecoder("atis", Atis),
    "prefiles": RecordDecoder("prefiles", Prefile),
}
_station_decoder = RecordDecoder(TRANSCEIVERS_SECTION, StationTransceivers)
_logon_time = attrgetter("logon_time")


def _describe_top_level(raw: bytes) -> str:
    stripped = raw.lstrip()[:1]
    return {
        b"[": "a JSON array",
        b"{": "a JSON object",
        b"": "an empty document",
    }.get(stripped, "not JSON")


def _require_object(raw: bytes) -> None:
    if not raw.strip():
        raise FeedDecodeError("empty document: expected a VATSIM v3 snapshot")
    if raw.lstrip()[:1] != b"{":
        raise FeedDecodeError(
            f"not a VATSIM v3 snapshot: expected a JSON object, got {_describe_top_level(raw)}"
            + (" (legacy pre-v3 text feed?)" if raw.lstrip()[:1] in (b";", b"!") else "")
        )


def _require_array(raw: bytes) -> None:
    if raw.lstrip()[:1] != b"[":
        raise FeedDecodeError(
            "not a VATSIM transceivers document: expected a JSON array, "
            f"got {_describe_top_level(raw)}"
        )


def _checked_general(general: General) -> General:
    if general.version != 3:
        raise FeedDecodeError(
            f"unsupported feed version {general.version}: only VATSIM data v3 is accepted"
        )
    ts = general.update_timestamp
    if ts.tzinfo is None:
        general.update_timestamp = ts.replace(tzinfo=UTC)
    return general


def _envelope_error(exc: Exception) -> FeedDecodeError:
    if isinstance(exc, UnicodeDecodeError):
        return FeedDecodeError("invalid VATSIM v3 snapshot: text outside the records is not UTF-8")
    if isinstance(exc, RecursionError):
        return FeedDecodeError("malformed JSON: nested too deeply outside the records")
    message = str(exc)
    # (msgspec's ValidationError is a DecodeError too: a wrong shape, not broken syntax.)
    if not isinstance(exc, msgspec.ValidationError):
        return FeedDecodeError(f"malformed JSON: {message}")
    if "`$.general`" in message or "missing required field `general`" in message:
        return FeedDecodeError(
            f"not a VATSIM v3 snapshot: {message} (a legacy v2 document has no v3 'general')"
        )
    return FeedDecodeError(f"invalid VATSIM v3 snapshot: {message}")


def _latest_logon(snapshot: Snapshot) -> datetime | None:
    sections = (snapshot.pilots, snapshot.controllers, snapshot.atis)
    return max((max(map(_logon_time, s)) for s in sections if s), default=None)


def _fast_snapshot(raw: bytes) -> Snapshot | None:
    """The whole snapshot if every record is clean, else None (the per-record path decides)."""
    try:
        snapshot = _snapshot_decoder.decode(raw)
    except _UNUSABLE:
        return None
    if CONTROL_ESCAPE.search(raw):
        return None
    general = _checked_general(snapshot.general)
    latest = _latest_logon(snapshot)
    if latest is not None and latest > latest_logon(general.update_timestamp):
        return None
    return snapshot


def _sections(raw: bytes) -> tuple[General, dict[str, Sequence[bytes]]]:
    """``general`` and each section's record bytes, however broken some records are."""
    try:
        envelope = _envelope_decoder.decode(raw)
    except (msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise _envelope_error(exc) from None
    except (msgspec.DecodeError, RecursionError) as exc:
        # Maybe just NaN, a lone surrogate or deep nesting in a record: split by hand.
        syntax_error = exc
    else:
        return envelope.general, {
            name: [bytes(r) for r in getattr(envelope, name)] for name in SNAPSHOT_SECTIONS
        }
    try:
        split = split_sections(raw, SNAPSHOT_SECTIONS)
        envelope = _envelope_decoder.decode(split.rest)
    except StructureError:
        raise _envelope_error(syntax_error) from None
    except _UNUSABLE as exc:
        raise _envelope_error(exc) from None
    return envelope.general, {name: split.elements.get(name, []) for name in SNAPSHOT_SECTIONS}


def _decode_records(
    decoder: RecordDecoder[R],
    records: Sequence[bytes],
    logon_limit: datetime,
    report: RecordReport,
) -> list[R]:
    report.served[decoder.section] = len(records)
    kept: list[R] = []
    for index, record_raw in enumerate(records):
        try:
            record = decoder.decode(index, record_raw, logon_limit, report)
        except MalformedRecord as exc:
            raise FeedDecodeError(f"malformed JSON in {decoder.section}[{index}]: {exc}") from None
        if record is not None:
            kept.append(record)
    return kept


def decode_snapshot_records(raw: bytes) -> tuple[Snapshot, RecordReport]:
    """Decode a ``vatsim-data.json`` v3 document, leaving out each record that cannot be stored.

    Raises ``FeedDecodeError`` only for a broken envelope (see the module docstring).
    """
    _require_object(raw)
    snapshot = _fast_snapshot(raw)
    if snapshot is not None:
        served = {name: len(getattr(snapshot, name)) for name in SNAPSHOT_SECTIONS}
        return snapshot, RecordReport(served=served)
    general, sections = _sections(raw)
    general = _checked_general(general)
    limit = latest_logon(general.update_timestamp)
    report = RecordReport()
    kept = {
        name: _decode_records(_record_decoders[name], sections[name], limit, report)
        for name in SNAPSHOT_SECTIONS
    }
    return Snapshot(general=general, **kept), report


def decode_transceivers_records(raw: bytes) -> tuple[list[StationTransceivers], RecordReport]:
    """Decode a ``transceivers-data.json`` document, leaving out each malformed station.

    Raises ``FeedDecodeError`` (never anything else) if the document is not a JSON array.
    """
    _require_array(raw)
    report = RecordReport()
    try:
        stations = _transceivers_decoder.decode(raw)
    except _UNUSABLE:
        pass
    else:
        if not CONTROL_ESCAPE.search(raw):
            report.served[TRANSCEIVERS_SECTION] = len(stations)
            return stations, report
    try:
        elements: Sequence[bytes] = [bytes(r) for r in _raw_list_decoder.decode(raw)]
    except (msgspec.ValidationError, UnicodeDecodeError) as exc:
        raise FeedDecodeError(f"invalid transceivers document: {exc}") from None
    except (msgspec.DecodeError, RecursionError) as exc:
        try:
            split = split_sections(raw, ("",))
            _raw_list_decoder.decode(split.rest)
        except (StructureError, msgspec.DecodeError, RecursionError):
            raise FeedDecodeError(f"malformed JSON: {exc}") from None
        elements = split.elements.get("", [])
    # Stations have no logon time; the limit is never consulted.
    never = datetime.max.replace(tzinfo=UTC)
    return _decode_records(_station_decoder, elements, never, report), report


def _strict(report: RecordReport, what: str) -> None:
    if report.dropped:
        first = report.dropped[0]
        more = f" (and {len(report.dropped) - 1} more)" if len(report.dropped) > 1 else ""
        raise FeedDecodeError(f"invalid {what}: {first.reason}: {first.detail}{more}")


def decode_snapshot(raw: bytes) -> Snapshot:
    """Decode a ``vatsim-data.json`` v3 document, all or nothing: any bad record rejects it."""
    snapshot, report = decode_snapshot_records(raw)
    _strict(report, "VATSIM v3 snapshot")
    return snapshot


def decode_transceivers(raw: bytes) -> list[StationTransceivers]:
    """Decode a ``transceivers-data.json`` document, all or nothing."""
    stations, report = decode_transceivers_records(raw)
    _strict(report, "transceivers document")
    return stations
