"""``vatsim-collector worker``: run event handlers out of process, from the NATS events stream."""

from __future__ import annotations

from typing import Annotated

import typer

from vatsim_collector.cli._common import DatabaseUrl, configuration_errors, settings_or_exit


def worker(
    handlers: Annotated[
        list[str],
        typer.Option(
            "--handler",
            help="A registered handler to run (summaries, event-log, or one of"
            " VATSIM_HANDLER_MODULES); repeatable.",
            show_default=False,
        ),
    ],
    database_url: DatabaseUrl = None,
) -> None:
    """Run bus handlers as JetStream durable consumers until SIGTERM or SIGINT.

    Needs VATSIM_NATS_URL. Any number of workers may run the same handler: they share its
    events. Failures go to the same dead-letter queue as in-process handlers.
    """
    settings = settings_or_exit(database_url=database_url)
    if not settings.nats_enabled:
        typer.echo(
            "error: the worker consumes the NATS events stream: set VATSIM_NATS_URL", err=True
        )
        raise typer.Exit(2)
    from vatsim_collector.logsetup import configure_logging
    from vatsim_collector.pipeline.worker import run_worker

    configure_logging(settings.log_level, settings.log_format)
    with configuration_errors():
        run_worker(settings, handlers)
