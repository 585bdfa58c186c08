"""If collection dies anyway, the service says so and stops, so a supervisor restarts it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx2
import pytest

from test_service_e2e import free_port
from vatsim_collector.config import load_settings
from vatsim_collector.service import CollectionStopped, run_service


class Doom(BaseException):
    """Not an Exception: nothing in the loops may swallow it, as with a fault of the runtime."""


class DoomedTransport(httpx2.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        raise Doom("the runtime failed under the collector")


async def test_a_dead_collection_loop_stops_the_service_with_the_reason(
    database_url: str, tmp_path: Path
) -> None:
    settings = load_settings(
        database_url=database_url,
        status_url="http://127.0.0.1:9/status.json",
        spool_dir=tmp_path / "spool",
        api_port=free_port(),
        poll_interval=0.1,
    )
    with pytest.raises(CollectionStopped, match="fetch loop died: Doom"):
        # It must stop by itself; the bound only keeps a regression from hanging the suite.
        await asyncio.wait_for(
            asyncio.to_thread(run_service, settings, transport=DoomedTransport()), 120
        )
