"""Forgetting a member through the admin API and through the command line."""

from __future__ import annotations

import json
import os

import orjson
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from feeds import parse_time
from forget_world import World, collect, sim_documents
from test_cli import cli
from vatsim_collector.api import routes_privacy
from vatsim_collector.api.app import create_app
from vatsim_collector.cli import app
from vatsim_collector.pipeline.ingest import Outcome
from vatsim_collector.store import schema as t

ADMIN = "admin-key-of-the-privacy-tests"
READ = "read-key-of-the-privacy-tests"
PATH = "/api/members/{cid}"


def _client(world: World) -> TestClient:
    app = create_app(world.ingestor, stale_after=60, api_keys=[("admin", ADMIN), ("read", READ)])
    if not any(getattr(route, "path", None) == PATH for route in app.routes):
        app.include_router(routes_privacy.router)  # until create_app includes it
    return TestClient(app)


def _sessions(engine: Engine, cid: int) -> list[tuple[int, str]]:
    ps = t.pilot_sessions
    with engine.connect() as conn:
        rows = conn.execute(select(ps.c.id, ps.c.first_seen_at).where(ps.c.cid == cid))
        return [(row.id, row.first_seen_at.isoformat()) for row in rows]


def test_the_admin_endpoint_forgets_an_online_member_and_collection_goes_on(
    engine: Engine,
) -> None:
    ticks = 8
    world = collect(engine, store_names=True, ticks=ticks)
    following, following_tx = sim_documents()[ticks]
    still_online = {p["cid"] for p in following["pilots"]}
    cid = next(s.cid for s in world.ingestor.live.pilots if s.cid in still_online)
    stored = _sessions(engine, cid)
    assert stored
    client = _client(world)
    path = PATH.format(cid=cid)

    assert client.delete(path).status_code == 401
    assert client.delete(path, headers={"X-API-Key": READ}).status_code == 403
    for out_of_range in (0, 100_000_000):
        refused = client.delete(PATH.format(cid=out_of_range), headers={"X-API-Key": ADMIN})
        assert refused.status_code == 422
    assert _sessions(engine, cid) == stored

    response = client.delete(path, headers={"Authorization": f"Bearer {ADMIN}"})
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["cid"] == cid
    assert report["found"] is True
    assert report["deleted"]["pilot_sessions"] == len(stored)
    assert report["deleted"]["positions"] >= ticks
    assert report["open_sessions"] >= 1
    assert report["live_sessions_dropped"] >= 1
    assert _sessions(engine, cid) == []
    assert cid not in {s.cid for s in world.ingestor.live.pilots}

    # The collector writes its next snapshot without tripping over the deleted sessions, and
    # the member, still online, is recorded again from then on: as a new session.
    assert world.ingest(orjson.dumps(following), orjson.dumps(following_tx)) is Outcome.INGESTED
    at = parse_time(following["general"]["update_timestamp"]).isoformat()
    again = _sessions(engine, cid)
    assert [first_seen for _, first_seen in again] == [at]
    assert {session_id for session_id, _ in again}.isdisjoint(i for i, _ in stored)
    assert cid in {s.cid for s in world.ingestor.live.pilots}


def _env(database_url: str) -> dict[str, str | None]:
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("VATSIM_")}
    env["VATSIM_DATABASE_URL"] = database_url
    return env


def _a_pilot(engine: Engine) -> int:
    ps = t.pilot_sessions
    with engine.connect() as conn:
        cid: int = conn.execute(select(ps.c.cid).order_by(ps.c.id.desc()).limit(1)).scalar_one()
    return cid


def _count(engine: Engine, cid: int) -> int:
    ps = t.pilot_sessions
    with engine.connect() as conn:
        found: int = conn.execute(
            select(func.count()).select_from(ps).where(ps.c.cid == cid)
        ).scalar_one()
    return found


def test_the_command_asks_before_forgetting_and_prints_the_report(
    engine: Engine, database_url: str
) -> None:
    collect(engine, store_names=True, ticks=3)
    cid = _a_pilot(engine)
    sessions = _count(engine, cid)
    runner = CliRunner()

    declined = runner.invoke(app, ["forget", str(cid)], input="n\n", env=_env(database_url))
    assert declined.exit_code == 1
    assert _count(engine, cid) == sessions

    assert runner.invoke(app, ["forget", "0", "--yes"], env=_env(database_url)).exit_code == 2

    done = runner.invoke(app, ["forget", str(cid), "--yes"], env=_env(database_url))
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["cid"] == cid
    assert report["deleted"]["pilot_sessions"] == sessions
    assert _count(engine, cid) == 0


def test_python_m_vatsim_collector_forget(engine: Engine, database_url: str) -> None:
    collect(engine, store_names=True, ticks=3)
    cid = _a_pilot(engine)
    sessions = _count(engine, cid)
    result = cli("forget", str(cid), "--yes", database_url=database_url)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["deleted"]["pilot_sessions"] == sessions
    assert _count(engine, cid) == 0
