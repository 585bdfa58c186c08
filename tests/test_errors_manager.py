"""The error taxonomy, secret scrubbing and the ErrorManager, on real exceptions and databases."""

from __future__ import annotations

import asyncio
import errno
import json
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import msgspec
import pydantic
import pytest
import structlog
from sqlalchemy import Column, Engine, Integer, MetaData, Table, create_engine, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from tcpproxy import TcpProxy
from vatsim_collector.config import SettingsError, load_settings
from vatsim_collector.errors.exceptions import (
    Category,
    Classification,
    CollectorError,
    ConfigurationError,
    DataRejected,
    FeedUnavailable,
    HandlerFailed,
    ResourceExhausted,
    Severity,
    StorageUnavailable,
)
from vatsim_collector.errors.manager import ErrorManager
from vatsim_collector.errors.scrub import scrub_mapping, scrub_text
from vatsim_collector.errors.taxonomy import classify
from vatsim_collector.feed.client import (
    FeedConnectionError,
    FeedDocumentError,
    FeedError,
    FeedHTTPStatusError,
    FeedTimeout,
)
from vatsim_collector.feed.decode import decode_snapshot
from vatsim_collector.pipeline.ingest import DatabaseUnavailable
from vatsim_collector.store import schema as t
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.engine import create_db_engine
from vatsim_collector.store.error_records import ErrorRecordStore
from vatsim_collector.store.migrate import upgrade

PLANTED = "s3cr3t-PLANTED"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


# -- real exceptions -----------------------------------------------------------------------


def caught(action: Callable[[], object]) -> BaseException:
    try:
        action()
    except BaseException as exc:
        return exc
    raise AssertionError("no exception raised")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_error(status: int) -> BaseException:
    transport = httpx2.MockTransport(lambda request: httpx2.Response(status))
    with httpx2.Client(transport=transport) as client:
        return caught(client.get("http://feed.test/data.json").raise_for_status)


def connect_error() -> BaseException:
    with httpx2.Client() as client:
        return caught(lambda: client.get(f"http://127.0.0.1:{closed_port()}/"))


def read_timeout() -> BaseException:
    with socket.create_server(("127.0.0.1", 0)) as silent, httpx2.Client(timeout=0.2) as client:
        port = silent.getsockname()[1]
        return caught(lambda: client.get(f"http://127.0.0.1:{port}/"))


def decoding_error() -> BaseException:
    def garbled(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"Content-Encoding": "gzip"}, content=b"not gzip")

    with httpx2.Client(transport=httpx2.MockTransport(garbled)) as client:
        return caught(lambda: client.get("http://feed.test/"))


def sqlite_operational_error(tmp_path: Path) -> BaseException:
    engine = create_engine(f"sqlite:///{tmp_path}/missing/folder/x.db")
    try:
        return caught(engine.connect)
    finally:
        engine.dispose()


def pg_operational_error() -> BaseException:
    engine = create_engine(
        f"postgresql+psycopg://u:{PLANTED}@127.0.0.1:1/x", connect_args={"connect_timeout": 1}
    )
    try:
        return caught(engine.connect)
    finally:
        engine.dispose()


def integrity_error() -> BaseException:
    engine = create_engine("sqlite://")
    table = Table("t", MetaData(), Column("id", Integer, primary_key=True))
    try:
        with engine.begin() as conn:
            table.create(conn)
            conn.execute(insert(table).values(id=1))
            return caught(lambda: conn.execute(insert(table).values(id=1)))
    finally:
        engine.dispose()


def wait_for_timeout() -> BaseException:
    async def slow() -> None:
        await asyncio.wait_for(asyncio.sleep(1), timeout=0.001)

    return caught(lambda: asyncio.run(slow()))


def chained(outer: BaseException, cause: BaseException) -> BaseException:
    try:
        raise outer from cause
    except BaseException as exc:
        return exc


def C(category: Category, severity: Severity, transient: bool) -> Classification:
    return Classification(category, severity, transient)


NET = C(Category.NETWORK, Severity.MEDIUM, True)
TIMEOUT = C(Category.TIMEOUT, Severity.MEDIUM, True)
DECODE = C(Category.DECODE, Severity.MEDIUM, False)
DB_TRANSIENT = C(Category.DATABASE, Severity.HIGH, True)
DB_PERMANENT = C(Category.DATABASE, Severity.HIGH, False)
HTTP_TRANSIENT = C(Category.HTTP_STATUS, Severity.MEDIUM, True)
HTTP_PERMANENT = C(Category.HTTP_STATUS, Severity.HIGH, False)
UNKNOWN = C(Category.UNKNOWN, Severity.HIGH, False)


