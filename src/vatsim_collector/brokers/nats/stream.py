"""JetStream streams: what a stream should be, and making the server's stream so.

``ensure_stream`` creates the stream, or updates the settings this code owns (subjects,
duplicate window, age limit, description) on one that exists and leaves the rest (an operator's
byte limit, say) alone. A stream whose storage differs cannot be changed in place: that is
refused with a message saying so rather than silently recreated, since it holds events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig, StreamInfo
from nats.js.errors import NotFoundError

from vatsim_collector.config import Settings
from vatsim_collector.errors.exceptions import ConfigurationError

__all__ = ["StreamMisconfigured", "StreamSpec", "ensure_stream", "events_stream"]

DAY_SECONDS = 86_400.0


class StreamMisconfigured(ConfigurationError):
    """The server's stream cannot be made to match the settings without losing its events."""


@dataclass(frozen=True)
class StreamSpec:
    """A stream as this code wants it: file storage, limits retention, old messages discarded.

    ``duplicate_window_seconds``: how long the server remembers ``Nats-Msg-Id`` headers and
    drops a message whose id it saw; ``max_age_seconds`` 0 keeps messages until removed.
    """

    name: str
    subjects: tuple[str, ...]
    duplicate_window_seconds: float
    max_age_seconds: float = 0.0
    description: str = ""

    def __post_init__(self) -> None:
        if not self.subjects:
            raise ValueError(f"stream {self.name} needs at least one subject")
        if self.duplicate_window_seconds <= 0:
            raise ValueError("the duplicate window must be positive")
        if 0 < self.max_age_seconds < self.duplicate_window_seconds:
            raise ConfigurationError(
                f"stream {self.name}: the age limit ({self.max_age_seconds:g} s) is shorter than"
                f" the duplicate window ({self.duplicate_window_seconds:g} s)"
            )

    def config(self) -> StreamConfig:
        return StreamConfig(
            name=self.name,
            description=self.description or None,
            subjects=list(self.subjects),
            retention=RetentionPolicy.LIMITS,
            discard=DiscardPolicy.OLD,
            storage=StorageType.FILE,
            max_age=self.max_age_seconds,
            duplicate_window=self.duplicate_window_seconds,
        )

    def matches(self, config: StreamConfig) -> bool:
        """Whether the settings this spec owns are already those of ``config``."""
        return (
            sorted(config.subjects or []) == sorted(self.subjects)
            and math.isclose(config.duplicate_window or 0.0, self.duplicate_window_seconds)
            and math.isclose(config.max_age or 0.0, self.max_age_seconds)
            and (config.description or "") == self.description
        )


def events_stream(settings: Settings) -> StreamSpec:
    """The stream the outbox relay publishes to: every subject under the prefix."""
    return StreamSpec(
        name=settings.nats_stream,
        subjects=(f"{settings.nats_subject_prefix}.>",),
        duplicate_window_seconds=settings.nats_duplicate_window_seconds,
        max_age_seconds=settings.nats_stream_max_age_days * DAY_SECONDS,
        description="vatsim-collector domain events (docs/events-stream.md)",
    )


async def ensure_stream(js: JetStreamContext, spec: StreamSpec) -> StreamInfo:
    """Create the stream or bring its settings in line with ``spec``; its info."""
    try:
        info = await js.stream_info(spec.name)
    except NotFoundError:
        return await js.add_stream(spec.config())
    current = info.config
    # nats-py reads the storage back as a plain string.
    storage = str(getattr(current.storage, "value", current.storage))
    if current.storage is not None and storage != StorageType.FILE.value:
        raise StreamMisconfigured(
            f"stream {spec.name} exists with {storage} storage; this collector needs file"
            " storage, and the storage of a stream cannot be changed in place"
        )
    if spec.matches(current):
        return info
    wanted = spec.config()
    return await js.update_stream(
        replace(
            current,
            subjects=wanted.subjects,
            duplicate_window=wanted.duplicate_window,
            max_age=wanted.max_age,
            description=wanted.description,
        )
    )
