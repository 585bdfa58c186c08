"""``vatsim-collector forget CID``: remove one member from everything stored (docs/architecture.md).

Prints the report as one JSON line. While a collector is running against the same database,
prefer the API's ``DELETE /api/members/{cid}``: it also makes that collector drop the member's
open sessions, which a separate process cannot (see ``store.forget``).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from vatsim_collector.cli._common import DatabaseUrl, settings_or_exit

MAX_CID = 99_999_999


def forget(
    cid: Annotated[int, typer.Argument(min=1, max=MAX_CID, help="The member's VATSIM CID.")],
    database_url: DatabaseUrl = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete or anonymise everything stored about member CID, in one transaction: sessions,
    flights, positions, plans, radio, airspace rows, summaries, events, dead letters, their
    records in held documents; error records stay, their cid, callsigns and names replaced.
    With VATSIM_ARCHIVE_DIR set, the member's rows are then removed from the archive files."""
    from vatsim_collector.logsetup import configure_logging
    from vatsim_collector.store.database import DatabaseService
    from vatsim_collector.store.forget import forget_member
    from vatsim_collector.store.migrate import upgrade

    settings = settings_or_exit(database_url=database_url)
    configure_logging(settings.log_level)  # to stderr: stdout is the report
    if not yes:
        typer.confirm(
            f"Permanently remove member {cid} from the database? This cannot be undone.",
            abort=True,
            err=True,
        )
    db = DatabaseService.from_settings(settings)
    try:
        upgrade(db.engine)
        report = forget_member(db, cid).as_dict()
    finally:
        db.dispose()
    if settings.archive_dir is not None:
        from vatsim_collector.store.archive_forget import forget_in_archive

        report["archive"] = forget_in_archive(
            settings.archive_dir, cid, compression_level=settings.archive_compression_level
        ).as_dict()
    typer.echo(json.dumps(report, sort_keys=True))
