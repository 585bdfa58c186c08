"""Two `vatsim-collector run` processes on one PostgreSQL database, over real HTTP: error
records and breakers are seen across nodes, and a breaker reset asked on one node reaches the
node that owns the breaker.

Both point at a feed on a closed local port, so each node's feed breakers open and each writes
error records of its own. (Two processes cannot share one SQLite file: PostgreSQL only.)
"""

from __future__ import annotations

import json
import socket
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url

from hostile_feed import Collector, metric_sum, running_collector, wait_until
from vatsim_collector.store import schema as t

pytestmark = pytest.mark.slow

PLANTED = "pl4nted-db-pw"
HEARTBEAT = 0.5
# A reset is applied on the owner's next heartbeat; this bounds the wait generously for a
# loaded machine (20 heartbeats).
RESET_WITHIN = 20 * HEARTBEAT


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def node_env(name: str, feed: str) -> dict[str, str]:
    return {
        "VATSIM_NODE_NAME": name,
        "VATSIM_NODE_HEARTBEAT_SECONDS": str(HEARTBEAT),
        "VATSIM_ERROR_FLUSH_INTERVAL": "0.5",
        "VATSIM_BREAKER_FAILURE_THRESHOLD": "2",
        # Open breakers stay open (no probe) unless someone resets them.
        "VATSIM_BREAKER_COOLDOWN": "3600",
        "VATSIM_RETRY_ATTEMPTS": "1",
        "VATSIM_DATA_FALLBACK_URL": f"{feed}/v3/vatsim-data.json",
        "VATSIM_TRANSCEIVERS_FALLBACK_URL": f"{feed}/v3/transceivers-data.json",
        "VATSIM_AIRSPACE_ENABLED": "false",
    }


def breakers(collector: Collector, seen: list[str]) -> dict[tuple[str, str], dict[str, Any]]:
    response = collector.get("/api/errors/circuit-breakers")
    seen.append(response.text)
    assert response.status_code == 200, response.text
    return {(b["node"], b["name"]): b for b in response.json()["breakers"]}