def classification_cases(tmp_path: Path) -> list[tuple[str, BaseException, Classification]]:
    return [
        ("httpx ConnectError", connect_error(), NET),
        ("httpx ReadTimeout", read_timeout(), TIMEOUT),
        ("HTTP 503", http_error(503), HTTP_TRANSIENT),
        ("HTTP 429", http_error(429), HTTP_TRANSIENT),
        ("HTTP 404", http_error(404), HTTP_PERMANENT),
        ("HTTP 401", http_error(401), HTTP_PERMANENT),
        ("httpx DecodingError", decoding_error(), DECODE),
        (
            "httpx UnsupportedProtocol",
            caught(lambda: httpx2.Client().get("ftp://feed.test/")),
            C(Category.CONFIGURATION, Severity.HIGH, False),
        ),
        ("asyncio timeout", wait_for_timeout(), TIMEOUT),
        (
            "ConnectionRefusedError",
            caught(lambda: socket.create_connection(("127.0.0.1", closed_port()), timeout=1)),
            NET,
        ),
        (
            "OSError ENOSPC",
            OSError(errno.ENOSPC, "No space left on device"),
            C(Category.RESOURCE, Severity.HIGH, False),
        ),
        (
            "OSError EMFILE",
            OSError(errno.EMFILE, "Too many open files"),
            C(Category.RESOURCE, Severity.HIGH, True),
        ),
        (
            "FileNotFoundError",
            caught(lambda: (tmp_path / "absent").read_bytes()),
            C(Category.RESOURCE, Severity.HIGH, False),
        ),
        ("FeedDecodeError", caught(lambda: decode_snapshot(b"[]")), DECODE),
        ("msgspec ValidationError", caught(lambda: msgspec.json.decode(b'"x"', type=int)), DECODE),
        (
            "pydantic ValidationError",
            caught(lambda: pydantic.TypeAdapter(int).validate_python("x")),
            DECODE,
        ),
        ("json error", caught(lambda: json.loads("{")), DECODE),
        ("SQLite OperationalError", sqlite_operational_error(tmp_path), DB_TRANSIENT),
        ("PostgreSQL OperationalError", pg_operational_error(), DB_TRANSIENT),
        ("IntegrityError", integrity_error(), DB_PERMANENT),
        (
            "DatabaseUnavailable",
            DatabaseUnavailable("database unavailable: OperationalError"),
            DB_TRANSIENT,
        ),
        (
            "SettingsError",
            caught(lambda: load_settings(retention_error_records_days=-1)),
            C(Category.CONFIGURATION, Severity.CRITICAL, False),
        ),
        ("MemoryError", MemoryError(), C(Category.RESOURCE, Severity.CRITICAL, False)),
        ("FeedTimeout", FeedTimeout("feed.test: timed out"), TIMEOUT),
        ("FeedConnectionError", FeedConnectionError("feed.test: refused"), NET),
        ("FeedHTTPStatusError 502", FeedHTTPStatusError("HTTP 502", 502), HTTP_TRANSIENT),
        ("FeedHTTPStatusError 404", FeedHTTPStatusError("HTTP 404", 404), HTTP_PERMANENT),
        ("FeedDocumentError", FeedDocumentError("feed.test: unreadable"), DECODE),
        ("bare FeedError", FeedError("could not fetch"), NET),
        ("FeedError from 503", chained(FeedError("fetch"), http_error(503)), HTTP_TRANSIENT),
        ("FeedUnavailable", FeedUnavailable("down"), NET),
        ("FeedUnavailable 403", FeedUnavailable("no", status_code=403), HTTP_PERMANENT),
        ("DataRejected", DataRejected("bad"), DECODE),
        ("StorageUnavailable", StorageUnavailable("down"), DB_TRANSIENT),
        (
            "ConfigurationError",
            ConfigurationError("bad"),
            C(Category.CONFIGURATION, Severity.CRITICAL, False),
        ),
        ("ResourceExhausted", ResourceExhausted("full"), C(Category.RESOURCE, Severity.HIGH, True)),
        (
            "HandlerFailed from ConnectError",
            chained(HandlerFailed("summaries"), connect_error()),
            C(Category.HANDLER, Severity.MEDIUM, True),
        ),
        (
            "HandlerFailed from ValueError",
            chained(HandlerFailed("summaries"), ValueError("bug")),
            C(Category.HANDLER, Severity.MEDIUM, False),
        ),
        (
            "RuntimeError from ConnectError",
            chained(RuntimeError("wrapped"), connect_error()),
            NET,
        ),
        (
            "CollectorError from OperationalError",
            chained(CollectorError("wrapped"), sqlite_operational_error(tmp_path)),
            DB_TRANSIENT,
        ),
        ("ValueError", ValueError("bug"), UNKNOWN),
        ("KeyError", caught(lambda: dict[str, int]()["x"]), UNKNOWN),
    ]


