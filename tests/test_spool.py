"""The spool never raises what it finds on disk, and a full disk is one clear error."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tinyfs import TinyFilesystem, tiny_filesystem_or_skip
from vatsim_collector.pipeline.spool import SnapshotSpool, SpooledSnapshot, SpoolWriteError

START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
HEADER_SIZE = 8 + 8 + 2 + 1  # data, transceivers and source lengths, then the stamp length


def snapshot(n: int, *, size: int = 200) -> SpooledSnapshot:
    data = f'{{"n": {n}}}'.encode().ljust(size, b" ")
    return SpooledSnapshot(
        data, b'[{"n": %d}]' % n, START + timedelta(seconds=15 * n), "https://feed.example/v3"
    )


def entry_file(folder: Path, number: int) -> Path:
    return folder / f"{number:016d}.snap"


def drain(spool: SnapshotSpool) -> list[SpooledSnapshot]:
    out: list[SpooledSnapshot] = []
    for _ in range(1000):  # bounded: far more than any test puts
        item = spool.peek()
        if item is None:
            return out
        out.append(item)
        assert spool.pop(item)
    raise AssertionError("the spool never emptied")


def numbers(items: list[SpooledSnapshot]) -> list[int]:
    return [int((item.fetched_at - START).total_seconds()) // 15 for item in items]


def damage(folder: Path) -> None:
    """Entries 1, 3, 5 and 7 of 0..8 damaged four different ways; 8 vanishes."""
    entry_file(folder, 1).write_bytes(b"7 bytes")
    third = entry_file(folder, 3)
    third.write_bytes(third.read_bytes()[:-10])  # lengths now point past the end
    fifth = entry_file(folder, 5)
    raw = bytearray(fifth.read_bytes())
    raw[HEADER_SIZE : HEADER_SIZE + 4] = b"\xff\xfe\xff\xfe"  # the stamp, same length
    fifth.write_bytes(bytes(raw))
    seventh = entry_file(folder, 7)
    seventh.write_bytes(seventh.read_bytes() + b"trailing")


@pytest.fixture
def tiny_fs() -> Iterator[TinyFilesystem]:
    with tiny_filesystem_or_skip() as filesystem:
        yield filesystem


def test_damaged_entries_while_running_are_set_aside_and_the_good_ones_come_out_in_order(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "spool"
    spool = SnapshotSpool(folder, max_entries=100, max_bytes=10**9)
    for n in range(10):
        spool.put(snapshot(n))
    damage(folder)
    entry_file(folder, 8).unlink()

    good = drain(spool)

    assert numbers(good) == [0, 2, 4, 6, 9]
    assert good[0] == snapshot(0)
    damaged = spool.take_damaged()
    # Moved aside as "<when>-<name>"; the vanished one is reported under its own path.
    assert [d.path.name.split("-")[-1] for d in damaged] == [
        entry_file(folder, n).name for n in (1, 3, 5, 7, 8)
    ]
    assert damaged[4].path == entry_file(folder, 8)
    reasons = [d.reason for d in damaged]
    assert "shorter than an entry header" in reasons[0]
    assert "header describes" in reasons[1]
    assert "not a valid timestamp" in reasons[2]
    assert "header describes" in reasons[3]
    assert "vanished" in reasons[4]
    kept = sorted(p.name for p in (folder / "damaged").iterdir())
    assert [name.split("-", 1)[1] for name in kept] == [
        entry_file(folder, n).name for n in (1, 3, 5, 7)
    ]
    assert all(d.path.exists() for d in damaged[:4])
    assert spool.damaged == 5
    assert len(spool) == 0
    assert spool.size_bytes == 0
    assert spool.take_damaged() == []


def test_damaged_entries_found_at_start_up_are_set_aside_and_not_read_again(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "spool"
    first = SnapshotSpool(folder, max_entries=100, max_bytes=10**9)
    for n in range(9):
        first.put(snapshot(n))
    damage(folder)
    raw = bytearray(entry_file(folder, 2).read_bytes())
    source_at = HEADER_SIZE + len(snapshot(2).fetched_at.isoformat())
    raw[source_at] = 0xFF  # the source, no longer UTF-8
    entry_file(folder, 2).write_bytes(bytes(raw))

    restarted = SnapshotSpool(folder, max_entries=100, max_bytes=10**9)

    assert len(restarted) == 4
    damaged = restarted.take_damaged()
    assert len(damaged) == 5
    assert "source is not valid UTF-8" in damaged[1].reason
    assert numbers(drain(restarted)) == [0, 4, 6, 8]
    again = SnapshotSpool(folder, max_entries=100, max_bytes=10**9)
    assert len(again) == 0
    assert again.take_damaged() == []  # damaged/ is never scanned as entries


def test_files_that_are_not_entries_are_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    folder.mkdir()
    (folder / "notes.txt").write_text("operator notes")
    (folder / "abc.snap").write_bytes(b"not numbered")
    (folder / "0000000000000042.snap").mkdir()  # a folder with an entry's name

    spool = SnapshotSpool(folder, max_entries=100, max_bytes=10**9)
    spool.put(snapshot(0))

    assert len(spool) == 1
    assert spool.take_damaged() == []
    assert (folder / "notes.txt").exists()
    assert (folder / "abc.snap").exists()
    assert numbers(drain(spool)) == [0]


def test_a_leftover_temporary_file_is_removed_at_start_up(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    folder.mkdir()
    (folder / "0000000000000000.tmp").write_bytes(b"half a write")

    spool = SnapshotSpool(folder, max_entries=100, max_bytes=10**9)

    assert len(spool) == 0
    assert list(folder.glob("*.tmp")) == []


def test_a_restart_continues_after_the_entries_already_there(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    first = SnapshotSpool(folder, max_entries=100, max_bytes=10**9)
    for n in range(3):
        first.put(snapshot(n))
    restarted = SnapshotSpool(folder, max_entries=100, max_bytes=10**9)
    restarted.put(snapshot(3))

    assert restarted.size_bytes == first.size_bytes + entry_file(folder, 3).stat().st_size
    assert numbers(drain(restarted)) == [0, 1, 2, 3]


def test_a_damaged_entry_met_when_dropping_for_the_bound_is_set_aside_not_dropped(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "spool"
    spool = SnapshotSpool(folder, max_entries=2, max_bytes=10**9)
    spool.put(snapshot(0))
    spool.put(snapshot(1))
    entry_file(folder, 0).write_bytes(b"garbage")

    dropped = spool.put(snapshot(2))

    assert dropped == []
    assert spool.dropped == 0
    [damaged] = spool.take_damaged()
    assert damaged.reason.endswith("shorter than an entry header")
    dropped = spool.put(snapshot(3))
    assert [(d.fetched_at, d.source) for d in dropped] == [
        (snapshot(1).fetched_at, snapshot(1).source)
    ]
    assert numbers(drain(spool)) == [2, 3]


def test_pop_and_peek_do_not_raise_when_the_file_vanished(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    spool = SnapshotSpool(folder, max_entries=100, max_bytes=10**9)
    spool.put(snapshot(0))
    spool.put(snapshot(1))
    head = spool.peek()
    entry_file(folder, 0).unlink()  # someone deleted it while it was being stored

    assert spool.pop(head)
    entry_file(folder, 1).unlink()
    assert spool.peek() is None
    assert spool.pop() is False
    assert "vanished" in spool.take_damaged()[0].reason
    assert spool.size_bytes == 0


def test_pop_with_an_item_removes_only_that_item(tmp_path: Path) -> None:
    spool = SnapshotSpool(tmp_path / "spool", max_entries=100, max_bytes=10**9)
    spool.put(snapshot(0))
    spool.put(snapshot(1))
    head = spool.peek()
    assert head == snapshot(0)

    assert spool.pop(snapshot(0)) is False  # equal, but not what peek handed out
    assert spool.pop(head) is True
    assert spool.pop(head) is False
    assert numbers(drain(spool)) == [1]


def test_when_damaged_files_cannot_be_moved_aside_they_are_deleted_and_reported(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "spool"
    folder.mkdir()
    (folder / "damaged").write_text("a file where the damaged folder should be")
    entry_file(folder, 0).write_bytes(b"7 bytes")

    spool = SnapshotSpool(folder, max_entries=100, max_bytes=10**9)

    [report] = spool.take_damaged()
    assert "could not be moved aside" in report.reason
    assert report.reason.endswith("deleted")
    assert not entry_file(folder, 0).exists()


def test_damaged_folder_keeps_only_the_newest_files(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    folder.mkdir()
    for n in range(5):
        entry_file(folder, n).write_bytes(b"bad")

    spool = SnapshotSpool(folder, max_entries=100, max_bytes=10**9, max_damaged=2)

    assert spool.damaged == 5
    kept = sorted(p.name.split("-", 1)[1] for p in (folder / "damaged").iterdir())
    assert kept == [entry_file(folder, n).name for n in (3, 4)]


def test_damaged_files_older_than_their_age_limit_are_deleted(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    (folder / "damaged").mkdir(parents=True)
    old = folder / "damaged" / f"{0:020d}-0000000000000000.snap"
    old.write_bytes(b"moved aside in 1970")

    SnapshotSpool(folder, max_entries=100, max_bytes=10**9)

    assert not old.exists()


def test_a_long_source_is_cut_on_a_character_boundary(tmp_path: Path) -> None:
    spool = SnapshotSpool(tmp_path / "spool", max_entries=100, max_bytes=10**9)
    item = SpooledSnapshot(b"{}", None, START, "é" * 40_000)

    spool.put(item)
    [back] = drain(SnapshotSpool(spool.folder, max_entries=100, max_bytes=10**9))

    assert back.source == "é" * 32_767
    assert back.transceivers is None
    assert spool.take_damaged() == []


def test_a_full_disk_raises_one_error_leaves_nothing_and_recovers(
    tiny_fs: TinyFilesystem,
) -> None:
    folder = tiny_fs.root / "spool"
    spool = SnapshotSpool(folder, max_entries=100, max_bytes=10**9)
    spool.put(snapshot(0))
    tiny_fs.fill()

    with pytest.raises(SpoolWriteError) as raised:
        spool.put(snapshot(1))

    assert raised.value.errno == errno.ENOSPC
    assert "cannot write to the spool" in str(raised.value)
    assert isinstance(raised.value, OSError)
    assert sorted(p.name for p in folder.iterdir()) == [entry_file(folder, 0).name]
    assert len(spool) == 1
    size_before = spool.size_bytes
    assert size_before == entry_file(folder, 0).stat().st_size

    tiny_fs.free(1)
    spool.put(snapshot(2))

    assert len(spool) == 2
    assert numbers(drain(spool)) == [0, 2]
    assert SnapshotSpool(folder, max_entries=100, max_bytes=10**9).take_damaged() == []


def test_a_write_larger_than_the_free_space_leaves_no_partial_file(
    tiny_fs: TinyFilesystem,
) -> None:
    folder = tiny_fs.root / "spool"
    spool = SnapshotSpool(folder, max_entries=100, max_bytes=10**9)
    tiny_fs.fill()
    tiny_fs.free(2)

    with pytest.raises(SpoolWriteError):
        spool.put(snapshot(0, size=5 * 4096))  # starts writing, then runs out

    assert list(folder.iterdir()) == []
    spool.put(snapshot(1))  # the space the failed write took is free again
    assert numbers(drain(spool)) == [1]


def test_no_free_inode_is_the_same_clear_error(tmp_path: Path) -> None:
    # Pages to spare, but no file can be created: the failure is at open, not at write.
    # Five inodes: the root, the spool folder, entry 0, the filler folder, one filler.
    with tiny_filesystem_or_skip(inodes=5) as tiny:
        folder = tiny.root / "spool"
        spool = SnapshotSpool(folder, max_entries=100, max_bytes=10**9)
        spool.put(snapshot(0))
        assert tiny.fill() == 1

        with pytest.raises(SpoolWriteError) as raised:
            spool.put(snapshot(1))

        assert raised.value.errno == errno.ENOSPC
        assert len(spool) == 1
        tiny.free_all()
        spool.put(snapshot(2))
        assert numbers(drain(spool)) == [0, 2]
