"""Ingests recorded snapshot files in update-timestamp order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from vatsim_collector.errors.exceptions import DataRejected
from vatsim_collector.events.bus import EventBus
from vatsim_collector.feed.body import read_document_file
from vatsim_collector.pipeline.ingest import DatabaseUnavailable, Ingestor, IngestResult, Outcome

TRANSCEIVERS_MARK = "transceivers"

# The live collector's default bound on a decompressed document (settings.max_document_bytes).
DEFAULT_MAX_BYTES = 64 * 1024**2


class _GeneralOnly(msgspec.Struct):
    update_timestamp: datetime | None = None


class _Probe(msgspec.Struct):
    general: _GeneralOnly | None = None


_probe = msgspec.json.Decoder(_Probe)


@dataclass
class ReplayFile:
    path: Path
    raw: bytes
    update_timestamp: datetime | None
    transceivers: Path | None = None
    limit: int = DEFAULT_MAX_BYTES


@dataclass
class ReplayReport:
    problems: list[tuple[str, str]] = field(default_factory=list)
    # Set when the database went away: the files after it were not tried.
    aborted: bool = False


def read_bytes(path: Path, limit: int = DEFAULT_MAX_BYTES) -> bytes:
    """A recorded document, gunzipped if it is gzip, refused past ``limit`` bytes: a gzip
    bomb among the files costs that file, not the machine's memory."""
    return read_document_file(path, limit)


def _is_transceivers(path: Path) -> bool:
    return TRANSCEIVERS_MARK in path.name


def _matching_transceivers(path: Path) -> Path | None:
    """``vatsim-data-X.json`` pairs with ``transceivers-data-X.json`` in the same folder."""
    if "vatsim-data" not in path.name:
        return None
    candidate = path.with_name(path.name.replace("vatsim-data", "transceivers-data"))
    return candidate if candidate.is_file() else None


def collect_files(inputs: Sequence[Path]) -> list[Path]:
    found: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found.extend(
                p
                for p in sorted(item.iterdir())
                if p.is_file()
                and (p.name.endswith(".json") or p.name.endswith(".json.gz"))
                and not _is_transceivers(p)
            )
        else:
            found.append(item)
    return found


def _timestamp(raw: bytes) -> datetime | None:
    try:
        probe = _probe.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
        return None
    if probe.general is None or probe.general.update_timestamp is None:
        return None
    ts = probe.general.update_timestamp
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


_UNREADABLE = (OSError, DataRejected)


def order_files(
    paths: Iterable[Path], report: ReplayReport, *, limit: int = DEFAULT_MAX_BYTES
) -> list[ReplayFile]:
    """Read every file once; undecodable ones sort first so they are reported, not lost."""
    files: list[ReplayFile] = []
    for path in paths:
        try:
            raw = read_bytes(path, limit)
        except _UNREADABLE as exc:
            report.problems.append((str(path), f"cannot read: {exc}"))
            continue
        files.append(
            ReplayFile(path, raw, _timestamp(raw), _matching_transceivers(path), limit=limit)
        )
    epoch = datetime.min.replace(tzinfo=UTC)
    files.sort(key=lambda f: (f.update_timestamp or epoch, str(f.path)))
    return files


def _transceivers_of(item: ReplayFile, report: ReplayReport) -> bytes | None:
    if item.transceivers is None:
        return None
    try:
        return read_bytes(item.transceivers, item.limit)
    except _UNREADABLE as exc:
        report.problems.append((str(item.transceivers), f"cannot read: {exc}"))
        return None


def _ingest_file(ingestor: Ingestor, item: ReplayFile, report: ReplayReport) -> IngestResult | None:
    """Ingest one file; a file that fails is reported and the replay goes on. Only a database
    that cannot be reached stops it (``report.aborted``): every later file would fail too."""
    try:
        result = ingestor.ingest(
            item.raw,
            transceivers_raw=_transceivers_of(item, report),
            fetched_at=datetime.now(UTC),
            source=str(item.path),
        )
    except DatabaseUnavailable as exc:
        report.problems.append((str(item.path), f"not stored: {exc}"))
        report.aborted = True
        return None
    except Exception as exc:
        report.problems.append((str(item.path), f"failed: {type(exc).__name__}"))
        return None
    if result.outcome in (Outcome.REJECTED, Outcome.QUARANTINED, Outcome.HELD):
        report.problems.append((str(item.path), f"{result.outcome}: {result.reason}"))
    if result.transceivers_problem is not None and item.transceivers is not None:
        report.problems.append((str(item.transceivers), f"rejected: {result.transceivers_problem}"))
    if result.records_dropped:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(result.drop_reasons.items()))
        dropped = f"{result.records_dropped} records dropped: {reasons}"
        report.problems.append((str(item.path), dropped))
    return result


def replay(
    ingestor: Ingestor,
    files: Sequence[ReplayFile],
    report: ReplayReport,
    *,
    advance: Callable[[], None] | None = None,
) -> None:
    """Ingest ``files`` in order, without publishing events."""
    for item in files:
        _ingest_file(ingestor, item, report)
        if report.aborted:
            return
        if advance is not None:
            advance()


async def replay_to_bus(
    ingestor: Ingestor,
    files: Sequence[ReplayFile],
    report: ReplayReport,
    bus: EventBus,
    *,
    advance: Callable[[], None] | None = None,
) -> None:
    """Ingest ``files`` in order and publish each snapshot's events, as the service would.

    Ingest runs in a thread. Each snapshot's handlers finish before the next snapshot is
    ingested: a handler that reads the database (the summaries read an ended flight) then sees
    it as of its own snapshot on every run, not as of whichever later snapshot it raced with;
    so replays are repeatable, and the bulk path (``bulk_replay``) can equal them."""
    for item in files:
        result = await asyncio.to_thread(_ingest_file, ingestor, item, report)
        if report.aborted:
            return
        if result is not None:
            await bus.publish_many(result.events)
            await bus.join()
        if advance is not None:
            advance()
