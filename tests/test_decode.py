"""Decoding survives every real file and rejects everything that is not a v3 snapshot.

Record-level leniency (one bad record costs only that record) is tested in
``test_record_validation.py``; here are the envelope and the old all-or-nothing entry points.
"""

from __future__ import annotations

import contextlib
import gzip
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from feeds import ALL_FEEDS, SMALL, load, parse_time
from vatsim_collector.feed.decode import (
    FeedDecodeError,
    decode_snapshot,
    decode_snapshot_records,
    decode_transceivers,
    decode_transceivers_records,
)
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor, Outcome
from vatsim_collector.store import schema as t
from vatsim_collector.store.redact import strip_names


@pytest.mark.parametrize("path", ALL_FEEDS, ids=lambda p: p.name)
def test_every_shared_file_decodes_completely(path: Path) -> None:
    raw = path.read_bytes()
    doc = orjson.loads(raw)
    snap = decode_snapshot(raw)
    assert snap.general.version == 3
    assert snap.update_timestamp == parse_time(doc["general"]["update_timestamp"])
    assert len(snap.pilots) == len(doc["pilots"])
    assert len(snap.controllers) == len(doc["controllers"])
    assert len(snap.atis) == len(doc["atis"])
    assert len(snap.prefiles) == len(doc["prefiles"])
    planless = sum(1 for p in doc["pilots"] if p["flight_plan"] is None)
    assert sum(1 for p in snap.pilots if p.flight_plan is None) == planless
    lenient, report = decode_snapshot_records(raw)
    assert lenient == snap
    assert report.clean
    assert report.served == {name: len(doc[name]) for name in report.served}


def test_quirks_decode() -> None:
    doc = load(SMALL)
    doc["general"]["update_timestamp"] = "2021-08-02T10:59:35Z"  # no fraction at all
    doc["pilots"][0]["flight_plan"] = None
    doc["pilots"][1]["unknown_new_key"] = {"nested": [1, 2]}
    doc["controllers"][0]["text_atis"] = None
    doc["controllers"][1]["text_atis"] = [""]
    doc["atis"][0]["atis_code"] = None
    doc["pilots"][2]["flight_plan"].pop("revision_id", None)
    doc["pilots"][2]["flight_plan"].pop("assigned_transponder", None)
    snap = decode_snapshot(orjson.dumps(doc))
    assert snap.pilots[0].flight_plan is None
    assert snap.pilots[2].flight_plan is not None
    assert snap.pilots[2].flight_plan.revision_id is None
    assert snap.update_timestamp.tzinfo is not None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", "empty document"),
        (b"[]", "got a JSON array"),
        (b"; VATSIM legacy data file\n!GENERAL:\nVERSION = 8\n", "legacy pre-v3"),
        (b'{"general": {"version": 2, "update_timestamp": "2020-01-01T00:00:00Z"}}', "version 2"),
        (b'{"clients": [], "servers": []}', "legacy v2 document"),
        (
            b'{"general": {"version": 3, "update_timestamp": "2020-01-01T00:00:00Z"},'
            b' "pilots": null}',
            "$.pilots",
        ),
        (b'{"general": {"version": 3, "update_timestamp": "2020-01-01T00:00:00"}, "x": [', "JSON"),
        (
            b'{"general": {"version": 3, "update_timestamp": "2020-01-01T00:00:00Z",'
            b' "update": "\xff"}}',
            "not UTF-8",
        ),
        (b'{"general": {"version": NaN, "update_timestamp": "2020-01-01T00:00:00Z"}}', "JSON"),
        (b'{"general": {"version": 3, "update_timestamp": "yesterday"}}', "update_timestamp"),
        (b'{"general": {"version": 3, "upd', "malformed JSON"),
    ],
)
def test_non_v3_documents_are_rejected_with_a_clear_reason(raw: bytes, expected: str) -> None:
    for decode in (decode_snapshot, decode_snapshot_records):
        with pytest.raises(FeedDecodeError) as info:
            decode(raw)
        assert expected in str(info.value)


