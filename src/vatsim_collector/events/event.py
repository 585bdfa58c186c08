"""The event envelope: id, type, time, source, correlation id and a typed payload."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from vatsim_collector.errors.exceptions import DataRejected
from vatsim_collector.events.ids import new_event_id
from vatsim_collector.events.payloads import EventType, Payload

__all__ = ["Event", "EventCodecError", "decode_event", "decode_payload", "encode_event"]


class Event(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One domain event.

    ``time`` is when it happened in the network (the snapshot's ``update_timestamp``), not when
    the collector noticed; ``id`` sorts by creation. Every event derived from one snapshot
    carries the id of that snapshot's ``snapshot.received`` event as ``correlation_id``.
    """

    id: str
    time: datetime
    source: str
    payload: Payload
    correlation_id: str | None = None

    @property
    def type(self) -> str:
        return self.payload.__struct_config__.tag  # type: ignore[return-value]

    @classmethod
    def create(
        cls,
        payload: Payload,
        *,
        time: datetime,
        source: str,
        correlation_id: str | None = None,
        event_id: str | None = None,
    ) -> Event:
        return cls(
            id=event_id or new_event_id(),
            time=time,
            source=source,
            payload=payload,
            correlation_id=correlation_id,
        )

    def summary(self) -> dict[str, Any]:
        """The envelope (with its type) and payload as plain JSON-ready values."""
        data: dict[str, Any] = msgspec.to_builtins(self)
        data["type"] = self.type
        return data


class EventCodecError(DataRejected):
    """A stored event could not be read back (unknown type, or a payload that does not fit)."""


_encoder = msgspec.json.Encoder()
_event_decoder = msgspec.json.Decoder(Event)
_payload_decoder = msgspec.json.Decoder(Payload)


def encode_event(event: Event) -> bytes:
    return _encoder.encode(event)


def encode_payload(payload: Payload) -> bytes:
    return _encoder.encode(payload)


def decode_event(data: bytes | str) -> Event:
    try:
        return _event_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise EventCodecError(f"stored event cannot be decoded: {exc}") from exc


def decode_payload(data: bytes | str) -> Payload:
    try:
        payload: Payload = _payload_decoder.decode(data)
        return payload
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise EventCodecError(f"stored event payload cannot be decoded: {exc}") from exc


KNOWN_TYPES = frozenset(t.value for t in EventType)
