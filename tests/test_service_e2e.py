"""The real service, as a user starts it, collecting from the simulator over real HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import Engine, func, select

from simserver import running_simulator
from vatsim_collector.simulator.server import SimulatedNetwork
from vatsim_collector.store import schema as t

START = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(check: Callable[[], Any], *, timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except httpx2.TransportError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextmanager
def collector(database_url: str, status_url: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "VATSIM_DATABASE_URL": database_url,
        "VATSIM_LOG_LEVEL": "INFO",
        # The simulated network starts on a fixed past day; live collection would quarantine
        # documents that old.
        "VATSIM_MAX_DOCUMENT_AGE_SECONDS": str(10 * 365 * 86_400),
    }
    log_path = tmp_path / f"collector-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vatsim_collector",
                "run",
                "--status-url",
                status_url,
                "--port",
                str(port),
                "--poll-interval",
                "0.1",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(
                lambda: httpx2.get(f"{base}/health").status_code in (200, 503), what="collector API"
            )
            yield base
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
            output = log_path.read_text(errors="replace")
            # uvicorn re-raises the SIGTERM it handled once shutdown is complete.
            assert code in (0, -signal.SIGTERM), f"collector exited with {code}:\n{output}"
            assert "collector stopped" in output, output


def status(base: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx2.get(f"{base}/api/status").json()
    return body


def count(engine: Engine, table: Any, *where: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def tick_and_wait(sim: str, api: str) -> str:
    stamp: str = httpx2.post(f"{sim}/_sim/tick").json()["update_timestamp"]
    wanted = datetime.fromisoformat(stamp.replace("Z", "+00:00")[:26] + "+00:00")
    wait_for(
        lambda: (
            (s := status(api)["last_snapshot_at"]) is not None
            and datetime.fromisoformat(s.replace("Z", "+00:00")) >= wanted
        ),
        what=f"snapshot {stamp}",
    )
    return stamp


@pytest.mark.slow
def test_run_collects_from_the_simulator_and_survives_a_restart(
    engine: Engine, database_url: str, tmp_path: Path
) -> None:
    network = SimulatedNetwork(seed=7, start=START)
    with running_simulator(network=network, speed=0) as sim:
        status_url = f"{sim}/status.json"
        with collector(database_url, status_url, tmp_path) as api:
            first = wait_for(lambda: status(api)["last_snapshot_at"], what="first snapshot")
            assert first is not None
            live = status(api)["live"]["pilots"]
            assert live == len(network.data_document()["pilots"])
            assert count(engine, t.pilot_sessions) == live
            positions = [count(engine, t.positions)]
            for _ in range(8):
                tick_and_wait(sim, api)
                positions.append(count(engine, t.positions))
            assert positions == sorted(positions)
            assert positions[-1] > positions[0] * 8
            closed = count(engine, t.pilot_sessions, t.pilot_sessions.c.ended_at.is_not(None))
            assert closed > 0, "pilots left the simulator but no session closed"
            assert count(engine, t.transceivers) > 0
            flights = httpx2.get(f"{api}/api/flights").json()["flights"]
            assert len(flights) == len(network.data_document()["pilots"])
            callsign = flights[0]["callsign"]
            track = httpx2.get(f"{api}/api/flights/{callsign}/track").json()
            assert len(track["positions"]) >= 2
        # The clean stop let the event log catch up: one event per stored snapshot, and a
        # connect and a disconnect for every session opened and closed.
        ev = t.events.c.type
        stored = count(engine, t.snapshots, t.snapshots.c.status == "accepted")
        assert count(engine, t.events, ev == "snapshot.received") == stored
        assert count(engine, t.events, ev == "pilot.connected") == count(engine, t.pilot_sessions)
        ended = count(engine, t.pilot_sessions, t.pilot_sessions.c.ended_at.is_not(None))
        assert count(engine, t.events, ev == "pilot.disconnected") == ended
        assert count(engine, t.dead_letters) == 0
        sessions_before = count(engine, t.pilot_sessions)
        opened_while_down = 0
        with collector(database_url, status_url, tmp_path) as api:
            wait_for(lambda: status(api)["last_snapshot_at"], what="restored state")
            before_tick = {p["cid"] for p in network.data_document()["pilots"]}
            tick_and_wait(sim, api)
            after_tick = network.data_document()["pilots"]
            opened_while_down = sum(1 for p in after_tick if p["cid"] not in before_tick)
        # A restart continues every open session: only pilots that really joined are new.
        assert count(engine, t.pilot_sessions) <= sessions_before + opened_while_down + 2
