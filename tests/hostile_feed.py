"""A feed server over real HTTP that publishes the simulator's network on its own clock and
serves crafted documents (``hostile_docs``) at the ticks a test asks for.

The network advances one feed interval (15 s of feed time, the real feed's cadence) every
``cadence`` wall seconds. Feed time starts ``lead`` before the wall clock, so that however
fast the test runs its timestamps stay in the past, as the real feed's do: a collector's
"from the future" check is never tripped by the test's own speed-up.

With ``wait_for_fetch``, a tick also waits (up to ``max_wait`` seconds) until the collector
fetched the documents it should have, so a loaded machine cannot make the test skip a tick;
without it the clock alone rules, which is what a "no tick missed" test needs.

Every document served is logged: tick, which document, update timestamp, the crafted row
(if any) and per section how many records were served and how many of them were bad.

Below the server: the collector under test, ``vatsim-collector run`` as a subprocess that is
always stopped (SIGTERM, then SIGKILL), and a sampler of its ``/metrics``.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import orjson

from hostile_docs import (
    Builder,
    Crafted,
    ValidDocuments,
    section_counts,
    stamp_of,
)
from vatsim_collector.simulator.server import SimulatedNetwork


@dataclass(frozen=True)
class Served:
    tick: int
    document: str  # data | transceivers
    update_timestamp: datetime  # of the tick (a crafted document may claim another)
    row: str | None  # the crafted row, None for a valid document
    sections: dict[str, int]  # records served per section
    bad: dict[str, int]  # records deliberately bad per section


@dataclass
class Tick:
    """One published feed interval: the valid documents and what replaces them, if anything."""

    index: int
    valid: ValidDocuments
    data_bytes: bytes
    transceivers_bytes: bytes
    crafted: Crafted | None = None
    crafted_served: int = 0
    valid_data_served: int = 0
    transceivers_served: int = 0
    published_at: float = field(default_factory=time.monotonic)

    @property
    def update_timestamp(self) -> datetime:
        return stamp_of(self.valid.data)

    @property
    def valid_data_published(self) -> bool:
        """Whether the tick's real data document is (or will be) served at all."""
        crafted = self.crafted
        return crafted is None or crafted.document != "data" or crafted.then_valid

    def fetched_enough(self) -> bool:
        crafted = self.crafted
        if crafted is not None and self.crafted_served < len(crafted.bodies):
            return False
        data_done = self.valid_data_served > 0 or not self.valid_data_published
        # The collector asks for transceivers once per new data document.
        crafted_transceivers = crafted is not None and crafted.document == "transceivers"
        return data_done and (self.transceivers_served > 0 or crafted_transceivers)


