"""Logging set-up: structlog and stdlib logging through one renderer, JSON or console.

JSON lines (one object per line: ``timestamp`` in UTC ISO 8601, ``level``, ``logger``,
``event`` and the call's own keys) unless the output is a terminal, where lines are rendered
for people; ``log_format`` forces either. Records of libraries that use stdlib logging
(uvicorn, alembic, SQLAlchemy) go through the same processors and renderer, so a log file is
all one format. Keys bound with ``structlog.contextvars`` (the poller binds ``snapshot`` and
``correlation_id`` for each snapshot it handles) appear on every line logged meanwhile.

Nothing here logs settings, and messages are not scrubbed again: the error layer scrubs what
it logs before it logs it.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import Processor

LogFormat = Literal["auto", "json", "console"]

QUIETED_LOGGERS = ("alembic", "httpx2")
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


class _Handler(logging.StreamHandler[TextIO]):
    """The root handler this module installs; its type tells it apart from anyone else's."""


def _wants_json(log_format: LogFormat, stream: TextIO) -> bool:
    if log_format != "auto":
        return log_format == "json"
    isatty = getattr(stream, "isatty", None)
    return not (callable(isatty) and isatty())


def configure_logging(
    level: str, log_format: LogFormat = "auto", *, stream: TextIO | None = None
) -> logging.Handler:
    """Send structlog and stdlib logging at ``level`` and above to ``stream`` (stderr).

    Calling again replaces what an earlier call set up. Returns the installed root handler.
    """
    out = stream if stream is not None else sys.stderr
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    as_json = _wants_json(log_format, out)
    # Shared by both paths: structlog's own events, and stdlib records ("foreign" to it).
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    rendering: list[Processor] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if as_json:
        rendering += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        isatty = getattr(out, "isatty", None)
        colors = callable(isatty) and bool(isatty())
        # Without locals: a traceback's variables may hold a password or an API key.
        tracebacks = structlog.dev.RichTracebackFormatter(show_locals=False)
        rendering.append(
            structlog.dev.ConsoleRenderer(colors=colors, exception_formatter=tracebacks)
        )
    handler = _Handler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(processors=rendering, foreign_pre_chain=shared)
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    # Alembic narrates every migration step at INFO; only its problems matter at start-up.
    # httpx2 logs each request at INFO with its whole URL, which may carry credentials.
    for noisy in QUIETED_LOGGERS:
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        # Loggers are made at import time; caching would pin them to the first configuration.
        cache_logger_on_first_use=False,
    )
    return handler


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's ``log_config``: its loggers keep no handlers of their own and pass their
    records up to the root handler ``configure_logging`` installed, so they render alike.

    Without it uvicorn installs its own handlers and stops propagation (which also happens
    when another uvicorn server in the process, such as the demo's simulator, starts first).
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {name: {"handlers": [], "propagate": True} for name in UVICORN_LOGGERS},
    }
