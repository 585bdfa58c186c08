"""``replay --bulk`` leaves the database exactly as replaying the files one by one does, bad
files included; interrupted and re-run, it still does. Every run is the real CLI in a
subprocess; "the same database" is every table compared (``db_compare`` lists the few columns
left out and why)."""

from __future__ import annotations

import copy
import gzip
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import create_engine, func, select, text

from conftest import throwaway_database
from db_compare import differences, mask_wall_clock
from feeds import feed_time, timestamp
from test_cli import cli, summary
from vatsim_collector.simulator.traffic import SimRates
from vatsim_collector.simulator.world import SimulatedNetwork, load_seed_snapshot
from vatsim_collector.store import schema as t

START = datetime(2026, 1, 5, 23, 0, tzinfo=UTC)  # the files cross midnight: two UTC days
TICKS = 240
REFUSED = "REFUSE1"
# Busier than the defaults, so sessions end (and are summarised) within the hour.
RATES = SimRates(pilot_leave=0.02, pilot_join=0.02, controller_leave=0.02, controller_join=0.02)


def _small_seed() -> dict[str, Any]:
    """The simulator's seed cut to a few dozen clients: a few hundred snapshots stay quick."""
    seed = copy.deepcopy(load_seed_snapshot())
    seed["pilots"] = seed["pilots"][:60]
    seed["controllers"] = seed["controllers"][:15]
    seed["atis"] = seed["atis"][:6]
    seed["prefiles"] = seed["prefiles"][:5]
    return seed


def write_files(folder: Path) -> dict[str, Path]:
    """``TICKS`` simulated snapshots with their transceivers, and bad files among them."""
    folder.mkdir()
    sim = SimulatedNetwork(_small_seed(), seed=21, start=START, rates=RATES)
    docs: list[dict[str, Any]] = []
    for i in range(TICKS):
        doc = sim.data_document()
        docs.append(doc)
        stamp = sim.now.strftime("%Y%m%dT%H%M%SZ")
        data = orjson.dumps(doc)
        if i % 50 == 7:  # some recorded gzipped
            (folder / f"vatsim-data-{stamp}.json.gz").write_bytes(gzip.compress(data))
        else:
            (folder / f"vatsim-data-{stamp}.json").write_bytes(data)
        radios = orjson.dumps(sim.transceivers_document())
        (folder / f"transceivers-data-{stamp}.json").write_bytes(radios)
        sim.tick()
    bad: dict[str, Path] = {}

    def add(name: str, body: bytes) -> None:
        bad[name] = folder / f"vatsim-data-{name}.json"
        bad[name].write_bytes(body)

    add("tiny", b"\x00\x01\x02")
    future = copy.deepcopy(docs[0])
    future["general"]["update_timestamp"] = "2099-01-01T00:00:00Z"
    add("future", orjson.dumps(future))
    # A network of three pilots between two full ones: the sanity gate quarantines it.
    sparse = copy.deepcopy(docs[100])
    sparse["pilots"] = sparse["pilots"][:3]
    sparse["general"]["update_timestamp"] = feed_time(timestamp(docs[100]) + timedelta(seconds=7))
    add("sparse", orjson.dumps(sparse))
    # The same moment recorded twice: the second copy is a duplicate.
    add("copy", orjson.dumps(docs[150]))
    # One pilot no column can hold: that record is dropped and held, the snapshot stored.
    fast = copy.deepcopy(docs[60])
    fast["pilots"][0]["groundspeed"] = 70_000
    (folder / f"vatsim-data-{_stamp(docs[60])}.json").write_bytes(orjson.dumps(fast))
    # A pilot the refusing databases below will not store: that snapshot is held there.
    refused = copy.deepcopy(docs[120])
    refused["pilots"].append({**refused["pilots"][0], "cid": 1_999_999, "callsign": REFUSED})
    (folder / f"vatsim-data-{_stamp(docs[120])}.json").write_bytes(orjson.dumps(refused))
    # Transceivers that are not JSON: held, and their snapshot stored without them.
    (folder / f"transceivers-data-{_stamp(docs[30])}.json").write_bytes(b"\xff not json")
    return bad


def _stamp(doc: dict[str, Any]) -> str:
    return timestamp(doc).strftime("%Y%m%dT%H%M%SZ")


