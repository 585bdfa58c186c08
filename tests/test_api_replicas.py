"""Acceptance, "API replicas": a leader (``vatsim-collector run``) collecting from the simulator
over real HTTP and ``vatsim-collector serve`` processes on the same database answer
``/api/flights``, ``/api/status`` and ``/api/sectors/busiest`` (and the other "now" endpoints)
the same, within one poll interval of the leader storing a snapshot.

Two replicas on PostgreSQL, the topology ``serve`` is for; on SQLite, one replica on the same
machine. The simulator only advances when the test ticks it, so between ticks every node can
be compared at rest.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy.engine import make_url

from api_nodes import ApiNode, running_api_node
from hostile_feed import Collector, running_collector, wait_until
from simserver import running_simulator
from vatsim_collector.simulator.world import SimulatedNetwork

# The leader's poll interval: the replicas must show a snapshot within this of the leader.
POLL_INTERVAL = 2.0
FOLLOW_INTERVAL = 0.25
TICKS = 5
# Agreement is waited for this long at most, so a failure shows the lag it measured.
WAIT = 30.0
NOW_PATHS = (
    "/api/flights",
    "/api/controllers",
    "/api/transceivers?limit=500",
    "/api/sectors/busiest?limit=500",
)


def _at(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class Node:
    name: str
    get: Any  # path -> httpx2.Response
    # The serve process (None for the leader): its exit status once stopped.
    process: ApiNode | None = None

    def json(self, path: str) -> Any:
        answer = self.get(path)
        assert answer.status_code == 200, (self.name, path, answer.status_code, answer.text)
        return answer.json()

    def snapshot_at(self) -> datetime | None:
        return _at(self.json("/api/status")["last_snapshot_at"])


def _wait_for(node: Node, at: datetime) -> float | None:
    """Seconds until ``node`` shows the snapshot of ``at``; None if not within WAIT."""
    started = time.monotonic()
    deadline = started + WAIT
    while time.monotonic() < deadline:
        try:
            if node.snapshot_at() == at:
                return time.monotonic() - started
        except httpx2.TransportError:
            pass
        time.sleep(0.05)
    return None


def _answers(node: Node) -> dict[str, Any]:
    out = {path: node.json(path) for path in NOW_PATHS}
    status = node.json("/api/status")
    cluster = status["cluster"]
    out["status"] = {
        "last_snapshot_at": status["last_snapshot_at"],
        "live": status["live"],
        "leader": cluster["leader"],
        "epoch": cluster["epoch"],
    }
    return out


def _agree_over_ticks(sim: str, leader: Node, replicas: list[Node]) -> list[float]:
    """Tick the feed; after each snapshot the leader stored, wait for every replica to show
    it, then compare every node's answers. The lags measured, in seconds."""
    lags: list[float] = []
    for tick in range(TICKS):
        stamp = httpx2.post(f"{sim}/_sim/tick", timeout=5).json()["update_timestamp"]
        at = _at(stamp)
        assert at is not None
        assert _wait_for(leader, at) is not None, f"the leader did not store tick {tick}"
        for replica in replicas:
            lag = _wait_for(replica, at)
            assert lag is not None, f"{replica.name} did not show tick {tick} within {WAIT} s"
            lags.append(lag)
        theirs = _answers(leader)
        assert theirs["/api/flights"]["flights"], "the leader shows no flights"
        assert theirs["/api/sectors/busiest?limit=500"]["sectors"], "no busy sector"
        for replica in replicas:
            mine = _answers(replica)
            for key, answer in theirs.items():
                assert mine[key] == answer, (replica.name, key, tick)
    return lags


def _network() -> SimulatedNetwork:
    # Feed time hours behind the wall clock: however fast the test ticks, never "future".
    start = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)
    return SimulatedNetwork(seed=17, start=start)


@contextlib.contextmanager
def _cluster(
    database_url: str, workdir: Path, replicas: int
) -> Iterator[tuple[str, Node, list[Node]]]:
    """The simulator, a leader on it and ``replicas`` serve processes; every process stopped
    by its PID when the block ends."""
    with contextlib.ExitStack() as stack:
        sim = stack.enter_context(running_simulator(network=_network(), speed=0))
        collector: Collector = stack.enter_context(
            running_collector(
                database_url,
                f"{sim}/status.json",
                workdir,
                poll_interval=POLL_INTERVAL,
                env={"VATSIM_NODE_NAME": "leader-1"},
            )
        )
        leader = Node("leader-1", collector.get)
        # The leader migrated the database as it started (serve would refuse it otherwise)
        # and stores the feed's first snapshot.
        assert wait_until(lambda: leader.snapshot_at() is not None, timeout=WAIT)
        nodes = []
        for i in range(1, replicas + 1):
            name = f"api-{i}"
            api: ApiNode = stack.enter_context(
                running_api_node(
                    database_url,
                    workdir,
                    env={"VATSIM_NODE_NAME": name, "VATSIM_FOLLOW_INTERVAL": str(FOLLOW_INTERVAL)},
                )
            )
            nodes.append(Node(name, api.get, api))
        yield sim, leader, nodes


def _check_cluster(leader: Node, replicas: list[Node]) -> None:
    clusters = {node.name: node.json("/api/status")["cluster"] for node in (leader, *replicas)}
    assert {name: c["node"] for name, c in clusters.items()} == {n: n for n in clusters}
    assert clusters[leader.name]["role"] == "leader"
    assert {clusters[r.name]["role"] for r in replicas} == {"api"}
    # The leader as the database records it, the same from every node (null until the
    # leader's election records one).
    assert len({(c["leader"], c["epoch"]) for c in clusters.values()}) == 1
    for replica in replicas:
        status = replica.json("/api/status")
        assert status["collection"]["status"] == "absent"
        assert status["ingest"]["snapshots_ingested"] == 0  # per node: it ingests nothing


def _stopped_cleanly(replicas: list[Node]) -> None:
    for replica in replicas:
        assert replica.process is not None
        # uvicorn ends by the signal it stopped on, as `run` does (systemd counts it a stop).
        assert replica.process.exit_code in (0, -signal.SIGTERM), replica.process.output()
        assert "api node stopped" in replica.process.output()


@pytest.mark.slow
def test_api_replicas_agree_with_the_leader(database_url: str, tmp_path: Path) -> None:
    if make_url(database_url).get_backend_name() != "postgresql":
        pytest.skip(
            "API replicas share a PostgreSQL database (set VATSIM_TEST_DATABASE_URL); on"
            " SQLite see test_serve_follows_a_collector_on_sqlite"
        )
    with _cluster(database_url, tmp_path, replicas=2) as (sim, leader, replicas):
        _check_cluster(leader, replicas)
        lags = _agree_over_ticks(sim, leader, replicas)
    assert len(lags) == 2 * TICKS
    assert max(lags) <= POLL_INTERVAL, f"replicas lagged the leader: {sorted(lags)}"
    _stopped_cleanly(replicas)


@pytest.mark.slow
def test_serve_follows_a_collector_on_sqlite(database_url: str, tmp_path: Path) -> None:
    if make_url(database_url).get_backend_name() != "sqlite":
        pytest.skip("on PostgreSQL, test_api_replicas_agree_with_the_leader covers this")
    with _cluster(database_url, tmp_path, replicas=1) as (sim, leader, replicas):
        _check_cluster(leader, replicas)
        lags = _agree_over_ticks(sim, leader, replicas)
    assert max(lags) <= POLL_INTERVAL, f"the replica lagged the leader: {sorted(lags)}"
    _stopped_cleanly(replicas)