def test_classifier_mapping_table(tmp_path: Path) -> None:
    wrong = [
        (name, type(exc).__name__, classify(exc), expected)
        for name, exc, expected in classification_cases(tmp_path)
        if classify(exc) != expected
    ]
    assert wrong == []


# Raised in a fresh interpreter that imports the classifier before httpx2 and psycopg: it must
# recognise their exceptions without having imported the libraries itself (a replay on SQLite
# never loads either), as the module docstring's table says.
_LIBRARY_EXCEPTIONS = textwrap.dedent(
    """
    import json, sys
    from vatsim_collector.errors.taxonomy import classify
    loaded = sorted(m for m in ("httpx2", "psycopg") if m in sys.modules)
    import httpx2, psycopg, psycopg.errors
    request = httpx2.Request("GET", "https://feed.test/")
    def status(code):
        response = httpx2.Response(code, request=request)
        return httpx2.HTTPStatusError(str(code), request=request, response=response)
    cases = {
        "ConnectTimeout": httpx2.ConnectTimeout("slow", request=request),
        "ConnectError": httpx2.ConnectError("refused", request=request),
        "HTTPStatusError 503": status(503),
        "HTTPStatusError 404": status(404),
        "DecodingError": httpx2.DecodingError("garbled", request=request),
        "InvalidURL": httpx2.InvalidURL("no"),
        "TooManyRedirects": httpx2.TooManyRedirects("loop", request=request),
        "psycopg OperationalError": psycopg.OperationalError("gone"),
        "psycopg InterfaceError": psycopg.InterfaceError("closed"),
        "psycopg UniqueViolation": psycopg.errors.UniqueViolation("duplicate"),
        "psycopg DataError": psycopg.DataError("bad"),
    }
    print(json.dumps({
        "loaded_by_classifier": loaded,
        "classified": {
            name: [c.category, c.severity, c.transient]
            for name, c in ((name, classify(e)) for name, e in cases.items())
        },
    }))
    """
)


def test_library_exceptions_are_classified_without_the_classifier_importing_them() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _LIBRARY_EXCEPTIONS],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    fresh = json.loads(done.stdout)
    assert fresh["loaded_by_classifier"] == []
    db_transient = ["database", "high", True]
    db_permanent = ["database", "high", False]
    assert fresh["classified"] == {
        "ConnectTimeout": ["timeout", "medium", True],
        "ConnectError": ["network", "medium", True],
        "HTTPStatusError 503": ["http_status", "medium", True],
        "HTTPStatusError 404": ["http_status", "high", False],
        "DecodingError": ["decode", "medium", False],
        "InvalidURL": ["configuration", "high", False],
        "TooManyRedirects": ["http_status", "high", False],
        "psycopg OperationalError": db_transient,
        "psycopg InterfaceError": db_transient,
        "psycopg UniqueViolation": db_permanent,
        "psycopg DataError": db_permanent,
    }


def test_project_exceptions_share_one_base() -> None:
    for cls in (
        FeedUnavailable,
        DataRejected,
        StorageUnavailable,
        HandlerFailed,
        ConfigurationError,
        ResourceExhausted,
    ):
        assert issubclass(cls, CollectorError)
    assert issubclass(DataRejected, ValueError)
    assert HandlerFailed("bus.summaries", "boom").handler == "bus.summaries"
    assert isinstance(caught(lambda: load_settings(retention_error_records_days=-1)), SettingsError)


# -- scrubbing ------------------------------------------------------------------------------

