"""Only the leader relays, and a takeover relays what the killed leader left in the outbox.

Two ``vatsim-collector run`` nodes on one PostgreSQL database with NATS, the simulator ticked
by the test over real HTTP, a NATS server of the test's own. The leader runs the relay, the
standby does not; the leader is killed with SIGKILL; the standby takes over and relays the
rest; the killed node comes back as a standby. The stream then holds every event the database
implies, once each, in snapshot order. PostgreSQL only: one SQLite file takes one collector.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx2
import pytest
from sqlalchemy import Engine, func, select

from cluster_nodes import Feed, NodeProcess, NodeSet, Ticker, simulated_feed, wait_until
from hostile_feed import metric_sum, parse_metrics
from natsserver import NatsServer, nats_server, read_stream
from test_outbox_streaming import assert_stream_matches_database
from vatsim_collector.store import cluster as sql
from vatsim_collector.store import schema as t

pytestmark = pytest.mark.slow

STREAM = "FAILOVER_EVENTS"


@pytest.fixture
def feed() -> Iterator[Feed]:
    with simulated_feed(seed=21) as sim:
        yield sim


@pytest.fixture
def nats(tmp_path: Path) -> Iterator[NatsServer]:
    with nats_server(tmp_path) as server:
        yield server


def relaying(node: NodeProcess) -> float | None:
    try:
        text = httpx2.get(f"{node.url}/metrics", timeout=5).text
    except httpx2.HTTPError:
        return None
    return metric_sum(parse_metrics(text), "vatsim_relay_running")


def leader(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return sql.read_leadership(conn).leader_node


def count(engine: Engine, table: t.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def latest(engine: Engine) -> datetime | None:
    with engine.connect() as conn:
        value: datetime | None = conn.execute(
            select(func.max(t.snapshots.c.update_timestamp))
        ).scalar_one()
        return value


def test_only_the_leader_relays_and_a_takeover_relays_the_rest(
    postgresql: Engine,
    database_url: str,
    feed: Feed,
    nats: NatsServer,
    nodes: NodeSet,
    tmp_path: Path,
) -> None:
    env = {
        "VATSIM_LEADER_LEASE_SECONDS": "2",
        "VATSIM_FEED_CADENCE_SECONDS": "15",
        "VATSIM_NATS_URL": nats.url,
        "VATSIM_NATS_STREAM": STREAM,
        "VATSIM_EVENT_LOG_TYPES": "",
    }
    a = nodes.add(NodeProcess("relay-a", database_url, feed.status_url, tmp_path, 0.2, env))
    b = nodes.add(NodeProcess("relay-b", database_url, feed.status_url, tmp_path, 0.2, env))
    a.start()
    a.wait_up()
    assert wait_until(lambda: leader(postgresql) == "relay-a", timeout=30)
    b.start()
    b.wait_up()
    by_name = {"relay-a": a, "relay-b": b}
    with Ticker(feed):
        assert wait_until(lambda: count(postgresql, t.snapshots) >= 4, timeout=60)
        assert wait_until(lambda: relaying(a) == 1 and relaying(b) == 0, timeout=30)

        a.kill9()  # whatever it committed and had not published waits in the outbox
        assert wait_until(lambda: leader(postgresql) == "relay-b", timeout=30)
        assert wait_until(lambda: relaying(b) == 1, timeout=30)
        stored = count(postgresql, t.snapshots)
        assert wait_until(lambda: count(postgresql, t.snapshots) >= stored + 3, timeout=60)

        a.start()  # back as a standby: it does not relay
        a.wait_up()
        assert wait_until(lambda: relaying(a) == 0, timeout=30)
        assert relaying(b) == 1
        stored = count(postgresql, t.snapshots)
        assert wait_until(lambda: count(postgresql, t.snapshots) >= stored + 2, timeout=60)
    newest = max(feed.served)
    assert wait_until(
        lambda: latest(postgresql) == newest and count(postgresql, t.event_outbox) == 0,
        timeout=60,
    )
    assert leader(postgresql) in by_name
    for node in (a, b):
        node.stop()
    messages = asyncio.run(read_stream(nats.url, STREAM))
    assert_stream_matches_database(messages, postgresql)
