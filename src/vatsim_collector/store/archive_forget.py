"""Forget a member in the Parquet archive too: every archive file holding the member's CID is
rewritten without those rows (atomically, verified like any archive file).

The archive holds CIDs and callsigns, never names, but "forget everything stored about a
member" has to reach it: a forgotten member's track of last year is still the member's. A file
without the CID is only read (its ``cid`` column), never rewritten.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from vatsim_collector.store.archive import (
    DEFAULT_COMPRESSION_LEVEL,
    ArchiveError,
    atomic_file,
    open_sink,
    rows_in_file,
)
from vatsim_collector.store.archive_layout import ARCHIVED_TABLES, LAYOUTS, Coordinates

if TYPE_CHECKING:
    import pyarrow as pa

log = structlog.get_logger(__name__)


@dataclass
class ArchiveForgetReport:
    """Rows removed per archived table, and the files rewritten to remove them."""

    rows_removed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ARCHIVED_TABLES, 0))
    files_rewritten: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"rows_removed": dict(self.rows_removed), "files_rewritten": self.files_rewritten}


def forget_in_archive(
    directory: Path, cid: int, *, compression_level: int = DEFAULT_COMPRESSION_LEVEL
) -> ArchiveForgetReport:
    """Remove every row of member ``cid`` from the archive under ``directory``.

    Raises ArchiveError for a file that cannot be read or rewritten; the files already
    rewritten stay rewritten (each is replaced whole, never half), so running it again
    finishes the job."""
    report = ArchiveForgetReport()
    for table in ARCHIVED_TABLES:
        folder = directory / table
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob(f"{table}-*.parquet")):
            removed = _forget_in_file(path, table, cid, compression_level)
            if removed:
                report.rows_removed[table] += removed
                report.files_rewritten += 1
                log.info("member removed from an archive file", path=str(path), rows=removed)
    return report


def _forget_in_file(path: Path, table: str, cid: int, compression_level: int) -> int:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        cids = pq.read_table(path, columns=["cid"]).column("cid")
    except Exception as exc:
        raise ArchiveError(f"{path}: an archive file cannot be read: {exc}") from exc
    # A transceiver of no known session has no CID (null, NaN here): it is nobody's, so stays.
    theirs = np.asarray(cids.to_numpy(zero_copy_only=False)) == cid
    removed = int(theirs.sum())
    if not removed:
        return 0
    kept = pq.read_table(path).filter(pa.array(~theirs))
    _rewrite(path, table, kept, compression_level)
    return removed


def _rewrite(path: Path, table: str, rows: pa.Table, compression_level: int) -> None:
    import pyarrow as pa

    layout = LAYOUTS[table]
    # Same layout and coordinate form as the file had, so readers see no difference.
    coordinates: Coordinates = "double"
    if table == "positions" and pa.types.is_decimal(rows.schema.field("latitude").type):
        coordinates = "decimal"
    schema = layout.schema(coordinates)
    with atomic_file(path) as (temporary, stream):
        sink = open_sink(stream, layout, "parquet", compression_level, coordinates)
        try:
            for batch in rows.cast(schema).to_batches():
                sink.write(batch)
        finally:
            sink.close()
        stream.flush()
        os.fsync(stream.fileno())
        stored = rows_in_file(temporary, "parquet")
        if stored != rows.num_rows:
            raise ArchiveError(
                f"{temporary.name}: the file holds {stored} rows, kept {rows.num_rows}"
            )