SCRUB_CASES = [
    (
        f"postgresql+psycopg://collector:{PLANTED}@db.example:5432/vatsim",
        "postgresql+psycopg://collector:***@db.example:5432/vatsim",
    ),
    (f"https://user:{PLANTED}@feed.test/x", "https://user:***@feed.test/x"),
    (f"Authorization: Bearer {PLANTED}", "Authorization: Bearer ***"),
    (f"authorization=Basic {PLANTED}", "authorization=Basic ***"),
    (f"X-API-Key: {PLANTED}", "X-API-Key: ***"),
    (f"Cookie: session={PLANTED}; theme=dark", "Cookie: ***"),
    (
        f"host=db port=5432 user=collector password={PLANTED} dbname=vatsim",
        "host=db port=5432 user=collector password=*** dbname=vatsim",
    ),
    (f"password='{PLANTED} with space' host=db", "password='***' host=db"),
    (
        f"GET https://feed.test/data?api_key={PLANTED}&token={PLANTED}&page=2",
        "GET https://feed.test/data?api_key=***&token=***&page=2",
    ),
    (
        f"got {JWT} ok",
        "got *** ok",
    ),
    (f'{{"client_secret": "{PLANTED}", "n": 1}}', '{"client_secret": "***", "n": 1}'),
    (
        'connection to server at "127.0.0.1", port 1 failed: Connection refused',
        'connection to server at "127.0.0.1", port 1 failed: Connection refused',
    ),
    ("http://127.0.0.1:8080/path@v2", "http://127.0.0.1:8080/path@v2"),
]


@pytest.mark.parametrize(("raw", "expected"), SCRUB_CASES)
def test_scrub_text(raw: str, expected: str) -> None:
    once = scrub_text(raw)
    assert once == expected
    assert scrub_text(once) == once


def test_scrub_mapping_nested() -> None:
    context = {
        "url": f"postgresql://u:{PLANTED}@h/db",
        "headers": {
            "Authorization": f"Bearer {PLANTED}",
            "X-Api-Key": PLANTED,
            "Set-Cookie": f"sid={PLANTED}",
            "Accept": "application/json",
        },
        "attempts": [1, {"db_password": PLANTED}, (f"token={PLANTED}", 2.5)],
        "dsn": f"host=h password={PLANTED}",
        "when": T0,
        "ok": True,
        "nothing": None,
        "blob": PLANTED.encode(),
    }
    once = scrub_mapping(context)
    assert PLANTED not in json.dumps(once)
    assert once["headers"]["Accept"] == "application/json"
    assert once["headers"]["Authorization"] == "***"
    assert once["url"] == "postgresql://u:***@h/db"
    assert once["attempts"][0] == 1
    assert once["attempts"][2] == ("token=***", 2.5)
    assert once["when"] == T0.isoformat()
    assert once["ok"] is True
    assert once["nothing"] is None
    assert scrub_mapping(once) == once


# -- the manager ----------------------------------------------------------------------------


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def db(engine: Engine) -> DatabaseService:
    return DatabaseService.for_engine(engine)


def stored_rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(t.error_records))]


def planted_failure() -> BaseException:
    url = f"postgresql+psycopg://collector:{PLANTED}@127.0.0.1:1/vatsim"
    return chained(
        RuntimeError(f"cannot reach {url} (Authorization: Bearer {PLANTED}, password={PLANTED})"),
        pg_operational_error(),
    )


def planted_context() -> dict[str, Any]:
    return {
        "database_url": f"postgresql+psycopg://collector:{PLANTED}@db/vatsim",
        "headers": {"Authorization": f"Bearer {PLANTED}", "X-API-Key": PLANTED},
        "request": f"GET /data?token={PLANTED}",
        "mirror": "https://data.vatsim.net/v3/vatsim-data.json",
    }


def test_planted_secrets_reach_no_record_log_or_analytics(
    engine: Engine, db: DatabaseService
) -> None:
    manager = ErrorManager(ErrorRecordStore(db))
    with structlog.testing.capture_logs() as logs:
        record = manager.record(
            planted_failure(), service="poller", operation="fetch", context=planted_context()
        )
        assert manager.flush() == 1
    assert record.category is Category.DATABASE  # classified by the cause
    rows = stored_rows(engine)
    assert len(rows) == 1
    assert rows[0]["service"] == "poller"
    assert rows[0]["category"] == "database"
    assert json.loads(rows[0]["context"])["mirror"] == record.context["mirror"]
    assert "collector:***@" in rows[0]["message"]
    analytics = manager.analytics(1)
    assert analytics["total"] == 1
    assert [e["message"] for e in analytics["top_errors"]] == [record.message]
    assert len([entry for entry in logs if entry["event"] == "error recorded"]) == 1
    for where, value in (("record", rows), ("log", logs), ("analytics", analytics)):
        assert PLANTED not in json.dumps(value, default=str), where


