"""``vatsim-collector export``: positions or transceivers of a time window to one Parquet or
CSV file, in the archive's layout (``store.archive_layout``); nothing is deleted.

Prints one JSON line (table, format, rows, bytes, path). A bad window or option ends with exit
status 2 before anything is read; the file appears only complete (written beside the target and
renamed), so an error never leaves a partial one.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from vatsim_collector.cli._common import DatabaseUrl, settings_or_exit


class ExportTable(StrEnum):
    positions = "positions"
    transceivers = "transceivers"


class ExportFormat(StrEnum):
    parquet = "parquet"
    csv = "csv"


def _moment(value: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        typer.echo(f"error: {option} {value!r} is not an ISO 8601 time", err=True)
        raise typer.Exit(2) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def export(
    start: Annotated[
        str, typer.Option("--from", help="UTC start, included (2026-01-01T00:00:00Z).")
    ],
    end: Annotated[str, typer.Option("--to", help="UTC end, excluded.")],
    table: Annotated[ExportTable, typer.Option("--table", help="What to export.")],
    file_format: Annotated[
        ExportFormat, typer.Option("--format", help="File format.")
    ] = ExportFormat.parquet,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            help="File to write (replaced if it exists); default TABLE-FROM-TO.FORMAT here.",
        ),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Write the positions or transceivers of snapshots from --from up to --to to one file, as
    retention's archive does (a time and the session keys on every row, no names)."""
    first, last = _moment(start, "--from"), _moment(end, "--to")
    if last <= first:
        typer.echo("error: --to must be after --from", err=True)
        raise typer.Exit(2)
    path = output or Path(
        f"{table.value}-{first:%Y%m%dT%H%M%SZ}-{last:%Y%m%dT%H%M%SZ}.{file_format.value}"
    )
    if not path.parent.is_dir():
        typer.echo(f"error: {path.parent} is not a directory", err=True)
        raise typer.Exit(2)
    if path.is_dir():
        typer.echo(f"error: {path} is a directory", err=True)
        raise typer.Exit(2)
    settings = settings_or_exit(database_url=database_url)
    from vatsim_collector.logsetup import configure_logging
    from vatsim_collector.store.archive import write_window
    from vatsim_collector.store.database import DatabaseService
    from vatsim_collector.store.migrate import upgrade
    from vatsim_collector.store.schema import snapshot_id_for

    configure_logging(settings.log_level, settings.log_format)  # to stderr: stdout is the report
    db = DatabaseService.from_settings(settings)
    try:
        upgrade(db.engine)
        written = write_window(
            db,
            table.value,
            snapshot_id_for(first),
            snapshot_id_for(last),
            path,
            file_format=file_format.value,
            compression_level=settings.archive_compression_level,
        )
    finally:
        db.dispose()
    report = {
        "table": table.value,
        "format": file_format.value,
        "rows": written.rows,
        "bytes": written.bytes,
        "path": str(written.path),
    }
    typer.echo(json.dumps(report, sort_keys=True))
