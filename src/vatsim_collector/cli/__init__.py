"""The ``vatsim-collector`` command: one module per command group (``events``, ``privacy``),
what they share in ``_common``. May import anything; nothing imports it but ``__main__``."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vatsim_collector.cli._common import DatabaseUrl, configuration_errors, settings_or_exit
from vatsim_collector.cli.events import events_app
from vatsim_collector.cli.export import export
from vatsim_collector.cli.privacy import forget
from vatsim_collector.cli.worker import worker

if TYPE_CHECKING:
    from vatsim_collector.logsetup import LogFormat

app = typer.Typer(
    help="Record the VATSIM network into durable history and serve it over HTTP.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(events_app, name="events")
app.command("forget")(forget)
app.command("worker")(worker)
app.command("export")(export)


def _configure_logging(level: str, log_format: LogFormat = "auto") -> None:
    from vatsim_collector.logsetup import configure_logging

    configure_logging(level, log_format)


@app.command()
def run(
    database_url: DatabaseUrl = None,
    status_url: Annotated[
        str | None,
        typer.Option("--status-url", help="Feed status.json URL (env VATSIM_STATUS_URL)."),
    ] = None,
    host: Annotated[str | None, typer.Option("--host", help="API bind address.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="API port.")] = None,
    poll_interval: Annotated[
        float | None, typer.Option("--poll-interval", help="Seconds between polls (≥15 live).")
    ] = None,
) -> None:
    """Collect the live feed into the database and serve the API."""
    settings = settings_or_exit(
        database_url=database_url,
        status_url=status_url,
        api_host=host,
        api_port=port,
        poll_interval=poll_interval,
    )
    _configure_logging(settings.log_level, settings.log_format)
    from vatsim_collector.service import CollectionStopped, run_service

    with configuration_errors():
        try:
            run_service(settings)
        except CollectionStopped as exc:
            # Logged already; a non-zero exit lets a supervisor (systemd, Kubernetes) restart.
            typer.echo(f"collection stopped: {exc}", err=True)
            raise typer.Exit(3) from None


@app.command()
def serve(
    database_url: DatabaseUrl = None,
    host: Annotated[str | None, typer.Option("--host", help="API bind address.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="API port.")] = None,
) -> None:
    """Serve the API alone from a database a collector (`run`) writes: no collection, no
    migrations. Any number may serve one PostgreSQL database; on SQLite, one machine.

    Refuses to start if the database's schema is not this version's (run `db upgrade`)."""
    settings = settings_or_exit(database_url=database_url, api_host=host, api_port=port)
    _configure_logging(settings.log_level, settings.log_format)
    from vatsim_collector.errors.exceptions import StorageUnavailable
    from vatsim_collector.service import serve_api

    with configuration_errors():
        try:
            serve_api(settings)
        except StorageUnavailable as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None


@app.command()
def replay(
    paths: Annotated[
        list[Path], typer.Argument(help="Snapshot files (.json or .json.gz) or folders of them.")
    ],
    database_url: DatabaseUrl = None,
    progress: Annotated[
        bool | None,
        typer.Option("--progress/--no-progress", help="Progress bar (default: on a terminal)."),
    ] = None,
    bulk: Annotated[
        bool | None,
        typer.Option(
            "--bulk/--no-bulk",
            help="Back-fill path: several snapshots per transaction, files read by worker "
            "processes, resumable (default: from --bulk-threshold files on).",
        ),
    ] = None,
    bulk_threshold: Annotated[
        int, typer.Option("--bulk-threshold", min=1, help="Files from which --bulk is the default.")
    ] = 50,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Snapshots per transaction with --bulk.")
    ] = 20,
) -> None:
    """Ingest recorded snapshots in timestamp order and print a JSON summary line.

    A file named vatsim-data-X.json is paired with transceivers-data-X.json beside it.
    Exits non-zero only if no file could be ingested at all. A bulk replay gives the same
    database as one file at a time; interrupted, it is re-run and skips what is stored.
    """
    settings = settings_or_exit(database_url=database_url)
    _configure_logging(
        "ERROR", settings.log_format
    )  # problems are reported once, below, not also as log lines
    from vatsim_collector.pipeline.event_layer import STOP_TIMEOUT_SECONDS, build_event_layer
    from vatsim_collector.pipeline.ingest_setup import open_ingestor
    from vatsim_collector.pipeline.replay import (
        ReplayReport,
        collect_files,
        order_files,
        replay_to_bus,
    )

    report = ReplayReport()
    collected = collect_files(paths)
    limit = settings.max_document_bytes
    if bulk if bulk is not None else len(collected) >= bulk_threshold:
        from vatsim_collector.pipeline import bulk_replay as bulk_path

        readers = bulk_path.start_readers()  # forked before the database has threads
        ordered = bulk_path.order_probed(bulk_path.probe_all(collected, readers, limit), report)
        total = len(ordered)
    else:
        readers = None
        files = order_files(collected, report, limit=limit)
        total = len(files)
    with configuration_errors():
        ingestor, engine = open_ingestor(settings)
    ingestor.stats.snapshots_rejected += len(report.problems)
    ingestor.readers_on_other_threads = False  # no API here: no live view to publish
    # Replayed history feeds the event log (and any handler) exactly as live collection does;
    # a bulk replay writes the log and summaries itself, in its transactions.
    registry = None if readers is None else bulk_path.bus_registry(settings)
    layer = build_event_layer(settings, ingestor.db, registry=registry)
    bulk_run = (
        None
        if readers is None
        else bulk_path.BulkReplay(ingestor, report, settings, batch_size=batch_size)
    )

    async def run_all(advance: Callable[[int], None] | None) -> None:
        await layer.start()
        try:
            if readers is not None and bulk_run is not None:
                await bulk_path.bulk_replay_to_bus(
                    bulk_run, ordered, readers, layer.bus, limit=limit, advance=advance
                )
            else:
                step = None if advance is None else (lambda: advance(1))
                await replay_to_bus(ingestor, files, report, layer.bus, advance=step)
        finally:
            await layer.stop(STOP_TIMEOUT_SECONDS)

    try:
        show = sys.stderr.isatty() if progress is None else progress
        if show and total:
            from vatsim_collector.pipeline.replay_progress import replay_progress

            with replay_progress() as bar:
                task = bar.add_task("replaying", total=total)
                asyncio.run(run_all(lambda n: bar.advance(task, n)))
        else:
            asyncio.run(run_all(None))
    finally:
        engine.dispose()
        if readers is not None:
            readers.shutdown(cancel_futures=True)
    for name, problem in report.problems:
        typer.echo(f"{name}: {problem}", err=True)
    stats: dict[str, Any] = dict(ingestor.stats.as_dict())
    stats["records_dropped_by_reason"] = ingestor.stats.records_dropped_by_reason
    if bulk_run is not None:
        stats["bulk"] = vars(bulk_run.stats)
    stats["events_published"] = sum(layer.bus.metrics.published.values())
    stats["events_dead_lettered"] = sum(
        m.dead_lettered for m in layer.bus.metrics.handlers.values()
    )
    typer.echo(json.dumps(stats, sort_keys=True))
    usable = stats["snapshots_ingested"] + stats["snapshots_duplicate"]
    usable += stats["snapshots_quarantined"]
    if usable == 0 or report.aborted:
        raise typer.Exit(1)


@app.command()
def simulate(
    port: Annotated[int, typer.Option("--port", help="Port to serve the fake feed on.")] = 8765,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    seed_snapshot: Annotated[
        Path | None, typer.Option("--seed-snapshot", help="A real v3 snapshot to start from.")
    ] = None,
    speed: Annotated[
        float, typer.Option("--speed", min=0.0, help="Feed ticks per 15 s of wall time.")
    ] = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: same seed, same feed.")] = 0,
    start: Annotated[
        datetime | None,
        typer.Option("--start", help="Simulated UTC time of the first document (default now)."),
    ] = None,
    fault_rate: Annotated[
        float,
        typer.Option(
            "--fault-rate",
            help="Probability (0..1) that a data/transceivers request is faulted; 0 = never.",
        ),
    ] = 0.0,
    fault_kinds: Annotated[
        str,
        typer.Option(
            "--fault-kinds",
            help="Comma-separated fault kinds to draw from: http5xx, timeout, truncated, "
            "invalid_json, non_v3, stale (default all; drip, gzip_bomb only when named).",
        ),
    ] = "all",
    fault_seed: Annotated[
        int, typer.Option("--fault-seed", help="Seed of the fault sequence (same seed, same).")
    ] = 0,
    fault_timeout: Annotated[
        float,
        typer.Option("--fault-timeout", help="Seconds a 'timeout' fault holds the response."),
    ] = 30.0,
    realistic_flights: Annotated[
        bool,
        typer.Option(
            "--realistic-flights",
            help="Fly real flights between real airports (takeoffs, landings, circuits, "
            "go-arounds, diversions) and serve their ground truth at GET /_sim/truth.",
        ),
    ] = False,
) -> None:
    """Serve a local fake VATSIM feed (status.json, vatsim-data.json, transceivers-data.json).

    With --fault-rate above 0, requests for the data and transceivers documents (never
    status.json) randomly fail; see GET/POST /_sim/faults to inspect or change this live.
    """
    from vatsim_collector.simulator.faults import FaultPlan, parse_fault_kinds

    if not 0.0 <= fault_rate <= 1.0:
        raise typer.BadParameter(
            f"{fault_rate} is not between 0 and 1 (allowed: 0 <= rate <= 1)",
            param_hint="'--fault-rate'",
        )
    try:
        kinds = parse_fault_kinds(fault_kinds)
    except ValueError as exc:
        raise typer.BadParameter(
            f"{fault_kinds!r}: {exc} (comma-separated)", param_hint="'--fault-kinds'"
        ) from None
    if not 0.0 < fault_timeout <= 3600.0:
        raise typer.BadParameter(
            f"{fault_timeout} is not in (0, 3600] seconds", param_hint="'--fault-timeout'"
        )
    plan = FaultPlan(rate=fault_rate, kinds=kinds, seed=fault_seed, timeout_seconds=fault_timeout)

    from vatsim_collector.simulator.server import serve_simulator

    begin = start.replace(tzinfo=UTC) if start and start.tzinfo is None else start
    serve_simulator(
        host=host,
        port=port,
        seed_snapshot=seed_snapshot,
        speed=speed,
        seed=seed,
        start=begin or datetime.now(UTC).replace(microsecond=0),
        faults=plan if plan.enabled else None,
        flights="realistic" if realistic_flights else "random",
    )


@app.command()
def demo(
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="Default sqlite:///data/demo.db."),
    ] = None,
    port: Annotated[int, typer.Option("--port", help="API port.")] = 8000,
    speed: Annotated[
        float,
        typer.Option(
            "--speed",
            min=0.1,
            help="Feed speed-up; above 1 the simulated clock runs ahead of the real one.",
        ),
    ] = 1.0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Run the simulator and the collector together, fully offline."""
    from vatsim_collector.service import run_demo

    settings = settings_or_exit(
        database_url=database_url or "sqlite:///data/demo.db",
        # Replaced by the simulator's own address once it has a port.
        status_url="http://127.0.0.1/status.json",
        api_port=port,
        poll_interval=max(15.0 / speed, 0.5),
    )
    _configure_logging(settings.log_level, settings.log_format)
    with configuration_errors():
        run_demo(settings, speed=speed, seed=seed)


