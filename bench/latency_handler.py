"""The handler module of ``bench/stream_latency_bench.py``
(``VATSIM_HANDLER_MODULES=latency_handler``).

``latency`` wants every event and appends ``<event id> <unix seconds when handled>`` to the file
named by ``LATENCY_FILE``. The event id is a UUIDv7: its first 48 bits are the millisecond the
ingest made the event, inside the snapshot's transaction, just before the commit.
"""

from __future__ import annotations

import os
import time

from vatsim_collector.events.event import Event
from vatsim_collector.events.subscription import Handler
from vatsim_collector.pipeline.handlers import HandlerContext, HandlerRegistry


def make_latency(context: HandlerContext) -> Handler:
    path = os.environ["LATENCY_FILE"]

    async def latency(event: Event) -> None:
        line = f"{event.id} {time.time():.6f}\n".encode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    return latency


def register(registry: HandlerRegistry) -> None:
    registry.add("latency", make_latency, "*")
