"""Log output: JSON lines or console, one renderer for structlog and stdlib, cycle context."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
import uvicorn

from simserver import running_simulator
from vatsim_collector.api.context import ApiContext
from vatsim_collector.config import SettingsError, load_settings
from vatsim_collector.errors.manager import ErrorManager
from vatsim_collector.logsetup import (
    QUIETED_LOGGERS,
    UVICORN_LOGGERS,
    configure_logging,
    uvicorn_log_config,
)
from vatsim_collector.pipeline.ingest import Outcome
from vatsim_collector.service import build_service_app
from vatsim_collector.simulator.world import SimulatedNetwork

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Logging is process-wide: leave it as the other tests expect it."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    loggers = [logging.getLogger(name) for name in (*QUIETED_LOGGERS, *UVICORN_LOGGERS)]
    states = [(lg, lg.level, list(lg.handlers), lg.propagate) for lg in loggers]
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    for logger, logger_level, logger_handlers, propagate in states:
        logger.setLevel(logger_level)
        logger.handlers[:] = logger_handlers
        logger.propagate = propagate
    structlog.configure(**saved)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert all(isinstance(line, dict) for line in lines)
    return lines


def assert_utc(stamp: str) -> None:
    assert ISO_UTC.match(stamp), stamp
    parsed = datetime.fromisoformat(stamp)
    assert parsed.utcoffset() == timedelta(0)


def service(database_url: str, tmp_path: Path, sim: str, **overrides: Any) -> ApiContext:
    settings = load_settings(
        database_url=database_url,
        status_url=f"{sim}/status.json",
        poll_interval=0.1,
        retry_attempts=1,
        spool_dir=tmp_path / "spool",
        airspace_enabled=False,
        **overrides,
    )
    ctx = build_service_app(settings).state.api_context
    assert isinstance(ctx, ApiContext)
    return ctx


def network() -> SimulatedNetwork:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    return SimulatedNetwork(seed=11, start=start)


async def test_a_cycle_logs_json_lines_naming_its_snapshot_and_correlation_id(
    database_url: str, tmp_path: Path
) -> None:
    out = io.StringIO()
    configure_logging("INFO", "json", stream=out)
    with running_simulator(network=network(), speed=0) as sim:
        ctx = service(database_url, tmp_path, sim)
        assert ctx.events is not None
        assert ctx.errors is not None
        poller = ctx.errors.poller
        assert poller is not None
        await ctx.events.start()
        try:
            result = await poller.poll_once()
            await ctx.events.bus.join()
            structlog.get_logger("tests").info("after the cycle", detail=1)
            # uvicorn set up as the service starts it, after the simulator's own server.
            uvicorn.Config(build_service_app, log_config=uvicorn_log_config(), log_level="info")
            logging.getLogger("uvicorn.error").info("a stdlib line")
        finally:
            await ctx.events.stop(30)
            await poller.client.aclose()
            ctx.db.dispose()

    assert result is not None
    assert result.outcome is Outcome.INGESTED
    assert result.update_timestamp is not None
    snapshot = result.update_timestamp.isoformat()
    correlation_id = result.events[0].id
    assert all(e.correlation_id == correlation_id for e in result.events[1:])
    lines = json_lines(out)
    for line in lines:
        assert_utc(line["timestamp"])
        assert {"event", "level", "logger"} <= line.keys()
    # The feed client's per-request lines (whole URLs) are kept out at INFO.
    assert not [line for line in lines if line["logger"] == "httpx2"]
    cycle = [line for line in lines if line["event"] == "snapshot processed"]
    assert len(cycle) == 1
    assert cycle[0]["snapshot"] == snapshot
    assert cycle[0]["correlation_id"] == correlation_id
    assert cycle[0]["logger"] == "vatsim_collector.pipeline.poller"
    assert cycle[0]["level"] == "info"
    assert cycle[0]["outcome"] == "ingested"
    (after,) = [line for line in lines if line["event"] == "after the cycle"]
    assert after["detail"] == 1
    (stdlib,) = [line for line in lines if line["event"] == "a stdlib line"]
    assert stdlib["logger"] == "uvicorn.error"
    assert stdlib["level"] == "info"
    for line in (after, stdlib):
        assert "snapshot" not in line
        assert "correlation_id" not in line


async def test_lines_from_the_ingest_thread_name_the_snapshot_too(
    database_url: str, tmp_path: Path
) -> None:
    out = io.StringIO()
    configure_logging("INFO", "json", stream=out)
    with running_simulator(network=network(), speed=0) as sim:
        # More pilots than the network has: the sanity gate quarantines every snapshot.
        ctx = service(database_url, tmp_path, sim, sanity_min_pilots=1_000_000)
        assert ctx.errors is not None
        assert ctx.errors.poller is not None
        poller = ctx.errors.poller
        try:
            result = await poller.poll_once()
        finally:
            await poller.client.aclose()
            ctx.db.dispose()
    assert result is not None
    assert result.outcome is Outcome.QUARANTINED
    assert result.update_timestamp is not None
    lines = json_lines(out)
    (held,) = [line for line in lines if line["event"] == "snapshot quarantined"]
    assert held["logger"] == "vatsim_collector.pipeline.ingest"
    assert held["snapshot"] == result.update_timestamp.isoformat()
    # Its snapshot.received event is not made yet when the gate speaks.
    assert "correlation_id" not in held
    (done,) = [line for line in lines if line["event"] == "snapshot processed"]
    assert done["correlation_id"] == result.events[0].id
    assert done["outcome"] == "quarantined"


def test_console_format_when_forced() -> None:
    out = io.StringIO()
    configure_logging("INFO", "console", stream=out)
    structlog.get_logger("tests").info("hello there", key="value")
    logging.getLogger("alembic.runtime.migration").warning("from the stdlib")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    for line in lines:
        with pytest.raises(json.JSONDecodeError):
            json.loads(line)
        assert_utc(line.split(" ", 1)[0])
    assert "hello there" in lines[0]
    assert "key=value" in lines[0]
    assert "info" in lines[0]
    assert "from the stdlib" in lines[1]
    assert "warning" in lines[1]
    assert "\x1b[" not in out.getvalue(), "no colours outside a terminal"


def test_auto_is_json_unless_on_a_terminal() -> None:
    piped = io.StringIO()
    configure_logging("INFO", stream=piped)
    structlog.get_logger("tests").info("piped")
    assert json_lines(piped)[0]["event"] == "piped"

    terminal = Terminal()
    configure_logging("INFO", "auto", stream=terminal)
    structlog.get_logger("tests").info("on a terminal")
    text = terminal.getvalue()
    assert "on a terminal" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])
    assert not piped.getvalue().count("on a terminal"), "a second call replaces the first"


def test_the_level_filters_both_structlog_and_the_stdlib() -> None:
    out = io.StringIO()
    configure_logging("WARNING", "json", stream=out)
    structlog.get_logger("tests").info("quiet")
    logging.getLogger("uvicorn.error").info("quiet too")
    structlog.get_logger("tests").warning("loud")
    assert [line["event"] for line in json_lines(out)] == ["loud"]


def test_an_error_line_carries_no_secret() -> None:
    out = io.StringIO()
    configure_logging("INFO", "json", stream=out)
    ErrorManager(None).record(
        ConnectionError("could not reach postgresql://collector:hunter2@db.internal/vatsim"),
        service="database",
        operation="connect",
        context={"headers": {"Authorization": "Bearer s3cr3t-token"}},
    )
    text = out.getvalue()
    (line,) = json_lines(out)
    assert line["event"] == "error recorded"
    assert "hunter2" not in text
    assert "s3cr3t-token" not in text


def test_log_format_is_a_validated_setting() -> None:
    assert load_settings().log_format == "auto"
    assert load_settings(log_format="json").log_format == "json"
    with pytest.raises(SettingsError, match="log_format"):
        load_settings(log_format="xml")
