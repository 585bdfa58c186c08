"""A hostile feed host cannot stall or swamp the client: the fetch deadline and the size bound.

Every test talks to a real HTTP server on 127.0.0.1 (``FeedHost``), written with raw asyncio
streams so it can misbehave in ways a framework would not allow: drip a body one byte at a
time, declare a length it never sends, serve a gzip bomb.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select

from vatsim_collector.config import Settings
from vatsim_collector.errors.exceptions import Category
from vatsim_collector.errors.manager import ErrorManager
from vatsim_collector.errors.registry import BreakerRegistry
from vatsim_collector.errors.retry import RetryPolicy
from vatsim_collector.errors.taxonomy import classify
from vatsim_collector.feed.body import (
    BadCompression,
    BoundedBody,
    DocumentTooLarge,
    UnsupportedEncoding,
    decompress_bounded,
    read_document_file,
)
from vatsim_collector.feed.client import (
    FeedClient,
    FeedDeadlineExceeded,
    FeedDocumentError,
    FeedDocumentTooLarge,
    FeedTimeout,
)
from vatsim_collector.feed.schedule import FixedRateSchedule
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor
from vatsim_collector.pipeline.poller import Poller
from vatsim_collector.simulator.faults import gzip_bomb_body
from vatsim_collector.store import schema as t
from vatsim_collector.store.error_records import ErrorRecordStore

MIB = 1024 * 1024
STAMP = "2024-05-01T18:00:00Z"
DATA = orjson.dumps({"general": {"version": 3, "update_timestamp": STAMP}, "pilots": []})
TRANSCEIVERS = b"[]"
# Generous bounds that only fail when something waits for a whole dripped body.
DRIP_DEADLINE = 2.0
GENEROUS = 10 * DRIP_DEADLINE

Route = Callable[[asyncio.StreamWriter], Awaitable[None]]


def _head(status: str, length: int | None, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status}", "Connection: close"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def static(body: bytes, headers: dict[str, str] | None = None) -> Route:
    async def route(writer: asyncio.StreamWriter) -> None:
        writer.write(_head("200 OK", len(body), headers))
        writer.write(body)
        await writer.drain()

    return route


def drip(declared: int = 1_000_000, every: float = 1.0, most: int = 120) -> Route:
    """Declare ``declared`` bytes, then send one byte per ``every`` seconds (``most`` at most)."""

    async def route(writer: asyncio.StreamWriter) -> None:
        writer.write(_head("200 OK", declared))
        await writer.drain()
        for _ in range(most):
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(every)

    return route


def declare_only(declared: int, hold: float = 30.0) -> Route:
    """Declare ``declared`` bytes and send none of them (for at most ``hold`` seconds)."""

    async def route(writer: asyncio.StreamWriter) -> None:
        writer.write(_head("200 OK", declared))
        await writer.drain()
        await asyncio.sleep(hold)

    return route


class FeedHost:
    """A one-request-per-connection HTTP/1.1 server on a free 127.0.0.1 port."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[str] = []
        self._handlers: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self.base = ""

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def serve_feed(self, data: Route, transceivers: Route | None = None) -> None:
        status = {
            "data": {
                "v3": [self.url("/data.json")],
                "transceivers": [self.url("/transceivers.json")],
            }
        }
        self.routes["/status.json"] = static(orjson.dumps(status))
        self.routes["/data.json"] = data
        self.routes["/transceivers.json"] = transceivers or static(TRANSCEIVERS)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            path = head.split(b" ", 2)[1].decode()
            self.requests.append(path)
            route = self.routes.get(path)
            if route is None:
                writer.write(_head("404 Not Found", 0))
                await writer.drain()
            else:
                await route(writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away: that is what a deadline does
        except TimeoutError:
            pass
        finally:
            writer.close()
            self._handlers.discard(task)


@asynccontextmanager
async def feed_host() -> AsyncIterator[FeedHost]:
    host = FeedHost()
    await host.start()
    try:
        yield host
    finally:
        await host.stop()


def _settings(host: FeedHost, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "status_url": host.url("/status.json"),
        "data_fallback_url": host.url("/fallback-data.json"),
        "transceivers_fallback_url": host.url("/fallback-transceivers.json"),
        "poll_interval": 1.0,
        "http_timeout": 5.0,  # longer than a drip step: only the overall deadline can end it
        "fetch_deadline": DRIP_DEADLINE,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture(scope="module")
def one_gb_bomb() -> bytes:
    """About 1 MB of gzip that inflates to 1 GiB of a JSON document's whitespace."""
    return gzip_bomb_body(1024 * MIB)


# --- the overall fetch deadline ---------------------------------------------------------


async def test_a_dripping_data_host_ends_the_fetch_at_its_deadline() -> None:
    async with feed_host() as host:
        host.serve_feed(drip())
        loop = asyncio.get_running_loop()
        async with FeedClient(_settings(host)) as client:
            started = loop.time()
            with pytest.raises(FeedTimeout, match="deadline") as raised:
                await client.fetch()
            elapsed = loop.time() - started
        assert isinstance(raised.value, FeedDeadlineExceeded)
        assert classify(raised.value).category is Category.TIMEOUT
        assert client.errors == 1
        assert host.requests.count("/data.json") == 1
        # Not waiting for a million dripped bytes: bounded by far less than the body takes.
        assert elapsed < GENEROUS


async def test_a_dripping_transceivers_host_costs_the_transceivers_not_the_data() -> None:
    async with feed_host() as host:
        host.serve_feed(static(DATA), transceivers=drip())
        async with FeedClient(_settings(host)) as client:
            fetched = await client.fetch()
        assert fetched is not None
        assert fetched.data == DATA
        assert fetched.transceivers is None
        assert isinstance(fetched.transceivers_exception, FeedDeadlineExceeded)
        assert "deadline" in (fetched.transceivers_error or "")
        assert (client.errors, client.transceivers_errors) == (0, 1)


async def test_a_dripping_status_host_still_ends_the_cycle_by_the_deadline() -> None:
    async with feed_host() as host:
        host.routes["/status.json"] = drip()
        host.routes["/fallback-data.json"] = static(DATA)
        async with FeedClient(_settings(host)) as client:
            with pytest.raises(FeedDeadlineExceeded, match="deadline"):
                await client.fetch()
            # The next cycle uses the fallback the status failure left, with a fresh deadline.
            fetched = await client.fetch()
        assert fetched is not None
        assert fetched.data == DATA


async def test_after_a_dripping_mirror_the_next_cycle_starts_with_another() -> None:
    async with feed_host() as host:
        host.serve_feed(static(DATA))
        status = {
            "data": {
                "v3": [host.url("/slow.json"), host.url("/data.json")],
                "transceivers": [host.url("/transceivers.json")],
            }
        }
        host.routes["/status.json"] = static(orjson.dumps(status))
        host.routes["/slow.json"] = drip()
        outcomes: list[str] = []
        async with FeedClient(_settings(host)) as client:
            for _ in range(2):
                try:
                    fetched = await client.fetch()
                except FeedDeadlineExceeded:
                    outcomes.append("deadline")
                else:
                    outcomes.append("document" if fetched is not None else "duplicate")
        # Whichever mirror was picked first, a document arrives by the second cycle.
        assert outcomes in (["document", "duplicate"], ["deadline", "document"])


async def test_a_deadline_on_the_data_is_a_timeout_error_record(engine: Engine) -> None:
    ingestor = Ingestor(engine, IngestConfig())
    ingestor.restore()
    errors = ErrorManager(ErrorRecordStore(ingestor.db))
    async with feed_host() as host:
        host.serve_feed(drip())
        async with FeedClient(_settings(host)) as client:
            poller = Poller(
                client, ingestor, FixedRateSchedule(1.0), errors=errors, breakers=BreakerRegistry()
            )
            assert await poller.poll_once() is None
    records = errors.recent()
    assert [(r.service, r.operation, r.category) for r in records] == [
        ("feed", "fetch_data", Category.TIMEOUT)
    ]
    assert "deadline" in records[0].message
    assert poller.counters.fetch_errors == 1
    errors.flush()
    with engine.connect() as conn:
        stored = conn.execute(select(t.error_records.c.category)).scalars().all()
    assert stored == ["timeout"]


# --- bounded decompression --------------------------------------------------------------


async def test_a_declared_length_above_the_limit_fails_at_once() -> None:
    async with feed_host() as host:
        # Nothing of the body is ever sent: only failing on the header ends this in time.
        host.serve_feed(declare_only(200 * MIB))
        settings = _settings(host, max_document_bytes=16 * MIB, fetch_deadline=30.0)
        async with FeedClient(settings) as client:
            with pytest.raises(FeedDocumentTooLarge, match=f"{16 * MIB:,} bytes"):
                await client.fetch()


async def test_a_gzip_bomb_fails_with_the_size_error(one_gb_bomb: bytes) -> None:
    gz = {"Content-Encoding": "gzip"}
    async with feed_host() as host:
        host.serve_feed(static(one_gb_bomb, gz))
        settings = _settings(host, max_document_bytes=16 * MIB, fetch_deadline=60.0)
        async with FeedClient(settings) as client:
            with pytest.raises(FeedDocumentTooLarge) as raised:
                await client.fetch()
    message = str(raised.value)
    assert f"{16 * MIB:,} bytes" in message
    assert "max_document_bytes" in message
    assert "general" not in message  # nothing of the body is quoted
    assert isinstance(raised.value, FeedDocumentError)
    found = classify(raised.value)
    assert (found.category, found.transient) == (Category.DECODE, False)


# Peak RSS of this process's own memory: VmHWM starts afresh at exec, while ru_maxrss carries
# the parent's peak across fork and exec and would hide growth below the test runner's size.
_RSS_PROBE = """
import asyncio, json, sys
from vatsim_collector.config import Settings
from vatsim_collector.feed.client import FeedClient

def peak_kib() -> int:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1])

async def main() -> None:
    settings = Settings(
        _env_file=None, status_url=sys.argv[1], max_document_bytes=int(sys.argv[2]),
        fetch_deadline=120.0, http_timeout=60.0, fetch_transceivers=False,
    )
    async with FeedClient(settings) as client:
        before = peak_kib()
        try:
            await client.fetch()
            outcome = "returned"
        except Exception as exc:
            outcome = type(exc).__name__
        after = peak_kib()
    print(json.dumps({"outcome": outcome, "before_kib": before, "after_kib": after}))

asyncio.run(main())
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
async def test_a_one_gb_gzip_bomb_keeps_memory_within_the_limit(
    one_gb_bomb: bytes, tmp_path: Path
) -> None:
    limit = 16 * MIB
    async with feed_host() as host:
        host.serve_feed(static(one_gb_bomb, {"Content-Encoding": "gzip"}))
        # A separate process, so its peak RSS is the fetch's alone, not this test run's.
        probe = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _RSS_PROBE,
            host.url("/status.json"),
            str(limit),
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(probe.communicate(), 180)
        finally:
            if probe.returncode is None:
                probe.kill()
                await probe.wait()
    assert probe.returncode == 0, err.decode()[-2000:]
    report = json.loads(out)
    assert report["outcome"] == "FeedDocumentTooLarge"
    growth = (report["after_kib"] - report["before_kib"]) * 1024
    print(f"peak RSS growth fetching a 1 GiB gzip bomb with a 16 MiB limit: {growth / MIB:.1f} MiB")
    assert growth < 200 * MIB


async def test_a_gzip_bomb_is_one_error_record_and_no_retry(
    engine: Engine, one_gb_bomb: bytes
) -> None:
    ingestor = Ingestor(engine, IngestConfig())
    ingestor.restore()
    errors = ErrorManager(ErrorRecordStore(ingestor.db))
    async with feed_host() as host:
        host.serve_feed(static(one_gb_bomb, {"Content-Encoding": "gzip"}))
        settings = _settings(host, max_document_bytes=16 * MIB, fetch_deadline=60.0)
        async with FeedClient(settings) as client:
            poller = Poller(
                client,
                ingestor,
                FixedRateSchedule(1.0),
                errors=errors,
                breakers=BreakerRegistry(),
                retry=RetryPolicy(attempts=3, initial=0.01, maximum=0.02, total=10.0),
            )
            assert await poller.poll_once() is None
    assert [(r.operation, r.category, r.transient) for r in errors.recent()] == [
        ("fetch_data", Category.DECODE, False)
    ]
    assert host.requests.count("/data.json") == 1


async def test_gzip_from_a_real_server_is_decoded_by_the_client() -> None:
    async with feed_host() as host:
        host.serve_feed(
            static(gzip.compress(DATA), {"Content-Encoding": "gzip"}),
            transceivers=static(gzip.compress(TRANSCEIVERS), {"Content-Encoding": "gzip"}),
        )
        async with FeedClient(_settings(host)) as client:
            fetched = await client.fetch()
    assert fetched is not None
    assert (fetched.data, fetched.transceivers) == (DATA, TRANSCEIVERS)


@pytest.mark.parametrize(
    ("body", "headers", "expected"),
    [
        (b"\x1f\x8bnot gzip at all", {"Content-Encoding": "gzip"}, "corrupt"),
        (gzip.compress(DATA)[:-12], {"Content-Encoding": "gzip"}, "cut short"),
        (DATA, {"Content-Encoding": "br"}, "unsupported Content-Encoding"),
    ],
)
async def test_bad_encodings_are_document_errors(
    body: bytes, headers: dict[str, str], expected: str
) -> None:
    async with feed_host() as host:
        host.serve_feed(static(body, headers))
        async with FeedClient(_settings(host)) as client:
            with pytest.raises(FeedDocumentError, match=expected) as raised:
                await client.fetch()
    assert classify(raised.value).category is Category.DECODE


# --- feed.body on its own ---------------------------------------------------------------


def test_decompress_bounded_accepts_up_to_the_limit_and_not_a_byte_more() -> None:
    document = b"x" * 5000
    packed = gzip.compress(document)
    assert decompress_bounded(packed, 5000) == document
    with pytest.raises(DocumentTooLarge, match="4,999 bytes"):
        decompress_bounded(packed, 4999)
    assert decompress_bounded(document, 5000) == document  # not gzip: taken as is
    with pytest.raises(DocumentTooLarge):
        decompress_bounded(document, 4999)


def test_decompress_bounded_reads_every_gzip_member() -> None:
    packed = gzip.compress(b"first,") + b"\x00\x00" + gzip.compress(b"second")
    assert decompress_bounded(packed, 1000) == gzip.decompress(packed) == b"first,second"


@pytest.mark.parametrize(
    ("packed", "error"),
    [
        (gzip.compress(b"abc" * 100)[:-4], "cut short"),
        (gzip.compress(b"abc")[:10] + b"\xff" * 20, "corrupt"),
        (gzip.compress(b"abc") + b"trailing garbage", "corrupt"),
    ],
)
def test_decompress_bounded_rejects_corrupt_streams(packed: bytes, error: str) -> None:
    with pytest.raises(BadCompression, match=error):
        decompress_bounded(packed, 1000)


def test_bounded_body_fed_in_small_pieces_matches_gzip() -> None:
    document = orjson.dumps({"pilots": [{"cid": n, "callsign": f"BAW{n}"} for n in range(2000)]})
    packed = gzip.compress(document)
    body = BoundedBody(len(document), "gzip")
    for start in range(0, len(packed), 7):
        body.feed(packed[start : start + 7])
    assert body.finish() == document


def test_bounded_body_refuses_encodings_it_cannot_bound() -> None:
    for name in ("br", "zstd", "gzip, gzip"):
        with pytest.raises(UnsupportedEncoding):
            BoundedBody(100, name)


def test_read_document_file_bounds_a_gzip_bomb_on_disk(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.json.gz"
    bomb.write_bytes(gzip_bomb_body(64 * MIB))
    with pytest.raises(DocumentTooLarge):
        read_document_file(bomb, MIB)
    plain = tmp_path / "snapshot.json"
    plain.write_bytes(DATA)
    packed = tmp_path / "snapshot.json.gz"
    packed.write_bytes(gzip.compress(DATA))
    assert read_document_file(plain, MIB) == read_document_file(packed, MIB) == DATA
