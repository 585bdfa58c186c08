"""Write positions and transceivers to Parquet (or CSV) files, atomically and verified.

``write_window`` streams the rows of a snapshot-id window from the database into one file:
read in one consistent transaction (the rows counted are the rows written), written to a
temporary file beside the target, flushed to disk, its row count read back from the file's own
metadata and compared, and only then renamed into place. A crash leaves at most a hidden
``.tmp`` file, never a half file under the final name.

``DayArchive`` is retention's use of it: one file per UTC day and table under the archive
directory (``positions/positions-2026-01-01.parquet``). A day already archived is not
rewritten when the file holds every row the database still has for that day (a drop that was
interrupted, or a run that archived and then could not drop); it is rewritten when the database
holds every row of the file and more; any other difference is an error, and the day stays.
That happens only if snapshots of a day already archived and dropped are ingested later (a
replay of files never ingested before): merge them by hand, e.g. with ``export`` and DuckDB.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, Protocol

import structlog

from vatsim_collector.errors.exceptions import Category, CollectorError
from vatsim_collector.store.archive_layout import (
    LAYOUTS,
    Coordinates,
    InexactCoordinates,
    Layout,
)
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.partitions import day_bounds

if TYPE_CHECKING:
    import pyarrow as pa

    from vatsim_collector.config import Settings

log = structlog.get_logger(__name__)

FileFormat = Literal["parquet", "csv"]
# Rows fetched from the database at a time, and rows per Parquet row group: large groups
# compress better; a group of positions is a few tens of MB in memory while it is built.
FETCH_ROWS = 50_000
ROW_GROUP_ROWS = 500_000
DEFAULT_COMPRESSION_LEVEL = 9
FILE_MODE = 0o644


class ArchiveError(CollectorError):
    """A file could not be written, or what was written is not what the database holds."""

    category = Category.RESOURCE


@dataclass(frozen=True)
class Written:
    path: Path
    rows: int
    bytes: int


@dataclass(frozen=True)
class ArchivedDay:
    table: str
    day: date
    path: Path
    # Rows of the day in the database when it was archived; a drop checks it still has these.
    rows: int
    bytes: int
    # False when an existing file already held every row.
    written: bool
    seconds: float


class _Sink(Protocol):
    def write(self, batch: pa.RecordBatch) -> None: ...
    def close(self) -> None: ...


def write_window(
    db: DatabaseService,
    table: str,
    start_id: int,
    end_id: int,
    path: Path,
    *,
    file_format: FileFormat = "parquet",
    compression_level: int = DEFAULT_COMPRESSION_LEVEL,
) -> Written:
    """Write the rows of ``table`` with snapshot ids in [start_id, end_id) to ``path``.

    Replaces ``path`` atomically; on any error nothing is left behind and ArchiveError (or the
    database's own error) is raised."""
    layout = LAYOUTS[table]
    try:
        return _write(db, layout, start_id, end_id, path, file_format, compression_level, "decimal")
    except InexactCoordinates:
        # Rare (not seen in the real feed): keep every bit rather than round.
        log.warning("archive keeps coordinates as doubles", table=table, path=str(path))
        return _write(db, layout, start_id, end_id, path, file_format, compression_level, "double")


def _write(
    db: DatabaseService,
    layout: Layout,
    start_id: int,
    end_id: int,
    path: Path,
    file_format: FileFormat,
    compression_level: int,
    coordinates: Coordinates,
) -> Written:
    with atomic_file(path) as (temporary, stream):
        with db.read_consistent(f"archive.{layout.table}.read") as conn:
            expected = int(conn.execute(layout.count(start_id, end_id)).scalar_one())
            result = conn.execution_options(stream_results=True, yield_per=FETCH_ROWS).execute(
                layout.query(start_id, end_id)
            )
            sink = open_sink(stream, layout, file_format, compression_level, coordinates)
            rows = 0
            try:
                for page in result.partitions():
                    batch = layout.batch(page, coordinates)
                    sink.write(batch)
                    rows += batch.num_rows
            finally:
                sink.close()
        if rows != expected:
            raise ArchiveError(f"{layout.table}: read {rows} rows, the database counted {expected}")
        stream.flush()
        os.fsync(stream.fileno())
        stored = rows_in_file(temporary, file_format)
        if stored != rows:
            raise ArchiveError(f"{temporary.name}: the file holds {stored} rows, wrote {rows}")
    return Written(path, rows, path.stat().st_size)


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[tuple[Path, BinaryIO]]:
    """A temporary file beside ``path``, renamed to it if the block succeeds, else removed."""
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temporary = Path(name)
    try:
        # mkstemp makes it private; an archive is for analysts to read.
        os.fchmod(descriptor, FILE_MODE)
        with os.fdopen(descriptor, "wb") as stream:
            yield temporary, stream
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def open_sink(
    stream: BinaryIO,
    layout: Layout,
    file_format: FileFormat,
    compression_level: int,
    coordinates: Coordinates,
) -> _Sink:
    schema = layout.schema(coordinates)
    if file_format == "csv":
        import pyarrow.csv as pcsv

        return _CsvSink(pcsv.CSVWriter(stream, schema))
    return _ParquetSink(stream, schema, layout.parquet_options(coordinates), compression_level)


class _CsvSink:
    def __init__(self, writer: Any) -> None:
        self.writer = writer

    def write(self, batch: pa.RecordBatch) -> None:
        self.writer.write_batch(batch)

    def close(self) -> None:
        self.writer.close()


class _ParquetSink:
    """Buffers batches into large row groups."""

    def __init__(
        self,
        stream: BinaryIO,
        schema: pa.Schema,
        options: dict[str, Any],
        compression_level: int,
    ) -> None:
        import pyarrow.parquet as pq

        self.writer = pq.ParquetWriter(
            stream,
            schema,
            compression="zstd",
            compression_level=compression_level,
            **options,
        )
        self.schema = schema
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0
        self.wrote_any = False

    def write(self, batch: pa.RecordBatch) -> None:
        self.pending.append(batch)
        self.pending_rows += batch.num_rows
        if self.pending_rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self.pending_rows or not self.wrote_any:
            table = pa.Table.from_batches(self.pending, schema=self.schema)
            self.writer.write_table(table, row_group_size=max(1, self.pending_rows))
            self.wrote_any = True
        self.pending, self.pending_rows = [], 0

    def close(self) -> None:
        self._flush()
        self.writer.close()


def rows_in_file(path: Path, file_format: FileFormat) -> int:
    if file_format == "parquet":
        import pyarrow.parquet as pq

        return int(pq.read_metadata(path).num_rows)
    import pyarrow.csv as pcsv

    return int(pcsv.read_csv(path).num_rows)


class DayArchive:
    """Retention's archive: one Parquet file per UTC day and table under ``directory``."""

    def __init__(
        self, directory: Path, *, compression_level: int = DEFAULT_COMPRESSION_LEVEL
    ) -> None:
        self.directory = directory
        self.compression_level = compression_level

    @classmethod
    def from_settings(cls, settings: Settings) -> DayArchive | None:
        """The configured archive, or None when VATSIM_ARCHIVE_DIR is unset."""
        if settings.archive_dir is None:
            return None
        return cls(settings.archive_dir, compression_level=settings.archive_compression_level)

    def path_for(self, table: str, day: date) -> Path:
        return self.directory / table / f"{table}-{day:%Y-%m-%d}.parquet"

    def archive_day(self, db: DatabaseService, table: str, day: date) -> ArchivedDay:
        """Make sure the day's file holds every row the database has of ``table`` that day."""
        started = time.monotonic()
        start_id, end_id = day_bounds(day)
        path = self.path_for(table, day)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and self._holds_all(db, LAYOUTS[table], path, start_id, end_id):
            with db.read(f"archive.{table}.count") as conn:
                rows = int(conn.execute(LAYOUTS[table].count(start_id, end_id)).scalar_one())
            archived = ArchivedDay(
                table, day, path, rows, path.stat().st_size, False, time.monotonic() - started
            )
        else:
            written = write_window(
                db, table, start_id, end_id, path, compression_level=self.compression_level
            )
            archived = ArchivedDay(
                table, day, path, written.rows, written.bytes, True, time.monotonic() - started
            )
        log.info(
            "archived a day",
            table=table,
            day=day.isoformat(),
            rows=archived.rows,
            bytes=archived.bytes,
            written=archived.written,
            path=str(path),
            seconds=round(archived.seconds, 3),
        )
        return archived

    @staticmethod
    def _holds_all(
        db: DatabaseService, layout: Layout, path: Path, start_id: int, end_id: int
    ) -> bool:
        """True if the file has every row the database has; False if the database has every
        row of the file (and more): rewrite it. Anything else raises ArchiveError."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            in_file = pq.read_table(path, columns=list(layout.key))
        except Exception as exc:
            raise ArchiveError(f"{path}: an existing archive file cannot be read: {exc}") from exc
        # Snapshot times compare as snapshot ids (milliseconds).
        at = in_file.schema.get_field_index("time")
        in_file = in_file.set_column(at, "time", in_file.column(at).cast(pa.int64()))
        with db.read(f"archive.{layout.table}.keys") as conn:
            rows = conn.execute(layout.key_query(start_id, end_id)).all()
        columns = list(zip(*rows, strict=True)) if rows else [()] * len(layout.key)
        db_keys = pa.table(
            [pa.array(c, f.type) for c, f in zip(columns, in_file.schema, strict=True)],
            schema=in_file.schema,
        )
        only_in_db = db_keys.join(in_file, list(layout.key), join_type="left anti").num_rows
        if only_in_db == 0:
            return True
        only_in_file = in_file.join(db_keys, list(layout.key), join_type="left anti").num_rows
        if only_in_file == 0:
            return False
        raise ArchiveError(
            f"{path}: the file and the database differ ({only_in_db} rows only in the database,"
            f" {only_in_file} only in the file); resolve by hand"
        )