class HostileFeed:
    """The feed's state: the network, the schedule of crafted rows, and the log."""

    def __init__(
        self,
        network_seed: int = 5,
        *,
        cadence: float = 1.0,
        lead: timedelta = timedelta(hours=3),
        wait_for_fetch: bool = False,
        max_wait: float = 5.0,
        last_tick: int | None = None,
    ) -> None:
        self.epoch = (datetime.now(UTC) - lead).replace(microsecond=0)
        self.network = SimulatedNetwork(seed=network_seed, start=self.epoch)
        self.cadence = cadence
        self.wait_for_fetch = wait_for_fetch
        self.max_wait = max_wait
        # The feed stops advancing after this tick (None: never), so a run ends on a known one.
        self.last_tick = last_tick
        self._lock = threading.Lock()
        self._schedule: dict[int, Builder] = {}
        self.ticks: list[Tick] = []
        self.log: list[Served] = []
        self._publish()

    # ----- schedule ------------------------------------------------------------------------

    def schedule(self, builders: tuple[Builder, ...], *, first: int = 3, every: int = 2) -> int:
        """Craft tick ``first``, ``first + every``, ... with each builder in turn (valid ticks
        between them); returns the index of the last crafted tick."""
        if every < 2:
            raise ValueError("crafted ticks need a valid tick between them")
        with self._lock:
            for position, builder in enumerate(builders):
                self._schedule[first + position * every] = builder
            return first + (len(builders) - 1) * every

    # ----- clock ---------------------------------------------------------------------------

    @property
    def current(self) -> Tick:
        with self._lock:
            return self.ticks[-1]

    def due(self) -> bool:
        """Whether the current tick has lasted long enough to give way to the next."""
        with self._lock:
            tick = self.ticks[-1]
            if self.last_tick is not None and tick.index >= self.last_tick:
                return False
            if self.wait_for_fetch and not self.log:
                return False  # the collector is still starting: the feed waits for it
            age = time.monotonic() - tick.published_at
            if age < self.cadence:
                return False
            if not self.wait_for_fetch or age >= self.max_wait:
                return True
            return tick.fetched_enough()

    def advance(self) -> None:
        self.network.tick()
        self._publish()

    def _publish(self) -> None:
        data = self.network.data_document()
        stations = self.network.transceivers_document()
        valid = ValidDocuments(data=data, transceivers=stations)
        index = self.network.tick_count
        builder = self._schedule.get(index)
        tick = Tick(
            index=index,
            valid=valid,
            data_bytes=orjson.dumps(data),
            transceivers_bytes=orjson.dumps(stations),
            crafted=builder(valid) if builder is not None else None,
        )
        with self._lock:
            self.ticks.append(tick)

    # ----- serving -------------------------------------------------------------------------

    def body(self, document: str) -> bytes:
        """The body for one request of ``document`` ("data" or "transceivers") now."""
        with self._lock:
            tick = self.ticks[-1]
            crafted = tick.crafted
            if crafted is not None and crafted.document == document:
                if tick.crafted_served < len(crafted.bodies):
                    body = crafted.bodies[tick.crafted_served]
                    tick.crafted_served += 1
                    self._log(tick, document, crafted)
                    return body
                if not crafted.then_valid:
                    self._log(tick, document, crafted)
                    return crafted.bodies[-1]
            if document == "data":
                tick.valid_data_served += 1
                self._log(tick, document, None)
                return tick.data_bytes
            tick.transceivers_served += 1
            self._log(tick, document, None)
            return tick.transceivers_bytes

    def _log(self, tick: Tick, document: str, crafted: Crafted | None) -> None:
        if crafted is None:
            sections = (
                section_counts(tick.valid.data)
                if document == "data"
                else {"transceivers": len(tick.valid.transceivers)}
            )
            self.log.append(Served(tick.index, document, tick.update_timestamp, None, sections, {}))
            return
        bad: dict[str, int] = {}
        for record in crafted.bad:
            bad[record.section] = bad.get(record.section, 0) + 1
        self.log.append(
            Served(
                tick.index,
                document,
                tick.update_timestamp,
                crafted.row,
                dict(crafted.sections_served),
                bad,
            )
        )

    # ----- what was published --------------------------------------------------------------

    def published(self) -> list[Tick]:
        with self._lock:
            return list(self.ticks)

    def relative(self, when: datetime) -> float:
        """Seconds of feed time since the epoch: comparable between runs started apart."""
        return (when - self.epoch).total_seconds()


def _status_document(base: str) -> bytes:
    return orjson.dumps(
        {
            "data": {
                "v3": [f"{base}/v3/vatsim-data.json"],
                "transceivers": [f"{base}/v3/transceivers-data.json"],
            }
        }
    )


def _handler(feed: HostileFeed, status: bytes) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/status.json":
                body = status
            elif path == "/v3/vatsim-data.json":
                body = feed.body("data")
            elif path == "/v3/transceivers-data.json":
                body = feed.body("transceivers")
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(OSError):
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # the test's output is the log it keeps

    return Handler


@contextlib.contextmanager
def serving(feed: HostileFeed) -> Iterator[str]:
    """Serve ``feed`` on a free 127.0.0.1 port and advance its clock; yields the base URL.

    Both threads stop when the block ends, failing or not.
    """
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(feed, b""))
    server.daemon_threads = True
    base = f"http://127.0.0.1:{server.server_address[1]}"
    server.RequestHandlerClass = _handler(feed, _status_document(base))
    stop = threading.Event()

    def clock() -> None:
        while not stop.wait(min(0.05, feed.cadence / 10)):
            if feed.due():
                feed.advance()

    threads = [
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True),
        threading.Thread(target=clock, daemon=True, name="hostile-feed-clock"),
    ]
    for thread in threads:
        thread.start()
    try:
        yield base
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        for thread in threads:
            thread.join(timeout=10)


