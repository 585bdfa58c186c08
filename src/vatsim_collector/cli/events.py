"""``vatsim-collector events``: read the event log, inspect, replay and discard dead letters.

Replaying needs the handler a letter belongs to, so these commands build the same event layer
as the service (``pipeline.event_layer``); a letter of a handler this process does not run
is kept.
Output is JSON, one object per line, for scripts and ``jq``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vatsim_collector.cli._common import DatabaseUrl, settings_or_exit
from vatsim_collector.config import Settings

if TYPE_CHECKING:
    from vatsim_collector.pipeline.event_layer import EventLayer
    from vatsim_collector.store.database import DatabaseService

events_app = typer.Typer(help="The event log and the dead-letter queue.", no_args_is_help=True)
letters_app = typer.Typer(help="Inspect, replay and discard dead letters.", no_args_is_help=True)
events_app.add_typer(letters_app, name="dead-letters")


def _settings(database_url: str | None) -> Settings:
    from vatsim_collector.logsetup import configure_logging

    settings = settings_or_exit(database_url=database_url)
    configure_logging(
        settings.log_level, settings.log_format
    )  # to stderr: stdout is the commands' JSON
    return settings


def _echo(data: Any) -> None:
    typer.echo(json.dumps(data, sort_keys=True, default=str))


def _aware(value: datetime | None) -> datetime | None:
    # typer parses times without an offset; the option's help says they are UTC.
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _layer(settings: Settings) -> tuple[EventLayer, DatabaseService]:
    from vatsim_collector.pipeline.event_layer import build_event_layer
    from vatsim_collector.store.database import DatabaseService
    from vatsim_collector.store.migrate import upgrade

    db = DatabaseService.from_settings(settings)
    upgrade(db.engine)
    return build_event_layer(settings, db), db


@events_app.command("log")
def event_log(
    database_url: DatabaseUrl = None,
    start: Annotated[
        datetime | None, typer.Option("--from", help="Inclusive, UTC (e.g. 2026-01-01T00:00:00).")
    ] = None,
    end: Annotated[datetime | None, typer.Option("--to", help="Exclusive, UTC.")] = None,
    types: Annotated[
        list[str] | None, typer.Option("--type", help="Type or pattern (pilot.*); repeatable.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 1000,
) -> None:
    """Print logged events in time order, one JSON object per line."""
    layer, db = _layer(_settings(database_url))
    try:
        found = layer.log.iterate(start=_aware(start), end=_aware(end), types=types or None)
        for event in itertools.islice(found, limit):
            _echo(event.summary())
    finally:
        db.dispose()


@letters_app.command("list")
def list_letters(
    database_url: DatabaseUrl = None,
    handler: Annotated[str | None, typer.Option("--handler")] = None,
    event_type: Annotated[str | None, typer.Option("--type")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 100,
    offset: Annotated[int, typer.Option("--offset", min=0)] = 0,
) -> None:
    """One line per dead letter (without its event; ``show`` prints that), then a total."""
    layer, db = _layer(_settings(database_url))
    try:
        total, letters = layer.dead_letters.list(
            limit=limit, offset=offset, handler=handler, event_type=event_type
        )
        for letter in letters:
            data = letter.summary()
            event = data.pop("event")
            data["event_id"], data["event_type"] = event["id"], event["type"]
            _echo(data)
        _echo({"total": total, "shown": len(letters), "offset": offset})
    finally:
        db.dispose()


@letters_app.command("show")
def show_letter(letter_id: int, database_url: DatabaseUrl = None) -> None:
    """The whole dead letter, its event included."""
    layer, db = _layer(_settings(database_url))
    try:
        letter = layer.dead_letters.get(letter_id)
        if letter is None:
            typer.echo(f"error: no dead letter {letter_id}", err=True)
            raise typer.Exit(1)
        _echo(letter.summary())
    finally:
        db.dispose()


async def _replay(layer: EventLayer, ids: list[int]) -> list[dict[str, Any]]:
    await layer.start()
    try:
        results = []
        for letter_id in ids:
            result = await layer.bus.replay_dead_letter(letter_id)
            line: dict[str, Any] = {"id": letter_id, "outcome": result.outcome.value}
            if result.failure is not None:
                line["error_type"] = result.failure.error_type
                line["error_message"] = result.failure.error_message
            results.append(line)
        return results
    finally:
        await layer.stop(30.0)


@letters_app.command("replay")
def replay_letters(
    ids: Annotated[list[int] | None, typer.Argument(help="Letter ids.")] = None,
    all_letters: Annotated[bool, typer.Option("--all", help="Every pending letter.")] = False,
    handler: Annotated[str | None, typer.Option("--handler", help="With --all: only its.")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Deliver dead letters to their handlers again; each delivered one is removed.

    Exits 1 if any letter was not delivered (it is kept, with its attempts added)."""
    layer, db = _layer(_settings(database_url))
    try:
        chosen = _chosen(layer, ids, all_letters, handler)
        results = asyncio.run(_replay(layer, chosen))
    finally:
        db.dispose()
    for line in results:
        _echo(line)
    delivered = sum(1 for r in results if r["outcome"] == "delivered")
    _echo({"replayed": len(results), "delivered": delivered})
    if delivered < len(results):
        raise typer.Exit(1)


@letters_app.command("discard")
def discard_letters(
    ids: Annotated[list[int] | None, typer.Argument(help="Letter ids.")] = None,
    all_letters: Annotated[bool, typer.Option("--all", help="Every pending letter.")] = False,
    handler: Annotated[str | None, typer.Option("--handler", help="With --all: only its.")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Remove dead letters without delivering them. Exits 1 if an id was not found."""
    from vatsim_collector.store.dead_letters import DeadLetterBusy

    layer, db = _layer(_settings(database_url))
    missing = 0
    try:
        chosen = _chosen(layer, ids, all_letters, handler)
        for letter_id in chosen:
            try:
                found = layer.dead_letters.discard(letter_id)
            except DeadLetterBusy:
                found = False
            missing += not found
            _echo({"id": letter_id, "discarded": found})
    finally:
        db.dispose()
    if missing:
        raise typer.Exit(1)


def _chosen(
    layer: EventLayer, ids: list[int] | None, all_letters: bool, handler: str | None
) -> list[int]:
    if bool(ids) == all_letters:
        typer.echo("error: give letter ids or --all, not both", err=True)
        raise typer.Exit(2)
    if ids:
        return list(ids)
    chosen: list[int] = []
    while True:
        _, page = layer.dead_letters.list(limit=1000, offset=len(chosen), handler=handler)
        chosen.extend(letter.id for letter in page)
        if len(page) < 1000:
            return chosen
