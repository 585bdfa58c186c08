"""``vatsim-collector serve`` only serves a database it can read as it is: it never creates or
migrates one, and says what to do when it cannot start. ``/api/status`` names the node."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from api_nodes import serve_command, serve_environment
from hostile_feed import free_port
from vatsim_collector.api import create_app
from vatsim_collector.api.status_cache import LEADERSHIP_MAX_AGE
from vatsim_collector.cluster.node import Node, Role
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor
from vatsim_collector.store.cluster import claim_leadership
from vatsim_collector.store.engine import create_db_engine
from vatsim_collector.store.migrate import (
    SchemaNotCurrent,
    current_revision,
    head_revision,
    require_current_schema,
    upgrade,
)


def _serve(database_url: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    """``serve`` run to its end: it must refuse and exit by itself, well within the timeout."""
    return subprocess.run(
        serve_command(database_url, free_port()),
        env=serve_environment(workdir),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("revision", ["0004", None])
def test_serve_refuses_a_schema_behind_the_code(
    database_url: str, tmp_path: Path, revision: str | None
) -> None:
    engine = create_db_engine(database_url)
    try:
        if revision is None:
            with engine.connect():
                pass  # the database exists (on SQLite: the file), without any schema
        else:
            upgrade(engine, revision)
        done = _serve(database_url, tmp_path)
        assert done.returncode == 2, done.stderr
        assert "`vatsim-collector db upgrade`" in done.stderr
        assert "Traceback" not in done.stderr
        if revision is not None:
            assert f"revision {revision}, behind this version's {head_revision()}" in done.stderr
        # It refused without touching the database.
        assert current_revision(engine) == revision
    finally:
        engine.dispose()


def test_serve_refuses_a_schema_from_a_newer_version(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(
        SchemaNotCurrent,
        match=r"revision 9999, which this version does not know .* upgrade this node",
    ):
        require_current_schema(engine)


def test_the_current_schema_is_accepted(engine: Engine) -> None:
    assert require_current_schema(engine) == head_revision()


def test_serve_does_not_create_a_missing_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "vatsim.db"
    done = _serve(f"sqlite:///{path}", tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"no database file at {path}" in done.stderr
    assert not path.parent.exists()


def test_serve_says_an_unreachable_database_without_its_password(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://reader:s3cret-pw@127.0.0.1:{free_port()}/vatsim"
    done = _serve(url, tmp_path)
    assert done.returncode == 1, done.stderr
    assert "the database cannot be reached (OperationalError)" in done.stderr
    assert "s3cret-pw" not in done.stdout + done.stderr


def test_status_names_the_node_its_role_and_the_leader(ingestor: Ingestor) -> None:
    node = Node("api-7", Role.API)
    status = TestClient(create_app(ingestor, stale_after=60, node=node)).get("/api/status").json()
    assert status["cluster"] == {"node": "api-7", "role": "api", "leader": None, "epoch": 0}
    # The leadership as the database records it, whichever node is asked.
    with ingestor.db.write("test.claim") as conn:
        epoch = claim_leadership(conn, "leader-3", datetime.now(UTC))
    status = TestClient(create_app(ingestor, stale_after=60, node=node)).get("/api/status").json()
    assert status["cluster"] == {
        "node": "api-7",
        "role": "api",
        "leader": "leader-3",
        "epoch": epoch,
    }


def test_an_app_without_a_node_is_a_single_process_leader(ingestor: Ingestor) -> None:
    cluster = TestClient(create_app(ingestor, stale_after=60)).get("/api/status").json()["cluster"]
    assert cluster["role"] == "leader"
    assert cluster["node"].endswith(f"-{os.getpid()}")


def test_status_answers_when_the_leadership_cannot_be_read(
    database_url: str, request: pytest.FixtureRequest
) -> None:
    """The database gone, /api/status still answers, with no leader known once the held
    leadership read is older than its bound (api/status_cache.py)."""
    if make_url(database_url).get_backend_name() == "postgresql":
        url, proxy = request.getfixturevalue("proxied_postgresql")
        engine = create_db_engine(url)
        cut = proxy.cut
    else:
        engine = create_db_engine(database_url)
        path = Path(make_url(database_url).database or "")

        def cut() -> None:
            engine.dispose()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            path.mkdir()  # a folder where the file was: SQLite cannot open it

    try:
        upgrade(engine)
        seconds = [0.0]
        app = create_app(
            Ingestor(engine, IngestConfig()), stale_after=60, leadership_clock=lambda: seconds[0]
        )
        client = TestClient(app)
        assert client.get("/api/status").json()["cluster"]["epoch"] == 0
        cut()
        seconds[0] += LEADERSHIP_MAX_AGE
        answer = client.get("/api/status")
        assert answer.status_code == 200
        cluster = answer.json()["cluster"]
        assert (cluster["leader"], cluster["epoch"]) == (None, None)
    finally:
        engine.dispose()
