"""The command as a user runs it: replay, db upgrade, simulate and demo, in subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import pytest

from feeds import FEEDS, REAL_FEEDS
from test_service_e2e import free_port, wait_for
from vatsim_collector.store.migrate import head_revision

REPLAY_KEYS = {
    "snapshots_ingested",
    "snapshots_duplicate",
    "snapshots_rejected",
    "snapshots_quarantined",
    "pilot_sessions_opened",
    "pilot_sessions_closed",
    "controller_sessions_opened",
    "controller_sessions_closed",
    "atis_sessions_opened",
    "flights_opened",
    "positions_written",
    "transceivers_written",
    "prefiles_seen",
}


def cli(
    *args: str,
    database_url: str | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """The command in a subprocess, with none of this process's VATSIM_* settings: only
    ``env``'s and the database URL."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("VATSIM_")}
    environment.update(env or {})
    if database_url:
        environment["VATSIM_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "vatsim_collector", *args],
        env=environment,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def summary(result: subprocess.CompletedProcess[str]) -> dict[str, int]:
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    data: dict[str, int] = json.loads(lines[0])
    return data


def test_replay_reports_every_counter_and_goes_on_past_a_bad_file(
    database_url: str, tmp_path: Path
) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text('{"general": {"version": 3, "update_timestamp": "2021-01-01T00:00:00Z"')
    result = cli("replay", str(FEEDS), str(bad), "--no-progress", database_url=database_url)
    assert result.returncode == 0, result.stderr
    counts = summary(result)
    assert set(counts) >= REPLAY_KEYS
    assert counts["snapshots_ingested"] == len(REAL_FEEDS)
    assert counts["snapshots_rejected"] == 1
    assert counts["snapshots_quarantined"] == 1  # the two-pilot hand-made fixture
    assert "broken.json" in result.stderr
    assert "malformed JSON" in result.stderr
    again = summary(cli("replay", str(FEEDS), "--no-progress", database_url=database_url))
    assert again["snapshots_duplicate"] == len(REAL_FEEDS) + 1
    assert again["snapshots_ingested"] == 0
    assert again["positions_written"] == 0


def test_replay_fails_only_when_nothing_could_be_ingested(
    database_url: str, tmp_path: Path
) -> None:
    bad = tmp_path / "legacy.json"
    bad.write_text("; a pre-v3 text feed\n!GENERAL:\n")
    result = cli("replay", str(bad), str(tmp_path / "missing.json"), database_url=database_url)
    assert result.returncode == 1
    counts = summary(result)
    assert counts["snapshots_rejected"] == 2
    assert "missing.json: cannot read" in result.stderr


def test_invalid_settings_name_the_setting(tmp_path: Path) -> None:
    result = cli("replay", str(tmp_path), "--database-url", "mysql://nope")
    assert result.returncode == 2
    assert "database_url (VATSIM_DATABASE_URL)" in result.stderr
    fast = cli("run", "--poll-interval", "1", "--database-url", f"sqlite:///{tmp_path}/x.db")
    assert fast.returncode == 2
    assert "poll_interval" in fast.stderr
    assert "live VATSIM feed" in fast.stderr


def test_db_upgrade_creates_the_default_sqlite_file(tmp_path: Path) -> None:
    result = cli("db", "upgrade", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"revision {head_revision()}" in result.stdout
    assert (tmp_path / "data" / "vatsim.db").is_file()


@contextmanager
def background(*args: str, cwd: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VATSIM_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vatsim_collector", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise


def test_simulate_serves_a_feed_that_points_at_itself(tmp_path: Path) -> None:
    port = free_port()
    with background("simulate", "--port", str(port), "--seed", "4", cwd=tmp_path):
        base = f"http://127.0.0.1:{port}"
        status = wait_for(lambda: httpx2.get(f"{base}/status.json").json(), what="simulator")
        assert status["data"]["v3"] == [f"{base}/v3/vatsim-data.json"]
        data = httpx2.get(status["data"]["v3"][0]).json()
        assert data["general"]["version"] == 3
        assert len(data["pilots"]) > 100


@pytest.mark.slow
def test_demo_shows_live_counts_within_a_minute_offline(tmp_path: Path) -> None:
    port = free_port()
    with background("demo", "--port", str(port), cwd=tmp_path):
        base = f"http://127.0.0.1:{port}"
        live = wait_for(
            lambda: httpx2.get(f"{base}/api/status").json()["live"]["pilots"],
            timeout=60,
            what="live counts",
        )
        assert live > 100
        status = httpx2.get(f"{base}/api/status").json()
        assert status["freshness"] == "fresh"
    assert (tmp_path / "data" / "demo.db").is_file()


def test_an_unusable_contact_range_stops_start_up_naming_the_setting(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VATSIM_")}
    env["VATSIM_CONTACT_RANGES"] = "TWR=fifteen"
    env["VATSIM_DATABASE_URL"] = f"sqlite:///{tmp_path}/x.db"
    result = subprocess.run(
        [sys.executable, "-m", "vatsim_collector", "replay", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "contact_ranges (VATSIM_CONTACT_RANGES)" in result.stderr
    assert "Traceback" not in result.stderr