# ----- the collector under test: the real service, started as a user starts it -------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Collector:
    base: str
    key: str
    spool: Path
    log_path: Path
    exit_code: int | None = None
    # The process itself, for tests that kill it (kill -9) inside the block.
    proc: subprocess.Popen[bytes] | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.key}

    def get(self, path: str, timeout: float = 5.0) -> httpx2.Response:
        return httpx2.get(f"{self.base}{path}", headers=self.headers, timeout=timeout)

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        return parse_metrics(self.get("/metrics").text)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Prometheus text format samples by (name, labels)."""
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, labels, value = match.groups()
        samples[(name, frozenset(_LABEL.findall(labels or "")))] = float(value)
    return samples


def metric_sum(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float | None:
    """The sum of ``name``'s samples matching ``labels``; None if there is no such sample."""
    wanted = set(labels.items())
    found = [v for (n, ls), v in samples.items() if n == name and wanted <= ls]
    return sum(found) if found else None


def wait_until(check: Callable[[], object], *, timeout: float, interval: float = 0.2) -> bool:
    """Whether ``check`` came true within ``timeout`` seconds (a connection error is "not yet")."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx2.TransportError):
            if check():
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _executable() -> list[str]:
    script = Path(sys.executable).parent / "vatsim-collector"
    return [str(script)] if script.exists() else [sys.executable, "-m", "vatsim_collector"]


@contextlib.contextmanager
def running_collector(
    database_url: str,
    status_url: str,
    workdir: Path,
    *,
    poll_interval: float = 0.5,
    env: dict[str, str] | None = None,
    stop_timeout: float = 30.0,
) -> Iterator[Collector]:
    """``vatsim-collector run`` against ``status_url``; SIGTERM when the block ends (SIGKILL
    if it has not stopped within ``stop_timeout`` s), failing or not."""
    port = free_port()
    key = secrets.token_hex(16)
    spool = workdir / "spool"
    log_path = workdir / f"collector-{port}.log"
    environment = {
        **os.environ,
        "VATSIM_SPOOL_DIR": str(spool),
        "VATSIM_API_KEYS": f"admin:{key}",
        "VATSIM_LOG_FORMAT": "json",
        "VATSIM_LOG_LEVEL": "INFO",
        "VATSIM_SANITY_MIN_PILOTS": "1",
        # Feed time runs behind the wall clock on purpose (see HostileFeed): not stale.
        "VATSIM_STALE_AFTER_SECONDS": "86400",
        "VATSIM_HEALTH_MIN_FREE_DISK_MB": "0",
        **(env or {}),
    }
    command = [
        *_executable(),
        "run",
        "--database-url",
        database_url,
        "--status-url",
        status_url,
        "--port",
        str(port),
        "--poll-interval",
        str(poll_interval),
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
        collector = Collector(f"http://127.0.0.1:{port}", key, spool, log_path, proc=proc)
        try:
            up = wait_until(
                lambda: (
                    proc.poll() is not None or collector.get("/health").status_code in (200, 503)
                ),
                timeout=60,
            )
            if not up or proc.poll() is not None:
                raise AssertionError(f"the collector did not come up:\n{collector.output()}")
            yield collector
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                collector.exit_code = proc.wait(timeout=stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                collector.exit_code = proc.wait(timeout=10)


class MetricsSampler:
    """Reads ``/metrics`` every ``interval`` seconds on a thread, until stopped."""

    def __init__(self, collector: Collector, interval: float = 2.0) -> None:
        self.collector = collector
        self.interval = interval
        self.samples: list[dict[tuple[str, frozenset[tuple[str, str]]], float]] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="metrics-sampler")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.samples.append(self.collector.metrics())
            except httpx2.HTTPError:
                self.failures += 1

    def __enter__(self) -> MetricsSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def series(self, name: str, **labels: str) -> list[float | None]:
        return [metric_sum(s, name, **labels) for s in self.samples]