@app.command()
def recompute(
    start: Annotated[
        datetime, typer.Option("--from", help="UTC start of the range (2026-01-01T00:00:00).")
    ],
    end: Annotated[datetime, typer.Option("--to", help="UTC end of the range.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Rebuild sector occupancy, ATC contacts, movements and summaries of every pilot session
    overlapping the range, from stored positions and transceivers; prints a JSON report.

    Uses the configured sector file, contact ranges, airports and movement settings: the same
    ones as live collection, or the results differ from what was stored live. With
    VATSIM_MOVEMENTS_ENABLED off, stored movements are left as they are."""
    settings = settings_or_exit(database_url=database_url)
    _configure_logging("WARNING", settings.log_format)
    start, end = (d if d.tzinfo else d.replace(tzinfo=UTC) for d in (start, end))
    if end < start:
        typer.echo("error: --to is before --from", err=True)
        raise typer.Exit(2)
    from vatsim_collector.airspace.engine import AirspaceEngine
    from vatsim_collector.airspace.setup import build_airspace
    from vatsim_collector.movements.setup import build_detector
    from vatsim_collector.pipeline.recompute import recompute as run_recompute
    from vatsim_collector.store.database import DatabaseService
    from vatsim_collector.store.migrate import upgrade

    with configuration_errors():
        airspace = build_airspace(settings)
        # A bad airports file stops here, before the recompute's transaction starts.
        build_detector(settings)
    engine = airspace.engine
    if engine is None:
        typer.echo("error: airspace analytics are disabled (VATSIM_AIRSPACE_ENABLED)", err=True)
        raise typer.Exit(2)
    db = DatabaseService.from_settings(settings)
    try:
        upgrade(db.engine)
        report = run_recompute(
            db,
            lambda: AirspaceEngine(
                engine.sectors, ranges=engine.ranges, exit_after=engine.exit_after
            ),
            start=start,
            end=end,
            missed_to_end=settings.missed_snapshots_to_end,
            detector_factory=lambda: build_detector(settings),
        )
    finally:
        db.dispose()
    typer.echo(json.dumps(report.as_dict(), sort_keys=True))


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseUrl = None) -> None:
    """Apply database migrations up to the latest revision."""
    settings = settings_or_exit(database_url=database_url)
    from vatsim_collector.store.engine import create_db_engine
    from vatsim_collector.store.migrate import current_revision, upgrade

    engine = create_db_engine(settings.database_url)
    try:
        upgrade(engine)
        typer.echo(f"database at revision {current_revision(engine)}")
    finally:
        engine.dispose()


def main() -> None:
    app()
