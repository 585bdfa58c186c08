"""The JSON Schema of a message on the events stream, generated from the msgspec types.

The body of every message is ``events.event.encode_event`` of an ``Event``: the envelope and,
under ``payload``, one payload type picked by its ``type`` field, which is also the last part
of the subject. ``docs/events-stream.schema.json`` is this module's output, committed, and a
test fails when it is out of date; regenerate it with

    python -m vatsim_collector.brokers.nats.schema > docs/events-stream.schema.json
"""

from __future__ import annotations

import json
import sys
from typing import Any

import msgspec
import msgspec.inspect as mi

from vatsim_collector.events.event import Event
from vatsim_collector.events.payloads import Payload

__all__ = ["render", "stream_schema"]


def _is_datetime(info: mi.Type) -> bool:
    if isinstance(info, mi.DateTimeType):
        return True
    if isinstance(info, mi.UnionType):
        return any(isinstance(t, mi.DateTimeType) for t in info.types)
    return False


def _mark_datetimes(defs: dict[str, Any]) -> None:
    """msgspec writes a datetime as a bare string; say it is RFC 3339, as it is encoded."""
    structs = [Event, *Payload.__args__]
    for struct in structs:
        info = mi.type_info(struct)
        if not isinstance(info, mi.StructType):
            raise TypeError(f"{struct!r} is not a msgspec struct")
        properties = defs[struct.__name__]["properties"]
        for field in info.fields:
            if not _is_datetime(field.type):
                continue
            prop = properties[field.encode_name]
            for option in prop.get("anyOf", [prop]):
                if option.get("type") == "string":
                    option["format"] = "date-time"


def stream_schema() -> dict[str, Any]:
    schema: dict[str, Any] = msgspec.json.schema(Event)
    _mark_datetimes(schema["$defs"])
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "vatsim-collector event",
        "description": (
            "The body of a message on the events stream (docs/events-stream.md): one domain"
            " event. Its subject is <prefix>.<payload.type>, e.g."
            " vatsim.events.pilot.connected, and its Nats-Msg-Id header is its id."
            " eventlog.gap is the event log's own marker and never on the stream."
        ),
        **schema,
    }


def render() -> str:
    return json.dumps(stream_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
