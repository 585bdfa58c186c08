"""Archive instead of delete: retention writes each expired day of positions and transceivers
to Parquet before it drops it, and `export` writes any window on demand. Read back with DuckDB,
on a real SQLite file or the real PostgreSQL, through the real command in a subprocess."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, text, update

from test_cli import cli
from test_retention import (
    DAY1,
    DAY1_EXPIRED_AT,
    DAY2,
    VOLUME_ONLY,
    Filled,
    fill_two_days,
    on_postgresql,
    partition_exists,
    require_postgresql,
    volume_by_day,
)
from vatsim_collector.config import load_settings
from vatsim_collector.store import schema as t
from vatsim_collector.store.archive import DayArchive
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.partitions import day_bounds, partition_name
from vatsim_collector.store.retention import RetentionJob, RetentionPolicy

# What the database holds, read independently of the archive's own query; times as integer
# milliseconds / microseconds since the epoch so both sides compare exactly.
POSITIONS_SQL = """
SELECT p.snapshot_id, p.pilot_session_id, s.cid, s.callsign, s.logon_time, p.latitude,
       p.longitude, p.altitude, p.groundspeed, p.heading, p.transponder, p.qnh_mb
FROM v_positions p JOIN pilot_sessions s ON s.id = p.pilot_session_id
WHERE p.snapshot_id >= :lo AND p.snapshot_id < :hi
"""
POSITIONS_DUCKDB = """
SELECT epoch_ms(time), pilot_session_id, cid, callsign, epoch_us(logon_time),
       latitude::DOUBLE, longitude::DOUBLE, altitude, groundspeed, heading, transponder, qnh_mb
FROM read_parquet(?)
"""
TRANSCEIVERS_SQL = """
SELECT x.snapshot_id, x.callsign, x.transceiver_id, x.frequency_hz, x.latitude, x.longitude,
       x.height_msl_m, x.height_agl_m, x.pilot_session_id, x.controller_session_id,
       x.atis_session_id, COALESCE(p.cid, c.cid, a.cid),
       COALESCE(p.logon_time, c.logon_time, a.logon_time)
FROM v_transceivers x
LEFT JOIN pilot_sessions p ON p.id = x.pilot_session_id
LEFT JOIN controller_sessions c ON c.id = x.controller_session_id
LEFT JOIN atis_sessions a ON a.id = x.atis_session_id
WHERE x.snapshot_id >= :lo AND x.snapshot_id < :hi
"""
TRANSCEIVERS_DUCKDB = """
SELECT epoch_ms(time), callsign, transceiver_id, frequency_hz, latitude, longitude,
       height_msl_m, height_agl_m, pilot_session_id, controller_session_id, atis_session_id,
       cid, epoch_us(logon_time)
