"""``vatsim-collector serve`` as a subprocess, as a user starts it, always stopped by its PID;
and a reader of the answers several nodes give, to compare them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from hostile_feed import _executable, free_port, wait_until


@dataclass
class ApiNode:
    base: str
    log_path: Path
    exit_code: int | None = None

    def get(self, path: str, timeout: float = 5.0) -> httpx2.Response:
        return httpx2.get(f"{self.base}{path}", timeout=timeout)

    def json(self, path: str) -> Any:
        answer = self.get(path)
        assert answer.status_code == 200, (path, answer.status_code, answer.text)
        return answer.json()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def serve_command(database_url: str, port: int) -> list[str]:
    return [*_executable(), "serve", "--database-url", database_url, "--port", str(port)]


def serve_environment(workdir: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "VATSIM_LOG_FORMAT": "json",
        "VATSIM_LOG_LEVEL": "INFO",
        # Feed time runs behind the wall clock in the tests: not stale.
        "VATSIM_STALE_AFTER_SECONDS": "86400",
        "VATSIM_HEALTH_MIN_FREE_DISK_MB": "0",
        "VATSIM_SPOOL_DIR": str(workdir / "unused-spool"),
        **(env or {}),
    }


@contextlib.contextmanager
def running_api_node(
    database_url: str,
    workdir: Path,
    *,
    env: dict[str, str] | None = None,
    stop_timeout: float = 30.0,
) -> Iterator[ApiNode]:
    """``vatsim-collector serve`` on a free port; SIGTERM to its PID when the block ends
    (SIGKILL if it has not stopped within ``stop_timeout`` s), failing or not."""
    port = free_port()
    log_path = workdir / f"serve-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            serve_command(database_url, port),
            env=serve_environment(workdir, env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        node = ApiNode(f"http://127.0.0.1:{port}", log_path)
        try:
            up = wait_until(
                lambda: proc.poll() is not None or node.get("/health").status_code in (200, 503),
                timeout=60,
            )
            if not up or proc.poll() is not None:
                raise AssertionError(f"serve did not come up:\n{node.output()}")
            yield node
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                node.exit_code = proc.wait(timeout=stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                node.exit_code = proc.wait(timeout=10)
