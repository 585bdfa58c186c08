"""docs/events-stream.schema.json is generated from the msgspec types and kept up to date; real
events validate against it; docs/events-stream.md names every event type and its subject."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema_rs
from sqlalchemy import Engine

from feeds import SMALL, encode, later, load
from vatsim_collector.brokers.nats.schema import render, stream_schema
from vatsim_collector.events.event import encode_event
from vatsim_collector.events.payloads import EventType
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor

DOCS = Path(__file__).resolve().parent.parent / "docs"
SCHEMA_FILE = DOCS / "events-stream.schema.json"


def test_the_committed_schema_is_up_to_date() -> None:
    assert SCHEMA_FILE.read_text() == render(), (
        "docs/events-stream.schema.json is out of date: run"
        " python -m vatsim_collector.brokers.nats.schema > docs/events-stream.schema.json"
    )


def test_every_payload_type_is_in_the_schema() -> None:
    mapping = stream_schema()["$defs"]["Event"]["properties"]["payload"]["discriminator"]
    assert set(mapping["mapping"]) == {t.value for t in EventType}


def test_real_events_validate_and_their_times_are_rfc3339(engine: Engine) -> None:
    ingestor = Ingestor(engine, IngestConfig())
    ingestor.restore()
    first = load(SMALL)
    events = ingestor.ingest(encode(first)).events
    gone = later(first, 15)
    gone["pilots"] = gone["pilots"][1:]
    events += ingestor.ingest(encode(gone)).events
    schema = stream_schema()
    # schemathesis's own validator (installed with it), formats checked.
    validator = jsonschema_rs.Draft202012Validator(schema, validate_formats=True)
    types = set()
    for event in events:
        validator.validate(json.loads(encode_event(event)))
        types.add(event.type)
    assert {"snapshot.received", "pilot.connected", "controller.connected"} <= types
    broken = json.loads(encode_event(events[0]))
    broken["time"] = "yesterday"
    assert not validator.is_valid(broken), "a time that is no date-time must not pass"
    fixed = json.loads(encode_event(events[0]))
    del fixed["payload"]["snapshot_id"]
    assert not validator.is_valid(fixed), "a payload without a required field must not pass"


def test_the_guide_names_every_event_type_and_subject() -> None:
    guide = (DOCS / "events-stream.md").read_text()
    for event_type in EventType:
        assert f"`{event_type.value}`" in guide, event_type
    assert "Nats-Msg-Id" in guide
    assert "vatsim.events.pilot.connected" in guide
