"""The event handlers, known by name: the built-in ones and those registered by modules.

One registry serves every process that runs or replays a handler: the collector's in-process
bus (``pipeline.event_layer``), the ``worker`` command that runs handlers as JetStream
consumers (``pipeline.worker``), and the API and ``events`` commands that replay dead letters.
A handler is therefore defined once -- its name, the event types it wants (fnmatch patterns such
as ``pilot.*``), whether it takes batches, its options -- and built wherever it runs by its
factory, from that process's settings and database.

Registering handlers of your own: name importable modules in ``VATSIM_HANDLER_MODULES``
(comma-separated); each must define ``register(registry)``, which calls
:meth:`HandlerRegistry.add` once per handler::

    from vatsim_collector.events.event import Event
    from vatsim_collector.pipeline.handlers import HandlerContext, HandlerRegistry

    def register(registry: HandlerRegistry) -> None:
        registry.add("arrivals", make_arrivals, "pilot.disconnected", timeout=30.0)

    def make_arrivals(context: HandlerContext):
        async def arrivals(event: Event) -> None:
            ...  # context.db is the process's DatabaseService, context.settings its settings
        return arrivals

A handler may see an event more than once (a worker killed before its acknowledgement, a
replayed dead letter): it must be idempotent, as the built-in ones are.
"""

from __future__ import annotations

import asyncio
import importlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from vatsim_collector.config import Settings
from vatsim_collector.errors.exceptions import ConfigurationError
from vatsim_collector.errors.retry import RetryPolicy
from vatsim_collector.events.event import Event
from vatsim_collector.events.loggaps import EventLogWriter
from vatsim_collector.events.payloads import ControllerDisconnected, EventType, PilotDisconnected
from vatsim_collector.events.subscription import BatchHandler, Handler, HandlerOptions, Overflow
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.event_log import EventLog
from vatsim_collector.store.summaries_store import SummaryWriter

__all__ = [
    "EVENT_LOG_BATCH",
    "EVENT_LOG_HANDLER",
    "SUMMARIES_HANDLER",
    "HandlerContext",
    "HandlerFactory",
    "HandlerRegistry",
    "HandlerSpec",
    "UnknownHandler",
    "build_registry",
    "handler_options",
]

EVENT_LOG_HANDLER = "event-log"
SUMMARIES_HANDLER = "summaries"
# Rows per event-log transaction: the first snapshot of a session brings thousands of events.
EVENT_LOG_BATCH = 500

# Names become JetStream consumer names, breaker names and metric labels: kept to a safe set.
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,47}")


class UnknownHandler(ConfigurationError):
    """A handler named in the settings or on the command line is not registered."""


def handler_options(settings: Settings, **overrides: Any) -> HandlerOptions:
    """The configured defaults for a handler, with its own choices on top."""
    options = HandlerOptions(
        timeout=settings.event_handler_timeout,
        queue_size=settings.event_queue_size,
        block_timeout=settings.event_block_timeout,
        retry=RetryPolicy(
            attempts=settings.event_handler_retries,
            initial=0.2,
            maximum=5.0,
            total=max(settings.event_handler_timeout * settings.event_handler_retries, 1.0),
        ),
    )
    return replace(options, **overrides)


@dataclass(frozen=True)
class HandlerContext:
    """What a handler factory may use: the process's settings and database."""

    settings: Settings
    db: DatabaseService


HandlerFactory = Callable[[HandlerContext], Handler | BatchHandler]


@dataclass(frozen=True)
class HandlerSpec:
    """One registered handler: everything needed to run it anywhere."""

    name: str
    factory: HandlerFactory
    patterns: tuple[str, ...]
    batch: bool = False
    # HandlerOptions fields this handler sets itself, over the configured defaults.
    overrides: dict[str, Any] = field(default_factory=dict)

    def options(self, settings: Settings) -> HandlerOptions:
        return handler_options(settings, **self.overrides)

    def build(self, context: HandlerContext) -> Handler | BatchHandler:
        return self.factory(context)


