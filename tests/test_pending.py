"""The pending queue keeps fetch order across memory and disk, and never raises for the disk."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tinyfs import TinyFilesystem, tiny_filesystem_or_skip
from vatsim_collector.pipeline.pending import PendingSnapshots
from vatsim_collector.pipeline.spool import SnapshotSpool, SpooledSnapshot

START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def snapshot(n: int, *, size: int = 200) -> SpooledSnapshot:
    data = f'{{"n": {n}}}'.encode().ljust(size, b" ")
    return SpooledSnapshot(data, None, START + timedelta(seconds=15 * n), "https://feed.example")


def number(item: SpooledSnapshot) -> int:
    return int((item.fetched_at - START).total_seconds()) // 15


def drain(pending: PendingSnapshots) -> list[int]:
    out: list[int] = []
    for _ in range(1000):  # bounded: far more than any test puts
        item = pending.peek()
        if item is None:
            assert len(pending) == 0
            return out
        out.append(number(item))
        assert pending.pop(item)
    raise AssertionError("the queue never emptied")


def new_spool(folder: Path) -> SnapshotSpool:
    return SnapshotSpool(folder, max_entries=1000, max_bytes=10**9)


@pytest.fixture
def tiny_fs() -> Iterator[TinyFilesystem]:
    with tiny_filesystem_or_skip() as filesystem:
        yield filesystem


def test_memory_spills_to_disk_in_order_and_the_disk_is_read_first(tmp_path: Path) -> None:
    pending = PendingSnapshots(new_spool(tmp_path / "spool"), memory_limit=3)
    for n in range(3):
        assert pending.put(snapshot(n)) == []
    assert (pending.in_memory, pending.on_disk) == (3, 0)

    pending.put(snapshot(3))  # memory full: 0..2 go to disk, 3 waits in memory

    assert (pending.in_memory, pending.on_disk, pending.spilled) == (1, 3, 3)
    assert len(pending) == 4
    assert pending.size_bytes > 4 * 200
    head = pending.peek()
    assert head is not None
    assert number(head) == 0
    for n in range(4, 9):
        pending.put(snapshot(n))
    assert drain(pending) == list(range(9))
    assert pending.dropped == 0
    assert pending.take_errors() == []


def test_a_writer_interleaved_with_the_fetcher_sees_every_snapshot_once_in_order(
    tmp_path: Path,
) -> None:
    pending = PendingSnapshots(new_spool(tmp_path / "spool"), memory_limit=2)
    stored: list[int] = []
    for n in range(30):
        # The writer peeks, the fetcher puts (maybe spilling) while it stores, then it pops.
        item = pending.peek()
        pending.put(snapshot(n))
        if item is not None and n % 3 != 0:  # the writer is slower than the fetcher
            stored.append(number(item))
            assert pending.pop(item)
    stored += drain(pending)

    assert stored == list(range(30))
    assert pending.spilled > 0


def test_pop_of_a_peeked_snapshot_that_spilled_meanwhile_removes_it_from_disk(
    tmp_path: Path,
) -> None:
    pending = PendingSnapshots(new_spool(tmp_path / "spool"), memory_limit=2)
    pending.put(snapshot(0))
    pending.put(snapshot(1))
    head = pending.peek()
    pending.put(snapshot(2))  # spills 0 and 1 while 0 is being stored
    assert pending.on_disk == 2

    assert pending.pop(head)
    assert drain(pending) == [1, 2]


def test_pop_of_a_peeked_snapshot_dropped_meanwhile_removes_nothing_else() -> None:
    pending = PendingSnapshots(None, memory_limit=1, max_items=2)
    pending.put(snapshot(0))
    head = pending.peek()
    pending.put(snapshot(1))
    dropped = pending.put(snapshot(2))  # the bound drops 0 while it is being stored

    assert [d.fetched_at for d in dropped] == [snapshot(0).fetched_at]
    assert pending.pop(head) is False
    assert drain(pending) == [1, 2]


def test_without_a_spool_memory_holds_up_to_the_hard_bound_then_drops_the_oldest() -> None:
    pending = PendingSnapshots(None, memory_limit=4, max_items=10)
    dropped = []
    for n in range(14):
        dropped += pending.put(snapshot(n))

    assert [number_of(d.fetched_at) for d in dropped] == [0, 1, 2, 3]
    assert all(d.size == 200 and d.source == "https://feed.example" for d in dropped)
    assert pending.dropped == 4
    assert (pending.in_memory, pending.on_disk) == (10, 0)
    assert drain(pending) == list(range(4, 14))


def test_the_byte_bound_drops_the_oldest_but_keeps_the_newest() -> None:
    pending = PendingSnapshots(None, memory_limit=4, max_items=100, max_bytes=2500)
    dropped = []
    for n in range(5):
        dropped += pending.put(snapshot(n, size=1000))
    dropped += pending.put(snapshot(5, size=9000))  # alone above the bound: still kept

    assert [number_of(d.fetched_at) for d in dropped] == [0, 1, 2, 3, 4]
    assert drain(pending) == [5]


def test_the_hard_bound_is_never_below_the_memory_limit() -> None:
    pending = PendingSnapshots(None, memory_limit=8, max_items=2)
    for n in range(8):
        assert pending.put(snapshot(n)) == []
    assert pending.max_items == 8


def test_the_spool_bound_drops_are_reported_by_the_queue(tmp_path: Path) -> None:
    spool = SnapshotSpool(tmp_path / "spool", max_entries=2, max_bytes=10**9)
    pending = PendingSnapshots(spool, memory_limit=2)
    dropped = []
    for n in range(7):
        dropped += pending.put(snapshot(n))

    assert [number_of(d.fetched_at) for d in dropped] == [0, 1, 2, 3]
    assert pending.dropped == 4
    assert drain(pending) == [4, 5, 6]


def test_spill_at_shutdown_and_a_restart_returns_everything_in_order(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    pending = PendingSnapshots(new_spool(folder), memory_limit=3)
    for n in range(8):
        pending.put(snapshot(n))
    assert pending.in_memory > 0

    assert pending.spill() == []
    assert pending.in_memory == 0

    restarted = PendingSnapshots(new_spool(folder), memory_limit=3)
    assert len(restarted) == 8
    restarted.put(snapshot(8))  # fetched after the restart: behind all of them
    assert drain(restarted) == list(range(9))


def test_damaged_spool_files_are_skipped_and_reported_through_the_queue(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "spool"
    pending = PendingSnapshots(new_spool(folder), memory_limit=1)
    for n in range(4):
        pending.put(snapshot(n))
    (folder / f"{1:016d}.snap").write_bytes(b"7 bytes")

    assert drain(pending) == [0, 2, 3]
    [damaged] = pending.take_damaged()
    assert "shorter than an entry header" in damaged.reason
    assert pending.take_damaged() == []


def test_a_disk_that_fills_in_the_middle_of_a_spill_loses_nothing_and_reports_once(
    tiny_fs: TinyFilesystem,
) -> None:
    pending = PendingSnapshots(new_spool(tiny_fs.root / "spool"), memory_limit=4)
    tiny_fs.fill()
    tiny_fs.free(2)  # room for exactly two entries
    for n in range(4):
        pending.put(snapshot(n))

    assert pending.put(snapshot(4)) == []  # spill: 0 and 1 written, then the disk is full

    assert (pending.on_disk, pending.in_memory) == (2, 3)
    assert pending.spill_failures == 1
    [error] = pending.take_errors()
    assert error.errno == errno.ENOSPC
    pending.put(snapshot(5))  # memory not full yet (4): no spill tried
    assert pending.spill_failures == 1
    assert pending.put(snapshot(6)) == []  # tried again, still full: same episode
    assert pending.spill_failures == 2
    assert pending.take_errors() == []
    assert (pending.on_disk, pending.in_memory) == (2, 5)
    assert list((tiny_fs.root / "spool").glob("*.tmp")) == []

    tiny_fs.free_all()
    pending.put(snapshot(7))  # tried again: the disk has room now

    assert (pending.on_disk, pending.in_memory) == (7, 1)
    assert pending.take_errors() == []
    tiny_fs.fill()
    for n in range(8, 14):
        pending.put(snapshot(n))
    assert len(pending.take_errors()) == 1  # a new episode is reported again
    assert drain(pending) == list(range(14))
    assert pending.dropped == 0


def test_a_full_disk_keeps_snapshots_in_memory_up_to_the_hard_bound(
    tiny_fs: TinyFilesystem,
) -> None:
    pending = PendingSnapshots(new_spool(tiny_fs.root / "spool"), memory_limit=2, max_items=5)
    tiny_fs.fill()
    dropped = []
    for n in range(8):
        dropped += pending.put(snapshot(n))

    assert [number_of(d.fetched_at) for d in dropped] == [0, 1, 2]
    assert (pending.in_memory, pending.on_disk) == (5, 0)
    assert len(pending.take_errors()) == 1
    assert pending.spill() == []  # at shutdown with the disk still full: nothing raised
    assert pending.in_memory == 5
    assert drain(pending) == [3, 4, 5, 6, 7]


def number_of(fetched_at: datetime) -> int:
    return int((fetched_at - START).total_seconds()) // 15
