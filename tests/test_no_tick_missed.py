"""Issue 15, acceptance 4: the poller fetches on its schedule whatever the database does.

The real service collects from the hostile feed server (valid documents only, a new one every
second on the server's own clock). The database goes away for a while, by a cut network link
to PostgreSQL or by another process holding SQLite's write lock; when it comes back, the
stored update timestamps must be every timestamp the server published between the first and
the last one stored: none missed during the outage, none during the write-back after it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.engine import make_url

from hostile_feed import Collector, HostileFeed, metric_sum, running_collector, serving, wait_until
from tcpproxy import TcpProxy
from vatsim_collector.store import schema as t

CADENCE = 1.0
POLL_INTERVAL = 0.5
ENV = {"VATSIM_FEED_CADENCE_SECONDS": "15"}


def accepted_timestamps(engine: Engine) -> list[datetime]:
    with engine.connect() as conn:
        return sorted(
            conn.execute(
                select(t.snapshots.c.update_timestamp).where(t.snapshots.c.status == "accepted")
            ).scalars()
        )


def missed_ticks(collector: Collector) -> float | None:
    """The collector's count of missed ticks: /metrics first, then /api/status."""
    found = metric_sum(collector.metrics(), "vatsim_missed_ticks_total")
    if found is not None:
        return found
    status = collector.get("/api/status").json()
    value = (status.get("collection") or {}).get("missed_ticks")
    return float(value) if isinstance(value, int | float) else None


def finish(feed: HostileFeed, engine: Engine, collector: Collector, *, timeout: float) -> None:
    """Let the feed publish three more ticks, then stop it there and wait until the collector
    stored the last one."""
    feed.last_tick = feed.current.index + 3
    stored = wait_until(
        lambda: (
            feed.current.index >= (feed.last_tick or 0)
            and feed.current.update_timestamp in accepted_timestamps(engine)
        ),
        timeout=timeout,
        interval=0.5,
    )
    assert stored, (
        f"the collector did not catch up with the feed within {timeout:g} s\n"
        + collector.output()[-4000:]
    )


def assert_no_tick_missed(feed: HostileFeed, engine: Engine, missed: float | None) -> None:
    stored = accepted_timestamps(engine)
    assert len(stored) >= 2, "too little was stored to compare"
    published = [
        tick.update_timestamp
        for tick in feed.published()
        if stored[0] <= tick.update_timestamp <= stored[-1]
    ]
    lost = sorted(set(published) - set(stored))
    assert not lost, f"{len(lost)} of {len(published)} published ticks never stored: {lost[:10]}"
    assert stored == published
    assert missed is not None, "no missed-ticks count in /metrics or /api/status"
    assert missed == 0


@pytest.mark.slow
def test_a_minute_of_postgresql_outage_and_the_write_back_miss_no_tick(
    proxied_postgresql: tuple[str, TcpProxy], engine: Engine, tmp_path: Path
) -> None:
    url, proxy = proxied_postgresql
    feed = HostileFeed(cadence=CADENCE)
    with (
        serving(feed) as base,
        running_collector(
            url, f"{base}/status.json", tmp_path, poll_interval=POLL_INTERVAL, env=ENV
        ) as collector,
    ):
        assert wait_until(lambda: len(accepted_timestamps(engine)) >= 5, timeout=60)
        proxy.cut()
        try:
            time.sleep(60)
        finally:
            proxy.restore()
        # The outage's backlog is written back while new ticks keep coming.
        finish(feed, engine, collector, timeout=180)
        missed = missed_ticks(collector)
        left = [p for p in collector.spool.rglob("*") if p.is_file()]
    assert not left, f"left in the spool: {left}"
    assert_no_tick_missed(feed, engine, missed)


_LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
conn.execute("BEGIN EXCLUSIVE")
open(sys.argv[2], "w").close()
time.sleep(float(sys.argv[3]))
conn.execute("COMMIT")
"""


@pytest.mark.slow
def test_forty_seconds_of_sqlite_write_lock_miss_no_tick(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        pytest.skip("holds SQLite's write lock from another process: runs on SQLite only")
    feed = HostileFeed(cadence=CADENCE)
    locked = tmp_path / "locked"
    with (
        serving(feed) as base,
        running_collector(
            database_url, f"{base}/status.json", tmp_path, poll_interval=POLL_INTERVAL, env=ENV
        ) as collector,
    ):
        assert wait_until(lambda: len(accepted_timestamps(engine)) >= 5, timeout=60)
        locker = subprocess.Popen(
            [sys.executable, "-c", _LOCKER, str(url.database), str(locked), "40"]
        )
        try:
            assert wait_until(locked.exists, timeout=60), "the other process never got the lock"
            locker.wait(timeout=90)
        finally:
            if locker.poll() is None:
                locker.kill()
                locker.wait(timeout=10)
        finish(feed, engine, collector, timeout=180)
        missed = missed_ticks(collector)
    assert_no_tick_missed(feed, engine, missed)