def _refusing(url: str) -> str:
    """``url``'s database, migrated, with a trigger refusing the pilot session of ``REFUSED``:
    a real refusal by the database, as a constraint the decoder cannot foresee would be."""
    assert cli("db", "upgrade", database_url=url).returncode == 0
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                conn.execute(
                    text(
                        "CREATE TRIGGER refuse_one BEFORE INSERT ON pilot_sessions"
                        f" WHEN NEW.callsign = '{REFUSED}'"
                        " BEGIN SELECT RAISE(ABORT, 'refused'); END"
                    )
                )
            else:
                conn.execute(
                    text(
                        "CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$"
                        f" BEGIN IF NEW.callsign = '{REFUSED}' THEN RAISE EXCEPTION 'refused'"
                        " USING ERRCODE = 'check_violation'; END IF; RETURN NEW; END $$"
                    )
                )
                conn.execute(
                    text(
                        "CREATE TRIGGER refuse_one BEFORE INSERT ON pilot_sessions"
                        " FOR EACH ROW EXECUTE FUNCTION refuse_one()"
                    )
                )
    finally:
        engine.dispose()
    return url


def _problem(line: str) -> str:
    """A line of ``replay``'s standard error, without the wall-clock times in it (a log
    record's timestamp, how far ahead of the clock a document from the future is)."""
    if line.startswith("{"):
        record = orjson.loads(line)
        record.pop("timestamp", None)
        line = orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode()
    return mask_wall_clock(line)


def _replay(folder: Path, url: str, *options: str) -> dict[str, Any]:
    result = cli("replay", str(folder), "--no-progress", *options, database_url=url)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    counts: dict[str, Any] = summary(result)
    counts["problems"] = sorted(_problem(line) for line in result.stderr.splitlines())
    return counts


def _same_database(one: str, other: str) -> None:
    a, b = create_engine(one), create_engine(other)
    try:
        found = differences(a, b)
        assert not found, "\n".join(found)
    finally:
        a.dispose()
        b.dispose()


def _stored_snapshots(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t.snapshots)).scalar_one())
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bulk") / "feeds"
    write_files(root)
    return root


def test_bulk_replay_stores_what_one_by_one_stores(folder: Path, tmp_path: Path) -> None:
    with throwaway_database(tmp_path, "one") as one, throwaway_database(tmp_path, "bulk") as bulk:
        single = _replay(folder, _refusing(one), "--no-bulk")
        batched = _replay(folder, _refusing(bulk), "--bulk", "--batch-size", "16")
        # The bad files are among them, and each is met as one by one meets it.
        assert single["snapshots_quarantined"] == 2  # the future one and the sparse one
        assert single["snapshots_duplicate"] == 1
        assert single["snapshots_rejected"] == 1
        assert single["records_dropped"] == 1
        assert single["snapshots_held"] == 1  # the one the database refused
        assert single["pilot_sessions_closed"] > 0  # so flights were summarised
        stats = batched.pop("bulk")
        assert stats["transactions"] < TICKS / 2, "snapshots shared transactions"
        assert stats["one_by_one"] >= 4, "the bad files took the one-by-one path"
        assert stats["batches_redone"] == 1, "the refused snapshot's batch, one by one"
        assert batched == single
        _same_database(one, bulk)


def test_bulk_is_the_default_from_the_threshold_on(folder: Path, tmp_path: Path) -> None:
    with throwaway_database(tmp_path, "auto") as url:
        assert "bulk" in _replay(folder, url, "--bulk-threshold", "10")
    with throwaway_database(tmp_path, "few") as url:
        assert "bulk" not in _replay(folder, url, "--bulk-threshold", "100000")


def test_an_interrupted_bulk_replay_resumes_to_the_same_database(
    folder: Path, tmp_path: Path
) -> None:
    with (
        throwaway_database(tmp_path, "one") as one,
        throwaway_database(tmp_path, "resumed") as resumed,
    ):
        _replay(folder, one, "--no-bulk")
        env = {k: v for k, v in os.environ.items() if not k.startswith("VATSIM_")}
        env["VATSIM_DATABASE_URL"] = resumed
        command = [sys.executable, "-m", "vatsim_collector", "replay", str(folder)]
        process = subprocess.Popen(
            [*command, "--bulk", "--batch-size", "8", "--no-progress"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its readers are in its group: killed with it
        )
        try:
            deadline = time.monotonic() + 180
            stored = 0
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    stored = _stored_snapshots(resumed)
                except Exception:  # not migrated yet
                    stored = 0
                if stored >= TICKS // 3:
                    break
                time.sleep(0.1)
            assert process.poll() is None, "the replay ended before it could be interrupted"
            assert stored >= TICKS // 3
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        assert _stored_snapshots(resumed) < TICKS, "killed part-way"
        rerun = _replay(folder, resumed, "--bulk", "--batch-size", "8")
        assert rerun["bulk"]["skipped_stored"] >= TICKS // 3
        _same_database(one, resumed)
