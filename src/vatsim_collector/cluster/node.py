"""This process as a node of the cluster: its name and its current role."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum


class Role(StrEnum):
    # Holds the leadership lock and stores snapshots.
    LEADER = "leader"
    # Runs the collector but waits: polls the feed for gap fill, takes over when the lock frees.
    STANDBY = "standby"
    # ``serve``: the API alone, reading the shared database.
    API = "api"
    # ``worker``: event handlers consuming the JetStream stream.
    WORKER = "worker"


@dataclass
class Node:
    """Read by the API and the registry on the event loop, changed by the elector; a plain
    attribute assignment, so a reader sees the old role or the new one."""

    name: str
    role: Role
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
