"""A NATS server of the test's own, the events stream, and ``vatsim-collector worker`` processes.

Every test that kills workers or counts deliveries starts its own ``nats-server`` with
JetStream in a temporary directory, on a free loopback port, and stops it by PID: the shared
server at 127.0.0.1:4222 is never touched. The stream and its messages are made here as the
outbox relay makes them: subject ``<prefix>.<event type>``, the event id as ``Nats-Msg-Id``,
the body ``encode_event(event)``.

Workers run as real subprocesses (``running_worker``), stopped with SIGTERM (SIGKILL after a
bound) when the block ends, failing or not; ``Worker.kill`` is ``kill -9``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import StreamConfig

from natsserver import NatsServer, nats_server
from vatsim_collector.brokers.nats.consumer import event_subject
from vatsim_collector.events.event import Event, encode_event

TESTS = Path(__file__).resolve().parent
SOURCE = TESTS.parent / "src"
PREFIX = "vatsim.events"


def running_nats(directory: Path) -> contextlib.AbstractContextManager[NatsServer]:
    """A server of the test's own (``natsserver``); stopped by PID when the block ends."""
    return nats_server(directory)


@contextlib.asynccontextmanager
async def jetstream(url: str) -> AsyncIterator[JetStreamContext]:
    """A connection to the test's server; closed when the block ends."""

    async def quiet(exc: Exception) -> None:
        return None  # the tests assert on outcomes; reconnect noise is not one

    client: NatsClient = await nats.connect(url, error_cb=quiet, max_reconnect_attempts=5)
    try:
        yield client.jetstream()
    finally:
        await client.close()


async def create_stream(js: JetStreamContext, name: str, prefix: str = PREFIX) -> None:
    await js.add_stream(StreamConfig(name=name, subjects=[f"{prefix}.>"]))


async def publish(js: JetStreamContext, events: Iterable[Event], prefix: str = PREFIX) -> int:
    """Publish as the outbox relay does; the number of events the stream took (not
    de-duplicated)."""
    stored = 0
    for event in events:
        ack = await js.publish(
            event_subject(prefix, event.type),
            encode_event(event),
            headers={"Nats-Msg-Id": event.id},
        )
        stored += not ack.duplicate
    return stored


async def wait_drained(js: JetStreamContext, stream: str, durable: str, *, within: float) -> bool:
    """Whether ``durable`` has nothing left to deliver nor to be acknowledged, within
    ``within`` seconds (a consumer not yet created counts as not drained)."""
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            info = await js.consumer_info(stream, durable)
            if info.num_pending == 0 and info.num_ack_pending == 0:
                return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)


# ----- workers ---------------------------------------------------------------------------------


def _executable() -> list[str]:
    script = Path(sys.executable).parent / "vatsim-collector"
    return [str(script)] if script.exists() else [sys.executable, "-m", "vatsim_collector"]


def worker_environment(
    database_url: str, nats_url: str, stream: str, **settings: str
) -> dict[str, str]:
    """The environment of a worker (or a collector) of the test: this checkout's source and
    the tests' handler modules importable, the test's NATS server and stream."""
    path = os.pathsep.join(
        p for p in (str(SOURCE), str(TESTS), os.environ.get("PYTHONPATH", "")) if p
    )
    return {
        **os.environ,
        "PYTHONPATH": path,
        "VATSIM_DATABASE_URL": database_url,
        "VATSIM_NATS_URL": nats_url,
        "VATSIM_NATS_STREAM": stream,
        "VATSIM_NATS_SUBJECT_PREFIX": PREFIX,
        "VATSIM_LOG_FORMAT": "json",
        "VATSIM_LOG_LEVEL": "DEBUG",
        **settings,
    }


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log_path: Path
    exit_code: int | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """``kill -9``: nothing in flight is answered."""
        self.process.send_signal(signal.SIGKILL)
        self.exit_code = self.process.wait(timeout=10)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, and the exit status once it has stopped."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.exit_code = self.process.wait(timeout=timeout)
        return self.exit_code

    def lines(self) -> list[dict[str, Any]]:
        """The worker's JSON log lines."""
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                found.append(json.loads(line))
        return [entry for entry in found if isinstance(entry, dict)]

    def logged(self, event: str) -> list[dict[str, Any]]:
        return [entry for entry in self.lines() if entry.get("event") == event]

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def running_worker(
    handlers: Iterable[str], environment: dict[str, str], workdir: Path, *, stop_timeout: float = 30
) -> Iterator[Worker]:
    """``vatsim-collector worker --handler ...``; waits until every handler consumes."""
    names = list(handlers)
    command = [*_executable(), "worker"]
    for name in names:
        command += ["--handler", name]
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"worker-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
    worker = Worker(process, log_path)
    try:
        deadline = time.monotonic() + 60
        while len(worker.logged("handler consuming")) < len(names):
            if process.poll() is not None:
                raise AssertionError(f"the worker exited early:\n{worker.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the worker did not start consuming:\n{worker.output()}")
            time.sleep(0.05)
        yield worker
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                worker.exit_code = process.wait(timeout=stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                worker.exit_code = process.wait(timeout=10)
