"""Handlers the worker tests register through ``VATSIM_HANDLER_MODULES=worker_handlers``.

They are steered, and report, through files in the directory named by ``WORKER_TEST_DIR``,
because they run in other processes (workers, a collector serving the API):

* ``flaky`` fails while ``<dir>/broken`` exists; otherwise it appends the event id to
  ``<dir>/flaky.effects`` -- its one effect, counted by the test;
* ``slow`` appends ``{"id", "pid", "at"}`` to ``<dir>/slow.attempts`` as each call starts, then
  sleeps the seconds written in ``<dir>/slow.seconds`` (none: no sleep).

Both want ``pilot.*`` events only. This is also the documented shape of a handler module.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from vatsim_collector.events.event import Event
from vatsim_collector.events.subscription import Handler
from vatsim_collector.pipeline.handlers import HandlerContext, HandlerRegistry

DIRECTORY = "WORKER_TEST_DIR"


def _directory() -> Path:
    return Path(os.environ[DIRECTORY])


def _append(path: Path, line: str) -> None:
    # One write per line with O_APPEND: lines from several processes never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


class Broken(RuntimeError):
    pass


def make_flaky(context: HandlerContext) -> Handler:
    directory = _directory()

    async def flaky(event: Event) -> None:
        if (directory / "broken").exists():
            raise Broken(f"flaky is broken for {event.type}")
        _append(directory / "flaky.effects", event.id)

    return flaky


def make_slow(context: HandlerContext) -> Handler:
    directory = _directory()

    async def slow(event: Event) -> None:
        _append(
            directory / "slow.attempts",
            json.dumps({"id": event.id, "pid": os.getpid(), "at": time.time()}),
        )
        seconds = directory / "slow.seconds"
        if seconds.exists():
            await asyncio.sleep(float(seconds.read_text()))

    return slow


def register(registry: HandlerRegistry) -> None:
    registry.add("flaky", make_flaky, "pilot.*")
    registry.add("slow", make_slow, "pilot.*")
