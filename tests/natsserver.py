"""A NATS server with JetStream of the test's own: a free loopback port, a store directory under
the test's tmp_path, started and stopped by PID (never the shared server on 4222).

``NatsServer.stop`` and ``start`` may be called again and again: a restart keeps the port and
the store, as a restarted production server would. The server is always stopped when the
``nats_server`` block ends, failing or not.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg

BINARY_NAMES = ("nats-server", "/usr/sbin/nats-server")


def nats_binary() -> str | None:
    for name in BINARY_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


@dataclass
class NatsServer:
    binary: str
    store: Path
    log_path: Path
    port: int = field(default_factory=_free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 15.0) -> None:
        if self.running:
            return
        self.starts += 1
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-js",
                    "-sd",
                    str(self.store),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while not _accepts(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"nats-server did not start:\n{self.output()}")
            time.sleep(0.05)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Stop the server by its PID (SIGTERM: in order; SIGKILL: at once)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        # The port is free again once nothing answers on it.
        deadline = time.monotonic() + timeout
        while _accepts(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart(self) -> None:
        self.stop()
        self.start()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


async def read_stream(url: str, stream: str, subjects: str = ">", wait: float = 10.0) -> list[Msg]:
    """Every message the stream holds on ``subjects``, in stream order (an ordered consumer)."""
    nc = await nats.connect(url, allow_reconnect=False)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        total = info.state.messages
        if total == 0:
            return []
        sub = await js.subscribe(subjects, stream=stream, ordered_consumer=True)
        try:
            out: list[Msg] = []
            while len(out) < total:
                try:
                    out.append(await sub.next_msg(timeout=wait))
                except TimeoutError:
                    break  # fewer on these subjects than in the stream
            return out
        finally:
            await sub.unsubscribe()
    finally:
        await nc.close()


@contextlib.contextmanager
def nats_server(tmp_path: Path, *, start: bool = True) -> Iterator[NatsServer]:
    """A server of the test's own (started unless ``start`` is false); skips the test when no
    nats-server binary is installed."""
    binary = nats_binary()
    if binary is None:
        pytest.skip("nats-server is not installed")
    folder = tmp_path / f"nats-{_free_port()}"
    folder.mkdir(parents=True)
    server = NatsServer(binary, folder / "store", folder / "server.log")
    try:
        if start:
            server.start()
        yield server
    finally:
        server.stop()