def test_flush_failure_log_carries_no_url_secret() -> None:
    engine = create_db_engine(f"postgresql+psycopg://collector:{PLANTED}@127.0.0.1:1/x")
    manager = ErrorManager(ErrorRecordStore(DatabaseService.for_engine(engine)))
    try:
        with structlog.testing.capture_logs() as logs:
            manager.record(ValueError(f"dsn=host=x password={PLANTED}"), service="s", operation="o")
            assert manager.flush() == 0
    finally:
        engine.dispose()
    assert manager.queued == 1
    assert any(entry["event"].startswith("error records not persisted") for entry in logs)
    assert PLANTED not in json.dumps(logs, default=str)


def test_window_is_bounded_and_counts_stay_complete() -> None:
    manager = ErrorManager(None, window_size=5)
    for i in range(8):
        manager.record(ValueError(f"bad {i}"), service="api", operation="get")
    recent = manager.recent(10)
    assert [r.message for r in recent] == [f"bad {i}" for i in range(7, 2, -1)]
    assert manager.recent(2)[0].message == "bad 7"
    assert manager.counts()["total"] == 8
    assert manager.queued == 0  # no database: nothing to persist
    assert manager.flush() == 0


def record_mix(manager: ErrorManager, clock: Clock) -> None:
    """7 errors over the last hour plus one three hours ago."""
    plan: list[tuple[int, BaseException, str]] = [
        (180, FeedTimeout("feed.test: timed out"), "poller"),
        (55, FeedTimeout("feed.test: timed out"), "poller"),
        (50, FeedTimeout("feed.test: timed out"), "poller"),
        (41, FeedHTTPStatusError("feed.test: HTTP 404 Not Found", 404), "poller"),
        (30, DatabaseUnavailable("database unavailable: OperationalError"), "ingest"),
        (12, caught(lambda: decode_snapshot(b"[]")), "ingest"),
        (3, chained(HandlerFailed("summaries"), ValueError("bug")), "bus"),
        (0, MemoryError(), "bus"),
    ]
    start = clock.now
    for minutes_ago, exc, service in plan:
        clock.now = start - timedelta(minutes=minutes_ago)
        manager.record(exc, service=service, operation="op")
    clock.now = start


def check_mix(analytics: dict[str, Any]) -> None:
    assert analytics["total"] == 7
    assert analytics["by_category"] == {
        "network": 0,
        "timeout": 2,
        "http_status": 1,
        "decode": 1,
        "database": 1,
        "configuration": 0,
        "resource": 1,
        "handler": 1,
        "unknown": 0,
    }
    assert analytics["by_severity"] == {"low": 0, "medium": 4, "high": 2, "critical": 1}
    assert analytics["by_service"] == {"poller": 3, "ingest": 2, "bus": 2}
    assert analytics["by_type"]["vatsim_collector.feed.client.FeedTimeout"] == 2
    assert analytics["by_type"]["MemoryError"] == 1
    assert (analytics["transient"], analytics["permanent"]) == (3, 4)
    top = analytics["top_errors"][0]
    assert (top["error_type"], top["count"], top["service"]) == (
        "vatsim_collector.feed.client.FeedTimeout",
        2,
        "poller",
    )
    assert top["last_seen"] == (T0 - timedelta(minutes=50)).isoformat()
    series = analytics["series"]
    assert series["bucket_minutes"] == 10
    buckets = series["buckets"]
    assert [b["start"] for b in buckets][:2] == [
        (T0 - timedelta(minutes=60)).isoformat(),
        (T0 - timedelta(minutes=50)).isoformat(),
    ]
    assert [b["count"] for b in buckets] == [1, 2, 0, 1, 1, 1, 1]
    assert sum(b["count"] for b in buckets) == analytics["total"]
    assert buckets[2]["by_category"] == {}
    assert buckets[3]["by_category"] == {"database": 1}


def test_analytics_from_database(engine: Engine, db: DatabaseService) -> None:
    clock = Clock()
    manager = ErrorManager(ErrorRecordStore(db), clock=clock)
    record_mix(manager, clock)
    for ok in (True, True, False):
        manager.record_recovery("retry", ok)
    manager.record_recovery("fallback", True)
    assert manager.flush() == 8
    assert manager.queued == 0
    analytics = manager.analytics(1, bucket_minutes=10)
    assert analytics["source"] == "database"
    check_mix(analytics)
    recovery = analytics["recovery"]
    assert (recovery["attempts"], recovery["successes"], recovery["failures"]) == (4, 3, 1)
    assert recovery["success_rate"] == 0.75
    assert recovery["by_strategy"]["retry"]["success_rate"] == pytest.approx(2 / 3)
    assert manager.analytics(4)["total"] == 8
    json.dumps(analytics)  # JSON-ready as it is


