"""A collector killed in the middle of writing a snapshot leaves a consistent database.

The write of one snapshot is held open on purpose by a database trigger (a long computation
on SQLite, ``pg_sleep`` on PostgreSQL), the replaying process is SIGKILLed while it waits,
and a second replay must then finish the job with a result identical to an undisturbed run.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, func, select, text

from test_sessions import row_counts
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor
from vatsim_collector.pipeline.replay import ReplayReport, collect_files, order_files, replay
from vatsim_collector.simulator.server import SimulatedNetwork
from vatsim_collector.store import schema as t
from vatsim_collector.store.engine import create_db_engine, sqlite_path
from vatsim_collector.store.migrate import upgrade
from vatsim_collector.store.schema import snapshot_id_for

SNAPSHOTS = 7
HELD_SNAPSHOT = 4


def write_recording(folder: Path) -> int:
    """Write the recording; return the snapshot id of the snapshot whose write will be held."""
    network = SimulatedNetwork(seed=3, start=datetime(2026, 1, 1, 8, 0, tzinfo=UTC))
    held = 0
    for i in range(SNAPSHOTS):
        if i == HELD_SNAPSHOT - 1:
            held = snapshot_id_for(network.now)
        (folder / f"vatsim-data-{i:03d}.json").write_bytes(orjson.dumps(network.data_document()))
        (folder / f"transceivers-data-{i:03d}.json").write_bytes(
            orjson.dumps(network.transceivers_document())
        )
        network.tick()
    return held


def hold_write(engine: Engine, held_id: int) -> None:
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text("CREATE TABLE hold_marker (x INTEGER)"))
            conn.execute(
                text(f"""
                CREATE TRIGGER hold_write BEFORE INSERT ON transceivers
                WHEN NEW.snapshot_id = {held_id}
                     AND (SELECT count(*) FROM hold_marker) = 0
                BEGIN
                    INSERT INTO hold_marker VALUES (1);
                    SELECT count(*) FROM (
                        WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n
                                                WHERE x < 2000000000)
                        SELECT x FROM n);
                END""")
            )
        else:
            # Let the server notice a vanished client while it sleeps, as production would.
            conn.execute(
                text(
                    "DO $$ BEGIN EXECUTE format("
                    "'ALTER DATABASE %I SET client_connection_check_interval = ''200ms''',"
                    " current_database()); END $$"
                )
            )
            conn.execute(
                text(f"""
                CREATE FUNCTION hold_write() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF NEW.snapshot_id = {held_id} THEN PERFORM pg_sleep(600); END IF;
                    RETURN NEW;
                END $$""")
            )
            conn.execute(
                text(
                    "CREATE TRIGGER hold_write BEFORE INSERT ON transceivers"
                    " FOR EACH ROW EXECUTE FUNCTION hold_write()"
                )
            )


def release_write(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "DROP TRIGGER hold_write"
                + (" ON transceivers" if engine.dialect.name != "sqlite" else "")
            )
        )
        if engine.dialect.name == "sqlite":
            conn.execute(text("DROP TABLE hold_marker"))
        else:
            conn.execute(text("DROP FUNCTION hold_write()"))


def write_in_progress(engine: Engine, database_url: str) -> bool:
    if engine.dialect.name == "sqlite":
        path = sqlite_path(database_url)
        assert path is not None
        probe = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            return "locked" in str(exc)
        else:
            probe.execute("ROLLBACK")
            return False
        finally:
            probe.close()
    with engine.connect() as conn:
        sleeping = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event = 'PgSleep'"
            )
        ).scalar_one()
    return bool(sleeping)


def run_replay(folder: Path, database_url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "VATSIM_DATABASE_URL": database_url}
    return subprocess.Popen(
        [sys.executable, "-m", "vatsim_collector", "replay", str(folder), "--no-progress"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def sessions(engine: Engine) -> set[tuple[Any, ...]]:
    ps = t.pilot_sessions
    with engine.connect() as conn:
        return set(conn.execute(select(ps.c.cid, ps.c.callsign, ps.c.logon_time, ps.c.ended_at)))


@pytest.mark.slow
def test_a_kill_during_a_write_leaves_the_database_consistent(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    recording = tmp_path / "recording"
    recording.mkdir()
    hold_write(engine, write_recording(recording))

    proc = run_replay(recording, database_url)
    deadline = time.monotonic() + 120
    try:
        while not (
            row_counts(engine)["snapshots"] == HELD_SNAPSHOT - 1
            and write_in_progress(engine, database_url)
        ):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the held write was never reached"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    if engine.dialect.name == "sqlite":
        path = sqlite_path(database_url)
        with sqlite3.connect(path) as check:
            assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    else:
        # The server ends the dead client's transaction (and its locks) on its own.
        deadline = time.monotonic() + 30
        while write_in_progress(engine, database_url):
            assert time.monotonic() < deadline, "server kept the dead client's transaction"
            time.sleep(0.1)

    counts = row_counts(engine)
    assert counts["snapshots"] == HELD_SNAPSHOT - 1
    with engine.connect() as conn:
        stored_ids = set(conn.execute(select(t.snapshots.c.id)).scalars())
        for table in (t.positions, t.transceivers):
            referenced = set(conn.execute(select(table.c.snapshot_id).distinct()).scalars())
            assert referenced <= stored_ids, f"{table.name} holds rows of an unstored snapshot"
        orphans = conn.execute(
            select(func.count())
            .select_from(t.pilot_sessions)
            .where(~t.pilot_sessions.c.id.in_(select(t.positions.c.pilot_session_id)))
        ).scalar_one()
    assert orphans == 0, "a session of the killed snapshot was left behind"

    release_write(engine)
    second = run_replay(recording, database_url)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err.decode()
    summary = json.loads(out.decode().strip().splitlines()[-1])
    assert summary["snapshots_duplicate"] == HELD_SNAPSHOT - 1
    assert summary["snapshots_ingested"] == SNAPSHOTS - (HELD_SNAPSHOT - 1)

    clean = create_db_engine(f"sqlite:///{tmp_path}/clean.db")
    upgrade(clean)
    reference = Ingestor(clean, IngestConfig())
    reference.restore()
    replay(reference, order_files(collect_files([recording]), ReplayReport()), ReplayReport())
    assert row_counts(engine) == row_counts(clean)
    assert sessions(engine) == sessions(clean)
    clean.dispose()