def analytics(collector: Collector, seen: list[str], **params: str) -> dict[str, Any]:
    query = "&".join(f"{k}={v}" for k, v in {"hours": "1", **params}.items())
    response = collector.get(f"/api/errors/analytics?{query}")
    seen.append(response.text)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_two_nodes_share_error_records_and_breakers_and_resets_reach_the_owner(
    database_url: str, tmp_path: Path
) -> None:
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        pytest.skip(
            "two `vatsim-collector run` processes cannot share one SQLite file: set"
            " VATSIM_TEST_DATABASE_URL to run the multi-node test on PostgreSQL"
        )
    # The server trusts local connections, so a password in the URL is never checked: it is
    # planted to show it reaches no response and no error record.
    planted_url = url.set(password=PLANTED).render_as_string(hide_password=False)
    feed = f"http://127.0.0.1:{closed_port()}"
    seen: list[str] = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    with (
        running_collector(
            planted_url,
            f"{feed}/status.json",
            tmp_path / "a",
            env=node_env("node-a", feed),
        ) as a,
        running_collector(
            planted_url,
            f"{feed}/status.json",
            tmp_path / "b",
            env=node_env("node-b", feed),
        ) as b,
    ):
        # Each node's feed breakers open, and A sees B's as B reported them.
        def b_open_seen_from_a() -> bool:
            found = breakers(a, seen).get(("node-b", "feed.data"))
            return found is not None and found["state"] == "open"

        assert wait_until(b_open_seen_from_a, timeout=60), a.output()
        from_a = a.get("/api/errors/circuit-breakers").json()
        assert {(n["node"], n["local"], n["stale"]) for n in from_a["nodes"]} == {
            ("node-a", True, False),
            ("node-b", False, False),
        }

        # The heartbeat carries the role the election gave each node: one leads.
        def roles() -> list[str]:
            nodes = a.get("/api/errors/circuit-breakers").json()["nodes"]
            return sorted(n["role"] for n in nodes)

        assert wait_until(lambda: roles() == ["leader", "standby"], timeout=30), roles()
        b_reported = breakers(a, seen)[("node-b", "feed.data")]
        assert b_reported["reported_at"] is not None
        assert b_reported["resets"] == 0

        # Error records of both nodes, counted by either node; `node` filters.
        def both_nodes_counted() -> bool:
            by_node = analytics(a, seen)["by_node"]
            return by_node.get("node-a", 0) > 0 and by_node.get("node-b", 0) > 0

        assert wait_until(both_nodes_counted, timeout=60), a.output()
        engine = create_engine(database_url)
        try:

            def stored(node: str) -> int:
                e = t.error_records
                with engine.connect() as conn:
                    count = conn.execute(
                        select(func.count()).select_from(e).where(e.c.node == node)
                    ).scalar_one()
                return int(count)

            for asked, other in ((a, "node-b"), (b, "node-a")):
                everything = analytics(asked, seen)
                assert everything["source"] == "database"
                assert set(everything["by_node"]) == {"node-a", "node-b"}
                assert sum(everything["by_node"].values()) == everything["total"]
                # The other node's records, as stored: read between two counts of the table.
                before = stored(other)
                only = analytics(asked, seen, node=other)
                after = stored(other)
                assert only["node"] == other
                assert set(only["by_node"]) == {other}
                assert before <= only["total"] <= after, (before, only["total"], after)
        finally:
            engine.dispose()

        # A reset asked on A for B's breaker reaches B, and only B.
        b_own = breakers(b, seen)[("node-b", "feed.data")]
        assert (b_own["state"], b_own["resets"], b_own["reported_at"]) == ("open", 0, None)
        asked = a.get("/api/errors/circuit-breakers")  # the route to compare with: A's own
        a_own_before = {(x["node"], x["name"]): x for x in asked.json()["breakers"]}
        response = httpx2.post(
            f"{a.base}/api/errors/circuit-breakers/feed.data/reset",
            params={"node": "node-b"},
            headers=a.headers,
            timeout=10,
        )
        seen.append(response.text)
        assert response.status_code == 202, response.text
        assert (response.json()["node"], response.json()["applied"]) == ("node-b", False)

        def reset_at_b() -> bool:
            return breakers(b, seen)[("node-b", "feed.data")]["resets"] == 1

        assert wait_until(reset_at_b, timeout=RESET_WITHIN, interval=0.1), b.output()
        after_reset = breakers(b, seen)[("node-b", "feed.data")]
        # Closed by the reset; the feed still fails, so it may have opened again since, but
        # then only later than it had.
        assert after_reset["state"] != "open" or datetime.fromisoformat(
            after_reset["opened_at"]
        ) > datetime.fromisoformat(b_own["opened_at"])
        assert metric_sum(b.metrics(), "vatsim_breaker_resets_total", breaker="feed.data") == 1
        assert metric_sum(a.metrics(), "vatsim_breaker_resets_total", breaker="feed.data") == 0
        a_own = breakers(a, seen)[("node-a", "feed.data")]
        assert a_own["resets"] == a_own_before[("node-a", "feed.data")]["resets"] == 0
        assert wait_until(
            lambda: breakers(a, seen)[("node-b", "feed.data")]["resets"] == 1,
            timeout=RESET_WITHIN,
            interval=0.1,
        ), "A sees B's reset once B reported it"

        missing = httpx2.post(
            f"{a.base}/api/errors/circuit-breakers/feed.data/reset",
            params={"node": "node-c"},
            headers=a.headers,
            timeout=10,
        )
        assert missing.status_code == 404
        assert missing.json()["detail"] == "no node named node-c"

        # The public list names every node's breakers; /metrics names the node.
        public = b.get("/api/status/breakers")
        seen.append(public.text)
        assert {(x["node"], x["name"]) for x in public.json()["breakers"]} >= {
            ("node-a", "feed.data"),
            ("node-b", "feed.data"),
        }
        for collector, name in ((a, "node-a"), (b, "node-b")):
            samples = collector.metrics()
            assert metric_sum(samples, "vatsim_node_info", node=name) == 1

    # Stopped in order: each removed its row.
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            nodes = conn.execute(select(t.cluster_nodes.c.node)).scalars().all()
            records = [dict(r._mapping) for r in conn.execute(select(t.error_records))]
    finally:
        engine.dispose()
    # uvicorn re-raises the SIGTERM it handled once it has shut down in order.
    assert {a.exit_code, b.exit_code} <= {0, -15}
    assert nodes == []
    assert {r["node"] for r in records} == {"node-a", "node-b"}
    for where, text in [("error records", json.dumps(records, default=str)), *enumerate(seen)]:
        assert PLANTED not in str(text), f"the database password reached {where}"
