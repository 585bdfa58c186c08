"""What ``replay`` loads on its way: not the web stack, not the brokers, not the simulator, and
the sector set and the airport reference only once a snapshot needs them.

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

from feeds import FEEDS, SMALL
from vatsim_collector.airports.nearest import AirportIndex
from vatsim_collector.airports.reference import AirportReference
from vatsim_collector.airspace.sectors import SectorSet

TINY = FEEDS / "fixture-small-handmade.json"

# Imported by nothing a replay runs: their presence means an eager import crept back in.
WEB_STACK = ("fastapi", "starlette", "uvicorn", "vatsim_collector.api", "vatsim_collector.service")
NOT_FOR_REPLAY = (*WEB_STACK, "vatsim_collector.simulator", "nats")

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


def replay_modules(database_url: str, *files: str, **env: str) -> dict[str, object]:
    """Run ``replay`` in a new interpreter; its modules and whether the airports were read."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VATSIM_")}
    done = subprocess.run(
        [sys.executable, "-c", _REPLAY_IN_PROCESS, "replay", *files, "--no-progress"],
        env={**clean, "VATSIM_DATABASE_URL": database_url, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
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


def test_replay_loads_airports_once_a_snapshot_needs_them_and_still_no_web_stack(
    database_url: str,
) -> None:
    result = replay_modules(database_url, str(SMALL))
    assert _loaded(result["modules"], NOT_FOR_REPLAY) == []
    assert "scipy.spatial" in _loaded(result["modules"], ("scipy.spatial",))
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