def test_the_all_or_nothing_decoder_rejects_a_document_with_one_bad_record() -> None:
    raw = (
        b'{"general": {"version": 3, "update_timestamp": "2020-01-01T00:00:00Z"},'
        b' "pilots": [{"cid": "x"}]}'
    )
    with pytest.raises(FeedDecodeError, match=r"pilots\[0\]\.cid"):
        decode_snapshot(raw)
    snapshot, report = decode_snapshot_records(raw)
    assert snapshot.pilots == []
    assert report.counts_by_reason() == {("pilots", "bad_type"): 1}


def test_transceivers_decode_and_reject() -> None:
    stations = decode_transceivers(
        b'[{"callsign": "X", "transceivers": []}, {"callsign": "Y", "transceivers":'
        b' [{"id": 0, "frequency": 122800010, "latDeg": 1.5, "lonDeg": 2, "extra": true}]}]'
    )
    assert [s.callsign for s in stations] == ["X", "Y"]
    assert stations[1].transceivers[0].frequency == 122_800_010
    for decode in (decode_transceivers, decode_transceivers_records):
        with pytest.raises(FeedDecodeError, match="expected a JSON array"):
            decode(b'{"general": {}}')
        with pytest.raises(FeedDecodeError, match="malformed JSON"):
            decode(b'[{"callsign": "X"}, {"callsign": "Y"')
        with pytest.raises(FeedDecodeError, match="malformed JSON"):
            decode(b'[{"callsign": "X"}, NaN] trailing')


def test_a_bad_record_is_held_and_the_rest_of_its_snapshot_applied(engine: Engine) -> None:
    ingestor = Ingestor(engine, IngestConfig())
    ingestor.restore()
    doc = load(SMALL)
    bad = doc["pilots"][-1]
    bad["latitude"] = "north"  # one bad field costs only its record
    raw = orjson.dumps(doc)
    result = ingestor.ingest(raw, source="test")
    assert result.outcome is Outcome.INGESTED
    assert result.records_dropped == 1
    assert result.drop_reasons == {"pilots.bad_type": 1}
    good = {(p["cid"], p["callsign"], p["logon_time"]) for p in doc["pilots"][:-1]}
    with engine.connect() as conn:
        held = conn.execute(select(t.held_documents)).one()
        sessions = conn.execute(select(func.count()).select_from(t.pilot_sessions)).scalar_one()
    assert sessions == len(good)
    assert held.kind == "record"
    assert held.source == "test"
    assert held.reason.startswith("pilots: bad_type: ")
    assert "latitude" in held.reason
    kept = orjson.loads(gzip.decompress(held.body_gzip))
    # The record as served, without the member's name (names are not stored by default).
    assert kept == {k: v for k, v in bad.items() if k != "name"}


def test_a_rejected_document_is_kept_and_nothing_is_applied(engine: Engine) -> None:
    ingestor = Ingestor(engine, IngestConfig())
    ingestor.restore()
    doc = load(SMALL)
    doc["pilots"] = {"not": "a list"}  # a broken envelope spoils the whole document
    raw = orjson.dumps(doc)
    result = ingestor.ingest(raw, source="test")
    assert result.outcome is Outcome.REJECTED
    assert result.reason is not None
    assert "pilots" in result.reason
    with engine.connect() as conn:
        held = conn.execute(select(t.held_documents)).one()
        sessions = conn.execute(select(func.count()).select_from(t.pilot_sessions)).scalar_one()
    assert sessions == 0
    assert held.kind == "rejected"
    assert held.source == "test"
    # Kept as received, except members' names when names are not stored (the default).
    assert gzip.decompress(held.body_gzip) == strip_names(raw)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        # Bytes after a plausible start, so the per-record paths are reached too.
        st.binary(max_size=200).map(
            lambda tail: (
                b'{"general": {"version": 3, "update_timestamp": "2020-01-01T00:00:00Z"},'
                b' "pilots": [' + tail
            )
        ),
    )
)
def test_arbitrary_bytes_never_escape_as_anything_but_feed_decode_error(raw: bytes) -> None:
    with contextlib.suppress(FeedDecodeError):
        decode_snapshot(raw)
    with contextlib.suppress(FeedDecodeError):
        decode_snapshot_records(raw)
    with contextlib.suppress(FeedDecodeError):
        decode_transceivers_records(b"[" + raw)
