"""Bytes from the wire to typed documents, or a clear error that names what is wrong.

Decoding is all-or-nothing: a document that fails anywhere is rejected whole, so a
half-understood snapshot can never be half-applied.
"""

from __future__ import annotations

from datetime import UTC

import msgspec

from vatsim_collector.feed.models import Snapshot, StationTransceivers

_snapshot_decoder = msgspec.json.Decoder(Snapshot)
_transceivers_decoder = msgspec.json.Decoder(list[StationTransceivers])
_probe_decoder = msgspec.json.Decoder(msgspec.Raw)


class FeedDecodeError(ValueError):
    """The document is not a usable VATSIM v3 snapshot; the message says why."""


def _describe_top_level(raw: bytes) -> str:
    stripped = raw.lstrip()[:1]
    return {
        b"[": "a JSON array",
        b"{": "a JSON object",
        b"": "an empty document",
    }.get(stripped, "not JSON")


def decode_snapshot(raw: bytes) -> Snapshot:
    """Decode a ``vatsim-data.json`` v3 document."""
    if not raw.strip():
        raise FeedDecodeError("empty document: expected a VATSIM v3 snapshot")
    if raw.lstrip()[:1] != b"{":
        raise FeedDecodeError(
            f"not a VATSIM v3 snapshot: expected a JSON object, got {_describe_top_level(raw)}"
            + (" (legacy pre-v3 text feed?)" if raw.lstrip()[:1] in (b";", b"!") else "")
        )
    try:
        snapshot = _snapshot_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        message = str(exc)
        if "`$.general`" in message or "missing required field `general`" in message:
            raise FeedDecodeError(
                f"not a VATSIM v3 snapshot: {message} (a legacy v2 document has no v3 'general')"
            ) from None
        raise FeedDecodeError(f"invalid VATSIM v3 snapshot: {message}") from None
    except msgspec.DecodeError as exc:
        raise FeedDecodeError(f"malformed JSON: {exc}") from None
    if snapshot.general.version != 3:
        raise FeedDecodeError(
            f"unsupported feed version {snapshot.general.version}: only VATSIM data v3 is accepted"
        )
    ts = snapshot.general.update_timestamp
    if ts.tzinfo is None:
        snapshot.general.update_timestamp = ts.replace(tzinfo=UTC)
    return snapshot


def decode_transceivers(raw: bytes) -> list[StationTransceivers]:
    """Decode a ``transceivers-data.json`` document."""
    if raw.lstrip()[:1] != b"[":
        raise FeedDecodeError(
            "not a VATSIM transceivers document: expected a JSON array, "
            f"got {_describe_top_level(raw)}"
        )
    try:
        return _transceivers_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise FeedDecodeError(f"invalid transceivers document: {exc}") from None
    except msgspec.DecodeError as exc:
        raise FeedDecodeError(f"malformed JSON: {exc}") from None