class HandlerRegistry:
    def __init__(self) -> None:
        self._specs: dict[str, HandlerSpec] = {}

    def add(
        self,
        name: str,
        factory: HandlerFactory,
        *patterns: str,
        batch: bool = False,
        **options: Any,
    ) -> HandlerSpec:
        """Register the handler ``name``: ``factory(context)`` returns the async callable the
        events of ``patterns`` are delivered to -- one event per call, or with ``batch`` a list
        of events (set ``batch_size`` too). ``options`` are ``HandlerOptions`` fields
        (``timeout``, ``concurrency``, ``batch_size``, ``overflow``, ...) over the defaults."""
        if not _NAME.fullmatch(name):
            raise ConfigurationError(
                f"handler name {name!r} must be 1-48 of a-z, 0-9, '_' and '-', starting with a"
                " letter or digit"
            )
        if name in self._specs:
            raise ConfigurationError(f"a handler called {name!r} is already registered")
        if not patterns:
            raise ConfigurationError(f"handler {name!r} subscribes to no event type")
        unknown = set(options) - set(HandlerOptions.__dataclass_fields__)
        if unknown:
            raise ConfigurationError(f"handler {name!r}: unknown options {sorted(unknown)}")
        spec = HandlerSpec(name, factory, tuple(patterns), batch, dict(options))
        self._specs[name] = spec
        return spec

    def get(self, name: str) -> HandlerSpec:
        try:
            return self._specs[name]
        except KeyError:
            known = ", ".join(sorted(self._specs)) or "none"
            raise UnknownHandler(f"no handler called {name!r} (registered: {known})") from None

    def names(self) -> list[str]:
        return sorted(self._specs)

    def __iter__(self) -> Iterator[HandlerSpec]:
        return iter(list(self._specs.values()))

    def __contains__(self, name: object) -> bool:
        return name in self._specs


# -- the built-in handlers ---------------------------------------------------------------------


def _summaries(context: HandlerContext) -> Handler:
    writer = SummaryWriter(context.db)

    # Written once the flight or controller session has ended; an upsert on its id, so a
    # redelivered or replayed event rewrites the same row.
    async def summarise(event: Event) -> None:
        payload = event.payload
        if isinstance(payload, PilotDisconnected):
            await asyncio.to_thread(writer.flight, payload.flight_id)
        elif isinstance(payload, ControllerDisconnected):
            await asyncio.to_thread(writer.controller, payload.session_id)

    return summarise


def _event_log(context: HandlerContext) -> BatchHandler:
    # Rows are inserted ignoring ids already stored: a redelivered event writes nothing twice.
    log = EventLog(context.db, types=context.settings.event_log_type_list)
    return EventLogWriter(log, EVENT_LOG_HANDLER)


def _add_builtins(registry: HandlerRegistry, settings: Settings) -> None:
    types = settings.event_log_type_list
    if types:
        # The log is the history every other handler can be back-filled from: in-process it
        # waits for room rather than shedding, within the configured bound, and marks what it
        # still lost.
        registry.add(
            EVENT_LOG_HANDLER,
            _event_log,
            *types,
            batch=True,
            overflow=Overflow.BLOCK,
            batch_size=EVENT_LOG_BATCH,
        )
    registry.add(
        SUMMARIES_HANDLER,
        _summaries,
        EventType.PILOT_DISCONNECTED.value,
        EventType.CONTROLLER_DISCONNECTED.value,
    )


def build_registry(settings: Settings, modules: Sequence[str] | None = None) -> HandlerRegistry:
    """The built-in handlers, then those of ``modules`` (default: ``VATSIM_HANDLER_MODULES``),
    each module's ``register(registry)`` called in order."""
    registry = HandlerRegistry()
    _add_builtins(registry, settings)
    for name in settings.handler_module_list if modules is None else modules:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ConfigurationError(
                f"VATSIM_HANDLER_MODULES: module {name!r} cannot be imported: {exc}"
            ) from exc
        register = getattr(module, "register", None)
        if not callable(register):
            raise ConfigurationError(
                f"VATSIM_HANDLER_MODULES: module {name!r} has no register(registry) function"
            )
        register(registry)
    return registry
