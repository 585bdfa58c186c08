"""A real, tiny filesystem for tests that need a disk to fill up (ENOSPC without fakes).

It is a tmpfs mounted on a fresh temporary folder, which needs root (or CAP_SYS_ADMIN);
where mounting is not allowed, :func:`tiny_filesystem_or_skip` skips the test with the
reason. The mount is always undone, even when the test fails or left files open.

tmpfs charges whole pages: a file of 1 to 4096 bytes takes one page and a folder takes
none, so :meth:`TinyFilesystem.fill` and :meth:`TinyFilesystem.free` let a test leave room
for exactly N small files.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PAGE = os.sysconf("SC_PAGE_SIZE")
_COMMAND_TIMEOUT = 30


class TinyFilesystemUnavailable(RuntimeError):
    """This machine does not let the tests mount a tmpfs."""


class TinyFilesystem:
    def __init__(self, root: Path, size_bytes: int) -> None:
        self.root = root
        self.size_bytes = size_bytes
        self._fillers: list[Path] = []

    def fill(self) -> int:
        """Take every free page with one-page filler files; return how many were written."""
        folder = self.root / "filler"
        folder.mkdir(exist_ok=True)
        page = b"\0" * PAGE
        written = 0
        # Bounded by the filesystem's size: there cannot be more pages than that.
        for _ in range(self.size_bytes // PAGE + 1):
            path = folder / f"{len(self._fillers) + written:06d}"
            try:
                path.write_bytes(page)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                path.unlink(missing_ok=True)  # the failed one may exist, empty
                break
            self._fillers.append(path)
            written += 1
        else:
            raise AssertionError("the tiny filesystem never filled up")
        return written

    def free(self, pages: int) -> None:
        """Delete ``pages`` filler files (the newest), making room for that many pages."""
        if pages > len(self._fillers):
            raise ValueError(f"only {len(self._fillers)} filler pages to free")
        for _ in range(pages):
            self._fillers.pop().unlink()

    def free_all(self) -> None:
        self.free(len(self._fillers))


@contextmanager
def tiny_filesystem(
    size_bytes: int = 64 * PAGE, *, inodes: int | None = None
) -> Iterator[TinyFilesystem]:
    """Mount a tmpfs of ``size_bytes`` (and at most ``inodes`` files and folders, the root
    included) on a new temporary folder for the block's duration."""
    root = Path(tempfile.mkdtemp(prefix="tinyfs-"))
    options = f"size={size_bytes},mode=0700" + ("" if inodes is None else f",nr_inodes={inodes}")
    try:
        try:
            mounted = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", options, "tmpfs", root],
                capture_output=True,
                text=True,
                timeout=_COMMAND_TIMEOUT,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TinyFilesystemUnavailable(f"cannot run mount: {exc}") from exc
        if mounted.returncode != 0:
            raise TinyFilesystemUnavailable(f"mount -t tmpfs failed: {mounted.stderr.strip()}")
        try:
            yield TinyFilesystem(root, size_bytes)
        finally:
            _unmount(root)
    finally:
        # Only ever an empty mount point here: the files lived on the tmpfs.
        shutil.rmtree(root, ignore_errors=True)


def _unmount(root: Path) -> None:
    done = subprocess.run(["umount", root], capture_output=True, timeout=_COMMAND_TIMEOUT)
    if done.returncode != 0:
        # Busy (a file left open by a failed test): detach now, freed when it is closed.
        subprocess.run(["umount", "-l", root], check=True, timeout=_COMMAND_TIMEOUT)


@contextmanager
def tiny_filesystem_or_skip(
    size_bytes: int = 64 * PAGE, *, inodes: int | None = None
) -> Iterator[TinyFilesystem]:
    """:func:`tiny_filesystem`, or skip the test where this machine cannot mount one."""
    try:
        with tiny_filesystem(size_bytes, inodes=inodes) as filesystem:
            yield filesystem
    except TinyFilesystemUnavailable as exc:
        pytest.skip(f"no tiny filesystem for a disk-full test: {exc}")