FROM read_parquet(?)
"""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(moment: Any) -> int | None:
    if moment is None:
        return None
    if isinstance(moment, str):  # SQLite hands back COALESCE of times as text
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int((moment - EPOCH).total_seconds() * 1_000_000)


def database_rows(engine: Engine, table: str, lo: int, hi: int) -> list[tuple[Any, ...]]:
    sql, when = (POSITIONS_SQL, 4) if table == "positions" else (TRANSCEIVERS_SQL, 12)
    with engine.connect() as conn:
        rows = conn.execute(text(sql), {"lo": lo, "hi": hi}).all()
    return sorted(
        (tuple(_micros(v) if i == when else v for i, v in enumerate(row)) for row in rows),
        key=repr,
    )


def archived_rows(path: Path | str, table: str) -> list[tuple[Any, ...]]:
    query = POSITIONS_DUCKDB if table == "positions" else TRANSCEIVERS_DUCKDB
    with duckdb.connect() as conn:
        return sorted(conn.execute(query, [str(path)]).fetchall(), key=repr)


def archive_job(
    engine: Engine,
    archive: DayArchive | None,
    filled: Filled,
    *,
    policy: RetentionPolicy = VOLUME_ONLY,
    now: datetime = DAY1_EXPIRED_AT,
) -> RetentionJob:
    return RetentionJob(
        engine,
        policy,
        chunk_rows=1000,
        partitions=filled.partitions,
        clock=lambda: now,
        chunk_pause=0.0,
        archive=archive,
    )


def day1_rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    lo, hi = day_bounds(DAY1)
    return {name: database_rows(engine, name, lo, hi) for name in ("positions", "transceivers")}


def assert_day1_dropped(engine: Engine, filled: Filled) -> None:
    assert volume_by_day(engine) == ({"positions": 0, "transceivers": 0}, filled.day2)
    if on_postgresql(engine):
        assert not partition_exists(engine, partition_name("positions", DAY1))


def assert_day1_kept(engine: Engine, filled: Filled) -> None:
    assert volume_by_day(engine) == (filled.day1, filled.day2)


# ----- retention with an archive -----------------------------------------------------------


def test_a_day_archived_reads_back_with_duckdb_equal_to_the_dropped_rows(
    engine: Engine, tmp_path: Path
) -> None:
    filled = fill_two_days(engine)
    before = day1_rows(engine)
    archive = DayArchive(tmp_path / "archive")

    report = archive_job(engine, archive, filled).run_once()

    assert report.archive_failed == []
    assert sorted((a.table, a.day, a.rows) for a in report.archived) == [
        ("positions", DAY1, filled.day1["positions"]),
        ("transceivers", DAY1, filled.day1["transceivers"]),
    ]
    assert_day1_dropped(engine, filled)
    for table in ("positions", "transceivers"):
        path = archive.path_for(table, DAY1)
        assert path == tmp_path / "archive" / table / f"{table}-2026-01-01.parquet"
        assert archived_rows(path, table) == before[table]
        assert len(before[table]) == filled.day1[table]
        # Nothing of the current day, and no temporary file left beside it.
        assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    assert archive.path_for("positions", DAY1).stat().st_mode & 0o777 == 0o644
    schema = pq.read_schema(archive.path_for("positions", DAY1))
    assert schema.field("latitude").type == pa.decimal32(9, 6)
    assert schema.field("time").type == pa.timestamp("ms", tz="UTC")
    assert "name" not in schema.names
    assert report.summary()["archived_rows"] == sum(filled.day1.values())


def test_coordinates_finer_than_a_micro_degree_are_kept_as_doubles(
    engine: Engine, tmp_path: Path
) -> None:
    if on_postgresql(engine):
        pytest.skip(
            "PostgreSQL stores coordinates as micro-degrees (docs/postgresql.md): nothing finer"
            " reaches the archive there"
        )
    filled = fill_two_days(engine)
    lo, _ = day_bounds(DAY1)
    with engine.begin() as conn:
        first = conn.execute(
            text("SELECT min(snapshot_id) FROM positions WHERE snapshot_id >= :lo"), {"lo": lo}
        ).scalar_one()
        conn.execute(
            update(t.positions)
            .where(t.positions.c.snapshot_id == first)
            .values(latitude=12.345678912345, longitude=-0.1 - 1e-9)
        )
    before = day1_rows(engine)
    archive = DayArchive(tmp_path)
    report = archive_job(engine, archive, filled).run_once()
    assert report.archive_failed == []
    path = archive.path_for("positions", DAY1)
    assert pq.read_schema(path).field("latitude").type == pa.float64()
    assert archived_rows(path, "positions") == before["positions"]
    assert any(row[5] == 12.345678912345 for row in before["positions"])


def test_the_archive_is_on_exactly_when_a_directory_is_set(tmp_path: Path) -> None:
    assert DayArchive.from_settings(load_settings()) is None
    archive = DayArchive.from_settings(
        load_settings(archive_dir=tmp_path, archive_compression_level=3)
    )
    assert archive is not None
    assert (archive.directory, archive.compression_level) == (tmp_path, 3)


def test_without_an_archive_directory_retention_deletes_as_before(
    engine: Engine, tmp_path: Path
) -> None:
    filled = fill_two_days(engine)
    cwd_before = sorted(os.listdir(tmp_path))
    report = archive_job(engine, None, filled).run_once()
    assert_day1_dropped(engine, filled)
    assert report.archived == []
    assert report.archive_failed == []
    assert sorted(os.listdir(tmp_path)) == cwd_before


def test_an_archive_failure_keeps_the_day_reports_it_and_the_next_run_retries(
    engine: Engine, tmp_path: Path
) -> None:
    filled = fill_two_days(engine)
    before = day1_rows(engine)
    blocked = tmp_path / "archive"
    blocked.write_text("a file where the archive directory should be")

    report = archive_job(engine, DayArchive(blocked), filled).run_once()

    assert_day1_kept(engine, filled)
    assert report.archived == []
    assert len(report.archive_failed) == 2
    assert all("2026-01-01" in failure for failure in report.archive_failed)
    assert report.summary()["archive_failed"] == report.archive_failed
    assert report.partitions_dropped == []
    assert sum(report.deleted.values()) == 0

    blocked.unlink()
    again = archive_job(engine, DayArchive(blocked), filled).run_once()
    assert again.archive_failed == []
    assert_day1_dropped(engine, filled)
    assert (
        archived_rows(DayArchive(blocked).path_for("positions", DAY1), "positions")
        == (before["positions"])
    )


def test_a_complete_file_is_not_rewritten_and_nothing_is_duplicated(
    engine: Engine, tmp_path: Path
) -> None:
    filled = fill_two_days(engine)
    before = day1_rows(engine)
    archive = DayArchive(tmp_path)
    db = DatabaseService.of(engine)
    # Archived, and then not dropped (as when the process stops between the two).
    first = archive.archive_day(db, "positions", DAY1)
    assert first.written
    path = archive.path_for("positions", DAY1)
    stat = path.stat()

    report = archive_job(engine, archive, filled).run_once()
    by_table = {a.table: a for a in report.archived}
    assert not by_table["positions"].written
    assert by_table["transceivers"].written
    assert path.stat().st_ino == stat.st_ino
    assert path.stat().st_mtime_ns == stat.st_mtime_ns
    assert_day1_dropped(engine, filled)

    again = archive_job(engine, archive, filled).run_once()
    assert again.archived == []
    assert again.archive_failed == []
    assert archived_rows(path, "positions") == before["positions"]
    assert path.stat().st_mtime_ns == stat.st_mtime_ns


def test_a_file_missing_rows_the_database_has_is_rewritten(engine: Engine, tmp_path: Path) -> None:
    filled = fill_two_days(engine)
    before = day1_rows(engine)
    archive = DayArchive(tmp_path)
    path = archive.path_for("positions", DAY1)
    path.parent.mkdir(parents=True)
    full = pq.read_table(_export_day1(engine, tmp_path / "full.parquet"))
    pq.write_table(full.slice(0, 10), path)

    report = archive_job(engine, archive, filled).run_once()

    assert report.archive_failed == []
    assert {a.table: a.written for a in report.archived}["positions"]
    assert archived_rows(path, "positions") == before["positions"]
    assert_day1_dropped(engine, filled)


def test_a_file_that_disagrees_with_the_database_keeps_the_day(
    engine: Engine, tmp_path: Path
) -> None:
    filled = fill_two_days(engine)
    archive = DayArchive(tmp_path)
    path = archive.path_for("positions", DAY1)
    path.parent.mkdir(parents=True)
    full = pq.read_table(_export_day1(engine, tmp_path / "full.parquet"))
    # A row the database does not have, and most of the database's missing.
    stranger = full.slice(0, 1).set_column(
        0, "pilot_session_id", pa.array([999_999_999], pa.int64())
    )
    pq.write_table(pa.concat_tables([full.slice(0, 10), stranger]), path)
    content = path.read_bytes()

    report = archive_job(engine, archive, filled).run_once()

    assert [f.split(":")[0] for f in report.archive_failed] == ["positions 2026-01-01"]
    assert path.read_bytes() == content
    assert volume_by_day(engine)[0]["positions"] == filled.day1["positions"]
    assert volume_by_day(engine)[0]["transceivers"] == 0


def test_a_partly_expired_day_waits_until_all_of_it_has_expired(
    engine: Engine, tmp_path: Path
) -> None:
    filled = fill_two_days(engine)
    # Day 1 is expired up to 23:59 only: without an archive SQLite would trim it; with one the
    # whole day waits, as a partition does.
    now = datetime(2026, 1, 2, 23, 59, tzinfo=UTC)
    report = archive_job(engine, DayArchive(tmp_path), filled, now=now).run_once()
    assert report.archived == []
    assert_day1_kept(engine, filled)
    assert list(tmp_path.rglob("*.parquet")) == []


def test_partition_is_archived_before_it_is_dropped_on_postgresql(
    engine: Engine, tmp_path: Path
) -> None:
    require_postgresql(engine)
    filled = fill_two_days(engine)
    report = archive_job(engine, DayArchive(tmp_path), filled).run_once()
    assert sorted(report.partitions_dropped) == [
        partition_name("positions", DAY1),
        partition_name("transceivers", DAY1),
    ]
    assert partition_exists(engine, partition_name("positions", DAY2))
    assert report.deleted == dict.fromkeys(report.deleted, 0)


# ----- export ------------------------------------------------------------------------------


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _export_day1(engine: Engine, output: Path) -> Path:
    from vatsim_collector.store.archive import write_window

    lo, hi = day_bounds(DAY1)
    write_window(DatabaseService.of(engine), "positions", lo, hi, output)
    return output


def test_export_writes_parquet_and_csv_through_the_command(engine: Engine, tmp_path: Path) -> None:
    fill_two_days(engine)
    window = ("--from", "2026-01-01T23:59:00Z", "--to", "2026-01-02T00:01:00")
    lo = t.snapshot_id_for(datetime(2026, 1, 1, 23, 59, tzinfo=UTC))
    hi = t.snapshot_id_for(datetime(2026, 1, 2, 0, 1, tzinfo=UTC))
    expected = database_rows(engine, "positions", lo, hi)
    assert expected

    out = tmp_path / "window.parquet"
    result = cli(
        "export", *window, "--table", "positions", "--output", str(out),
        database_url=_url(engine), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["rows"] == len(expected)
    assert report["format"] == "parquet"
    assert archived_rows(out, "positions") == expected

    result = cli(
        "export", *window, "--table", "transceivers", "--format", "csv",
        database_url=_url(engine), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    csv_path = tmp_path / json.loads(result.stdout)["path"]
    assert csv_path.name == "transceivers-20260101T235900Z-20260102T000100Z.csv"
    with duckdb.connect() as conn:
        rows = conn.execute(
            "SELECT count(*), count(DISTINCT callsign) FROM read_csv(?)", [str(csv_path)]
        ).fetchone()
    exported = database_rows(engine, "transceivers", lo, hi)
    assert rows == (len(exported), len({r[1] for r in exported}))
    header = csv_path.read_text().splitlines()[0]
    assert header.startswith('"callsign","transceiver_id","cid","logon_time"')
    # Database untouched.
    assert database_rows(engine, "positions", lo, hi) == expected


def test_export_refuses_a_bad_window_or_table_and_writes_nothing(
    engine: Engine, tmp_path: Path
) -> None:
    url = _url(engine)
    cases = [
        ("--from", "2026-01-02", "--to", "2026-01-01", "--table", "positions"),
        ("--from", "yesterday", "--to", "2026-01-01", "--table", "positions"),
        ("--from", "2026-01-01", "--to", "2026-01-02", "--table", "flights"),
        ("--from", "2026-01-01", "--to", "2026-01-02", "--table", "positions", "--format", "xls"),
        ("--from", "2026-01-01", "--to", "2026-01-02", "--table", "positions",
         "--output", str(tmp_path / "missing" / "x.parquet")),
    ]  # fmt: skip
    work = tmp_path / "work"
    work.mkdir()
    for args in cases:
        result = cli("export", *args, database_url=url, cwd=work)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert result.stdout == ""
        assert result.stderr.strip()
    assert list(work.iterdir()) == []
    assert not (tmp_path / "missing").exists()


# ----- the documented DuckDB examples (docs/analysts.md) -----------------------------------

DOCS = Path(__file__).resolve().parents[1] / "docs" / "analysts.md"


def _doc_block(marker: str, language: str) -> str:
    pattern = rf"<!-- {re.escape(marker)} -->\s*```{language}\n(.*?)```"
    [block] = re.findall(pattern, DOCS.read_text(encoding="utf-8"), flags=re.DOTALL)
    return str(block)


def test_the_documented_archive_queries_run_and_give_the_whole_track(
    engine: Engine, tmp_path: Path
) -> None:
    filled = fill_two_days(engine)
    lo, hi = day_bounds(DAY1)[0], day_bounds(DAY2)[1]
    everything = database_rows(engine, "positions", lo, hi)
    callsign = everything[0][3]
    track = sorted((r[0], r[5], r[6], r[7], r[8]) for r in everything if r[3] == callsign)
    archive = DayArchive(tmp_path / "archive")
    report = archive_job(engine, archive, filled).run_once()
    assert report.archive_failed == []
    glob = str(tmp_path / "archive" / "positions" / "*.parquet")
    in_day1 = [row for row in track if row[0] < day_bounds(DAY2)[0]]
    assert 0 < len(in_day1) < len(track)  # the track spans the archive and the database

    query = (
        _doc_block("archive-query", "sql")
        .replace("archive/positions/*.parquet", glob)
        .replace("BAW123", callsign)
        .replace("2025-06-01", "2026-01-01")
        .replace("2025-06-02", "2026-01-02")
    )
    with duckdb.connect() as conn:
        rows = conn.execute(query).fetchall()
    assert [(row[1], row[2], row[3], row[4]) for row in rows] == [
        (Decimal(str(r[1])), Decimal(str(r[2])), r[3], r[4]) for r in in_day1
    ]

    script = (
        _doc_block("archive-with-live", "python")
        .replace('"sqlite:///data/vatsim.db"', repr(_url(engine)))
        .replace('"archive/positions/*.parquet"', repr(glob))
        .replace('"BAW123"', repr(callsign))
    )
    namespace: dict[str, Any] = {}
    exec(compile(script, str(DOCS), "exec"), namespace)
    assert namespace["track"] == track


# ----- forgetting a member reaches the archive ---------------------------------------------


def archived_day_and_a_member(
    engine: Engine, tmp_path: Path
) -> tuple[dict[str, list[tuple[Any, ...]]], DayArchive, int]:
    """Day 1 archived (its rows as they were), and the CID of a member flying in it."""
    filled = fill_two_days(engine)
    before = day1_rows(engine)
    archive = DayArchive(tmp_path / "archive")
    assert archive_job(engine, archive, filled).run_once().archive_failed == []
    return before, archive, next(row[2] for row in before["positions"])


def test_forget_removes_the_member_from_the_archive_files_and_nothing_else(
    engine: Engine, tmp_path: Path
) -> None:
    before, archive, cid = archived_day_and_a_member(engine, tmp_path)
    theirs = {
        "positions": [r for r in before["positions"] if r[2] == cid],
        "transceivers": [r for r in before["transceivers"] if r[11] == cid],
    }
    assert theirs["positions"]
    assert theirs["transceivers"]
    untouched = tmp_path / "archive" / "positions" / "positions-2025-12-31.parquet"
    pq.write_table(pa.table({"cid": pa.array([cid + 1], pa.int32())}), untouched)
    untouched_stamp = untouched.stat().st_mtime_ns

    env_dir = {"VATSIM_ARCHIVE_DIR": str(tmp_path / "archive")}
    done = cli("forget", str(cid), "--yes", database_url=_url(engine), cwd=tmp_path, env=env_dir)

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["archive"] == {
        "rows_removed": {name: len(rows) for name, rows in theirs.items()},
        "files_rewritten": 2,
    }
    for table in ("positions", "transceivers"):
        path = archive.path_for(table, DAY1)
        expected = [r for r in before[table] if r not in theirs[table]]
        assert archived_rows(path, table) == expected
        assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(".")) == []
    assert pq.read_schema(archive.path_for("positions", DAY1)).field(
        "latitude"
    ).type == pa.decimal32(9, 6)
    # A file without the member is not rewritten.
    assert untouched.stat().st_mtime_ns == untouched_stamp
    # Again: nothing left to remove.
    again = cli("forget", str(cid), "--yes", database_url=_url(engine), cwd=tmp_path, env=env_dir)
    assert json.loads(again.stdout)["archive"]["files_rewritten"] == 0


def test_the_admin_endpoint_forgets_the_member_in_the_archive_too(
    engine: Engine, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from vatsim_collector.api.app import create_app
    from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor

    before, archive, cid = archived_day_and_a_member(engine, tmp_path)
    ingestor = Ingestor(engine, IngestConfig(sanity_min_pilots=1))
    ingestor.restore()
    admin = "k" * 32
    app = create_app(ingestor, stale_after=60, api_keys=[("admin", admin)], archive=archive)

    with TestClient(app) as client:
        answer = client.delete(f"/api/members/{cid}", headers={"X-API-Key": admin})

    assert answer.status_code == 200, answer.text
    removed = answer.json()["archive"]["rows_removed"]
    assert removed["positions"] == sum(1 for r in before["positions"] if r[2] == cid) > 0
    assert archived_rows(archive.path_for("positions", DAY1), "positions") == [
        r for r in before["positions"] if r[2] != cid
    ]
