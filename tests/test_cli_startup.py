"""What ``replay`` loads on its way: not the web stack, not the brokers, not the simulator, not
the HTTP client, nor the PostgreSQL driver on SQLite; Alembic only when a migration must run; and
the sector set, the airport reference, numpy and shapely only once a snapshot needs them.

The import graph is asserted, not the time it takes (the figures are in bench/startup_bench.py):
each case runs the command in a fresh interpreter and reports that interpreter's modules.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from alembic import command
from sqlalchemy import text

from feeds import FEEDS, SMALL
from vatsim_collector.airports.nearest import AirportIndex
from vatsim_collector.airports.reference import AirportReference
from vatsim_collector.airspace.sectors import SectorSet
from vatsim_collector.store.engine import create_db_engine
from vatsim_collector.store.migrate import alembic_config, current_revision, head_revision

TINY = FEEDS / "fixture-small-handmade.json"

# Imported by nothing a replay runs: their presence means an eager import crept back in.
WEB_STACK = ("fastapi", "starlette", "uvicorn", "vatsim_collector.api", "vatsim_collector.service")
NOT_FOR_REPLAY = (*WEB_STACK, "vatsim_collector.simulator", "nats")
# Not for a replay of a file with no pilot to place, into a database whose schema is current;
# the classifier recognises the HTTP client's exceptions without importing it.
NOT_FOR_A_QUIET_REPLAY = ("alembic", "httpx2", "numpy", "shapely", "scipy")

_REPLAY_IN_PROCESS = textwrap.dedent(
    """
    import json, sys
    from vatsim_collector.cli import app
    from vatsim_collector.airports import reference

    try:
        app(sys.argv[1:], standalone_mode=False)
    except SystemExit:
        pass
    print(json.dumps({
        "modules": sorted(sys.modules),
        "airports_loaded": reference._packaged.cache_info().currsize,
    }))
    """
)


def run_replay(database_url: str, *files: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``replay`` in a new interpreter, which prints its modules last."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VATSIM_")}
    return subprocess.run(
        [sys.executable, "-c", _REPLAY_IN_PROCESS, "replay", *files, "--no-progress"],
        env={**clean, "VATSIM_DATABASE_URL": database_url, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def replay_modules(database_url: str, *files: str, **env: str) -> dict[str, object]:
    """Run ``replay`` in a new interpreter; its modules and whether the airports were read."""
    done = run_replay(database_url, *files, **env)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _loaded(modules: object, prefixes: tuple[str, ...]) -> list[str]:
    assert isinstance(modules, list)
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes)]


def test_replay_imports_no_web_stack_and_loads_no_airports_it_does_not_use(
    database_url: str,
) -> None:
    # Two pilots: quarantined by the sanity gate, so nothing is placed or classified.
    result = replay_modules(database_url, str(TINY))
    assert _loaded(result["modules"], NOT_FOR_REPLAY) == []
    assert _loaded(result["modules"], ("scipy.spatial",)) == []
    assert result["airports_loaded"] == 0


def test_replay_into_a_current_database_loads_neither_alembic_nor_numpy_nor_unused_drivers(
    database_url: str,
) -> None:
    first = replay_modules(database_url, str(TINY))  # a new database: every migration runs
    assert "alembic" in _loaded(first["modules"], ("alembic",))
    again = replay_modules(database_url, str(TINY))
    assert _loaded(again["modules"], (*NOT_FOR_REPLAY, *NOT_FOR_A_QUIET_REPLAY)) == []
    # The driver is loaded by SQLAlchemy for a PostgreSQL URL, and only then.
    on_postgresql = database_url.startswith("postgresql")
    assert bool(_loaded(again["modules"], ("psycopg",))) == on_postgresql
    engine = create_db_engine(database_url)
    try:
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_replay_still_migrates_a_database_behind_and_refuses_one_it_does_not_know(
    database_url: str,
) -> None:
    replay_modules(database_url, str(TINY))
    engine = create_db_engine(database_url)
    try:
        with engine.begin() as conn:  # a database left behind by the previous version
            config = alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, "0006")
        assert current_revision(engine) == "0006"
        behind = replay_modules(database_url, str(TINY))
        assert "alembic" in _loaded(behind["modules"], ("alembic",))
        assert current_revision(engine) == head_revision()
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        refused = run_replay(database_url, str(TINY))
        assert refused.returncode != 0
        assert "Can't locate revision identified by '9999'" in refused.stderr
        assert current_revision(engine) == "9999"
    finally:
        engine.dispose()


def test_replay_loads_airports_once_a_snapshot_needs_them_and_still_no_web_stack(
    database_url: str,
) -> None:
    result = replay_modules(database_url, str(SMALL))
    assert _loaded(result["modules"], NOT_FOR_REPLAY) == []
    assert "scipy.spatial" in _loaded(result["modules"], ("scipy.spatial",))
    assert {"numpy", "shapely"} <= set(_loaded(result["modules"], ("numpy", "shapely")))
    assert result["airports_loaded"] == 1


def test_a_deferred_sector_set_places_points_as_the_loaded_one_does() -> None:
    loaded = SectorSet.default()
    deferred = SectorSet.deferred(SectorSet.default)
    rng = np.random.default_rng(14)
    lons, lats = rng.uniform(-180, 180, 500), rng.uniform(-80, 80, 500)
    alts = rng.uniform(0, 45_000, 500)
    assert deferred.assign(lons, lats, alts).tolist() == loaded.assign(lons, lats, alts).tolist()
    assert deferred.names() == loaded.names()
    assert [s.name for s in deferred.sectors] == [s.name for s in loaded.sectors]


def test_a_deferred_sector_set_reports_a_missing_attribute_as_missing() -> None:
    deferred = SectorSet.deferred(SectorSet.default)
    with pytest.raises(AttributeError):
        _ = deferred.no_such_attribute  # type: ignore[attr-defined]


def test_a_deferred_airport_index_finds_what_the_built_one_finds() -> None:
    built = AirportIndex(AirportReference.packaged())
    deferred = AirportIndex.deferred(AirportReference.packaged)
    rng = np.random.default_rng(14)
    lats, lons = rng.uniform(-60, 70, 2_000), rng.uniform(-180, 180, 2_000)
    a = built.nearest(lats, lons, radius_nm=50.0)
    b = deferred.nearest(lats, lons, radius_nm=50.0)
    assert a.index.tolist() == b.index.tolist()
    assert np.array_equal(a.distance_nm, b.distance_nm, equal_nan=True)
    assert (a.index >= 0).sum() > 0
    assert deferred.reference is built.reference
