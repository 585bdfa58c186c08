"""Run the feed simulator over real HTTP in a background thread (the demo and the tests)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from vatsim_collector.simulator.server import SimulatedNetwork, create_simulator_app


@contextmanager
def running_simulator(
    *,
    seed: int = 1,
    speed: float = 0.0,
    network: SimulatedNetwork | None = None,
    startup_timeout: float = 10.0,
    host: str = "127.0.0.1",
    port: int = 0,
) -> Iterator[str]:
    """Yield the base URL (``http://127.0.0.1:PORT``) of a running simulator.

    ``speed=0`` only advances on ``POST /_sim/tick``, which keeps tests deterministic.
    """
    # Binding here and handing uvicorn the socket avoids the race of picking a free port,
    # closing it and hoping nobody else takes it before uvicorn binds again.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    port = sock.getsockname()[1]
    base_url = f"http://{host}:{port}"
    app = create_simulator_app(
        network if network is not None else SimulatedNetwork(seed=seed),
        speed=speed,
        base_url=base_url,
    )
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="simulator", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("simulator server did not start")
            time.sleep(0.01)
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
