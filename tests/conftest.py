"""Shared fixtures: a real database per test, on SQLite or on a real PostgreSQL server.

Set ``VATSIM_TEST_DATABASE_URL`` to a PostgreSQL server URL (for example
``postgresql+psycopg://postgres@127.0.0.1/postgres``) to run every database test against a
fresh database created on that server; without it, each test gets its own SQLite file.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from cluster_nodes import NodeSet
from feeds import SMALL
from tcpproxy import TcpProxy
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor
from vatsim_collector.store.engine import create_db_engine
from vatsim_collector.store.migrate import upgrade

# Timing is not what property tests check: a loaded CI machine must not turn a slow example
# into a failure.
settings.register_profile("collector", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("collector")

SERVER_ENV = "VATSIM_TEST_DATABASE_URL"


def pytest_report_header() -> str:
    url = os.environ.get(SERVER_ENV)
    return f"database backend: {make_url(url).get_backend_name() if url else 'sqlite'}"


@contextmanager
def throwaway_database(tmp_path: os.PathLike[str], name: str = "test") -> Iterator[str]:
    """A database of its own: a SQLite file ``name``.db in ``tmp_path``, or a new database on
    the test PostgreSQL server (``SERVER_ENV``), dropped afterwards."""
    server = os.environ.get(SERVER_ENV)
    if not server:
        yield f"sqlite:///{tmp_path}/{name}.db"
        return
    db_name = f"vct_{uuid.uuid4().hex[:16]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{db_name}"'))
        yield make_url(server).set(database=db_name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
def database_url(tmp_path: os.PathLike[str]) -> Iterator[str]:
    with throwaway_database(tmp_path) as url:
        yield url


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = create_db_engine(database_url)
    upgrade(eng)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def ingestor(engine: Engine) -> Ingestor:
    """An ingestor on the test's database holding one small real snapshot (the API tests'
    data); a module may define its own."""
    ingestor = Ingestor(engine, IngestConfig())
    ingestor.restore()
    ingestor.ingest(SMALL.read_bytes())
    return ingestor


@pytest.fixture
def proxied_postgresql(database_url: str, engine: Engine) -> Iterator[tuple[str, TcpProxy]]:
    """The test's PostgreSQL database behind a TCP proxy the test can cut and restore, as a
    network outage would; skipped on SQLite."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        pytest.skip("a network outage needs a database server: set VATSIM_TEST_DATABASE_URL")
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    try:
        yield url.set(host="127.0.0.1", port=proxy.port).render_as_string(False), proxy
    finally:
        proxy.close()


@pytest.fixture
def postgresql(engine: Engine) -> Engine:
    """The test's database, for tests of several collectors on one database: PostgreSQL only
    (one SQLite file takes one collector)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("several collectors on one database need PostgreSQL")
    return engine


@pytest.fixture
def nodes() -> Iterator[NodeSet]:
    """Collector processes of the test's own, each stopped by PID when the test ends."""
    found = NodeSet()
    try:
        yield found
    finally:
        found.close()