def test_analytics_counts_queued_records_once(engine: Engine, db: DatabaseService) -> None:
    clock = Clock()
    manager = ErrorManager(ErrorRecordStore(db), clock=clock)
    manager.record(ValueError("a"), service="s", operation="o")
    manager.flush()
    manager.record(ValueError("a"), service="s", operation="o")
    analytics = manager.analytics(1)
    assert analytics["total"] == 2
    assert analytics["top_errors"][0]["count"] == 2


def test_analytics_from_memory_without_database() -> None:
    clock = Clock()
    manager = ErrorManager(None, clock=clock)
    record_mix(manager, clock)
    analytics = manager.analytics(1, bucket_minutes=10)
    assert analytics["source"] == "memory"
    check_mix(analytics)
    assert analytics["recovery"]["success_rate"] is None


def test_default_buckets_zero_filled() -> None:
    clock = Clock()
    manager = ErrorManager(None, clock=clock)
    manager.record(ValueError("x"), service="s", operation="o")
    series = manager.analytics(24)["series"]
    assert series["bucket_minutes"] == 60
    assert len(series["buckets"]) == 25  # aligned to the hour: the partial first one too
    assert [b["count"] for b in series["buckets"]] == [0] * 24 + [1]
    with pytest.raises(ValueError, match="hours"):
        manager.analytics(0)


def test_flush_keeps_records_while_database_is_missing(tmp_path: Path) -> None:
    folder = tmp_path / "not-yet"
    engine = create_engine(f"sqlite:///{folder}/errors.db")
    manager = ErrorManager(ErrorRecordStore(DatabaseService.for_engine(engine)), max_queued=3)
    try:
        for i in range(4):
            manager.record(ValueError(f"e{i}"), service="s", operation="o")
        assert manager.flush() == 0
        assert (manager.queued, manager.dropped) == (3, 1)
        assert manager.analytics(1)["source"] == "memory"
        assert manager.flush() == 0
        assert manager.queued == 3
        folder.mkdir()
        upgrade(engine)
        assert manager.flush() == 3
        assert manager.queued == 0
        assert sorted(r["message"] for r in stored_rows(engine)) == ["e1", "e2", "e3"]
        assert manager.flush() == 0
    finally:
        engine.dispose()


@pytest.fixture
def proxied(database_url: str, engine: Engine) -> Iterator[tuple[Engine, TcpProxy]]:
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        pytest.skip("a network outage needs a database server: set VATSIM_TEST_DATABASE_URL")
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    proxied_engine = create_db_engine(
        url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
    )
    try:
        yield proxied_engine, proxy
    finally:
        proxied_engine.dispose()
        proxy.close()


def test_flush_survives_a_database_outage(proxied: tuple[Engine, TcpProxy], engine: Engine) -> None:
    proxied_engine, proxy = proxied
    manager = ErrorManager(ErrorRecordStore(DatabaseService.for_engine(proxied_engine)))
    proxy.cut()
    manager.record(OperationalError("select 1", {}, Exception("gone")), service="s", operation="o")
    assert manager.flush() == 0
    assert manager.queued == 1
    proxy.restore()
    assert manager.flush() == 1
    assert [r["category"] for r in stored_rows(engine)] == ["database"]


async def test_run_flusher_flushes_periodically_and_on_stop(
    engine: Engine, db: DatabaseService
) -> None:
    manager = ErrorManager(ErrorRecordStore(db))
    stop = asyncio.Event()
    flusher = asyncio.create_task(manager.run_flusher(0.05, stop))
    manager.record(ValueError("first"), service="s", operation="o")
    for _ in range(100):
        if manager.persisted:
            break
        await asyncio.sleep(0.02)
    assert manager.persisted == 1
    manager.record(IntegrityError("insert", {}, Exception("dup")), service="s", operation="o")
    stop.set()
    await asyncio.wait_for(flusher, timeout=5)
    assert manager.persisted == 2
    assert len(stored_rows(engine)) == 2


def test_long_messages_are_scrubbed_before_they_are_cut() -> None:
    manager = ErrorManager(None)
    padding = "x" * 1990
    record = manager.record(
        ValueError(f"{padding} postgresql://u:{PLANTED}@db/x " + "y" * 5000),
        service="s",
        operation="o",
    )
    assert len(record.message) == 2000
    assert PLANTED[:4] not in record.message
    assert record.message.endswith("…")
