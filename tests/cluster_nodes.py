"""Collector nodes as real processes for the multi-node tests: start, kill -9, freeze, stop.

Every process is started by the test, watched by PID and stopped in ``NodeSet.close`` whatever
happened; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from simserver import running_simulator
from vatsim_collector.feed.client import read_update_timestamp
from vatsim_collector.simulator.server import SimulatedNetwork
from vatsim_collector.store.engine import create_db_engine
from vatsim_collector.store.migrate import upgrade

SERVER_ENV = "VATSIM_TEST_DATABASE_URL"
# Seconds between the feed documents a Ticker makes the simulator publish.
TICK = 0.8


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], bool], *, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@contextmanager
def extra_postgresql_database() -> Iterator[str]:
    """One more throwaway database on the test server (a reference run's, say)."""
    server = os.environ[SERVER_ENV]
    name = f"vct_{uuid.uuid4().hex[:16]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(server).set(database=name).render_as_string(hide_password=False)
        engine = create_db_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@dataclass
class NodeProcess:
    """``vatsim-collector run`` as node ``name``; restartable under the same name."""

    name: str
    database_url: str
    status_url: str
    workdir: Path
    poll_interval: float
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.workdir.mkdir(parents=True, exist_ok=True)
        environment = {
            **os.environ,
            "VATSIM_NODE_NAME": self.name,
            # Each node its own spool: two processes must never share one.
            "VATSIM_SPOOL_DIR": str(self.workdir / f"{self.name}-spool"),
            "VATSIM_LOG_FORMAT": "json",
            "VATSIM_LOG_LEVEL": "INFO",
            "VATSIM_SANITY_MIN_PILOTS": "1",
            "VATSIM_STALE_AFTER_SECONDS": "86400",
            "VATSIM_HEALTH_MIN_FREE_DISK_MB": "0",
            **self.env,
        }
        command = [
            sys.executable,
            "-m",
            "vatsim_collector",
            "run",
            "--database-url",
            self.database_url,
            "--status-url",
            self.status_url,
            "--port",
            str(self.port),
            "--poll-interval",
            str(self.poll_interval),
        ]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command, env=environment, stdout=log, stderr=subprocess.STDOUT
            )
        self.starts += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def answers(self) -> bool:
        try:
            return httpx2.get(f"{self.url}/health", timeout=2).status_code in (200, 503)
        except httpx2.HTTPError:
            return False

    def wait_up(self, timeout: float = 90) -> None:
        if not wait_until(lambda: not self.alive() or self.answers(), timeout=timeout):
            raise AssertionError(f"node {self.name} did not come up:\n{self.output()[-4000:]}")
        if not self.alive():
            raise AssertionError(f"node {self.name} exited:\n{self.output()[-4000:]}")

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGCONT)  # a frozen process cannot handle SIGTERM
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_events(self, event: str) -> list[dict[str, Any]]:
        found = []
        for line in self.output().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("event") == event:
                found.append(record)
        return found


@dataclass
class NodeSet:
    nodes: dict[str, NodeProcess] = field(default_factory=dict)

    def add(self, node: NodeProcess) -> NodeProcess:
        self.nodes[node.name] = node
        return node

    def close(self) -> None:
        for node in self.nodes.values():
            node.stop()


@dataclass
class Feed:
    """The simulator, ticked by the test; every document it served, by update timestamp."""

    base: str
    served: dict[datetime, tuple[bytes, bytes]] = field(default_factory=dict)
    # Every document stays up at least this long: a test's "every document served was stored"
    # only holds for documents the nodes, polling every 0.2 s, had a chance to fetch. (Two
    # ticks back to back, say the Ticker's last and the next one, would replace one at once.)
    min_lifetime: float = TICK
    _last_tick: float = field(default=0.0, repr=False)

    @property
    def status_url(self) -> str:
        return f"{self.base}/status.json"

    def tick(self) -> datetime:
        wait = self._last_tick + self.min_lifetime - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._last_tick = time.monotonic()
        httpx2.post(f"{self.base}/_sim/tick", timeout=10).raise_for_status()
        data = httpx2.get(f"{self.base}/v3/vatsim-data.json", timeout=10).content
        transceivers = httpx2.get(f"{self.base}/v3/transceivers-data.json", timeout=10).content
        stamp = read_update_timestamp(data)
        self.served[stamp] = (data, transceivers)
        return stamp


class Ticker:
    """Ticks the feed every TICK seconds on its own thread until stopped."""

    def __init__(self, feed: Feed) -> None:
        self.feed = feed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            while not self._stop.wait(TICK):
                self.feed.tick()
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def __enter__(self) -> Ticker:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        if self.error is not None:
            raise self.error


@contextmanager
def simulated_feed(seed: int) -> Iterator[Feed]:
    """The simulator over HTTP, ticked by the caller, hours in the past so that a hundred 15 s
    ticks never run ahead of the clock; one document published already."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    with running_simulator(network=SimulatedNetwork(seed=seed, start=start), speed=0) as base:
        feed = Feed(base)
        feed.tick()
        yield feed
