"""``vatsim-collector recompute`` over what ``replay`` stored: the same rows again."""

from __future__ import annotations

import json

from sqlalchemy import Engine, func, select

from feeds import REAL_FEEDS
from test_airspace_exact import rows
from test_cli import cli, summary
from vatsim_collector.store import schema as t


def test_recompute_after_replay_rebuilds_the_same_rows(engine: Engine, database_url: str) -> None:
    files = [str(p) for p in REAL_FEEDS]
    replayed = cli("replay", *files, "--no-progress", database_url=database_url)
    assert replayed.returncode == 0, replayed.stderr
    assert summary(replayed)["snapshots_ingested"] == len(REAL_FEEDS)
    before = rows(engine)
    assert len(before["sector_occupancy"]) > 1000  # the default VATSpy sectors, live
    assert before["flight_summaries"], "the summaries handler wrote nothing during replay"

    done = cli(
        "recompute",
        "--from",
        "2000-01-01T00:00:00",
        "--to",
        "2100-01-01T00:00:00",
        database_url=database_url,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    with engine.connect() as conn:
        sessions = conn.execute(select(func.count()).select_from(t.pilot_sessions)).scalar_one()
    assert report["pilot_sessions"] == sessions
    assert report["occupancies_written"] == len(before["sector_occupancy"])
    assert rows(engine) == before


def test_recompute_refuses_a_reversed_range(database_url: str) -> None:
    done = cli(
        "recompute",
        "--from",
        "2026-01-02T00:00:00",
        "--to",
        "2026-01-01T00:00:00",
        database_url=database_url,
    )
    assert done.returncode == 2
    assert "--to is before --from" in done.stderr
