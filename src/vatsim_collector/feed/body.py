"""Reading a feed document whole while never holding more than a set number of decoded bytes.

A gzip body of 1 MB can inflate to 1 GB. ``BoundedBody`` takes the raw (still encoded) bytes
as they arrive, inflates them in pieces no larger than the room left under the limit, and
raises ``DocumentTooLarge`` as soon as one byte more than the limit would be produced, so
memory stays bounded by the limit whatever the input. ``decompress_bounded`` and
``read_document_file`` apply the same rule to bytes and files already at hand (replay).

Nothing here knows about HTTP; the feed client maps these errors to its own ``FeedError``
kinds.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from vatsim_collector.errors.exceptions import DataRejected

__all__ = [
    "BadCompression",
    "BoundedBody",
    "DocumentTooLarge",
    "UnsupportedEncoding",
    "decompress_bounded",
    "read_document_file",
]

_GZIP_MAGIC = b"\x1f\x8b"
# Both gzip and zlib headers are recognised (wbits + 32): a "deflate" body is zlib-wrapped.
_AUTO_HEADER_WBITS = zlib.MAX_WBITS | 32
_IDENTITY = frozenset({"", "identity"})
_COMPRESSED = frozenset({"gzip", "x-gzip", "deflate"})
_FILE_CHUNK = 1024 * 1024


class DocumentTooLarge(DataRejected):
    """A document would exceed the size limit once decoded; no part of it is quoted."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"document larger than the limit of {limit:,} bytes decoded (max_document_bytes)"
        )
        self.limit = limit


class BadCompression(DataRejected):
    """The compressed stream is corrupt or cut short."""


class UnsupportedEncoding(DataRejected):
    """A Content-Encoding this reader does not decode (only gzip and deflate are asked for)."""


class BoundedBody:
    """Accumulates one document from raw chunks, decoding ``encoding`` on the way.

    ``encoding`` is the Content-Encoding header value ("" or "identity" for none). Call
    ``feed`` per chunk and ``finish`` once; both raise ``DocumentTooLarge`` past ``limit``
    decoded bytes and ``BadCompression`` on a corrupt stream.
    """

    def __init__(self, limit: int, encoding: str = "") -> None:
        if limit < 0:
            raise ValueError("limit must not be negative")
        self.limit = limit
        name = encoding.strip().lower()
        if name not in _IDENTITY | _COMPRESSED:
            # Several encodings ("gzip, gzip") or ones never asked for (br, zstd): refusing
            # is safer than trusting a decoder whose output we cannot bound.
            raise UnsupportedEncoding(f"unsupported Content-Encoding {name[:40]!r}")
        self._compressed = name in _COMPRESSED
        self._inflater = zlib.decompressobj(_AUTO_HEADER_WBITS)
        self._members = 0
        self._out = bytearray()

    @property
    def size(self) -> int:
        """Decoded bytes collected so far."""
        return len(self._out)

    def feed(self, chunk: bytes) -> None:
        if not self._compressed:
            self._append(chunk)
            return
        data = chunk
        # Each pass either consumes input or produces output, and output is capped by the
        # limit, so the loop ends; the explicit bound only guards against a zlib surprise.
        for _ in range(len(chunk) + self.limit + 2):
            if not data:
                return
            if self._inflater.eof:
                # A gzip file may hold several members back to back; zero bytes may pad it.
                data = data.lstrip(b"\x00")
                if not data:
                    return
                self._inflater = zlib.decompressobj(_AUTO_HEADER_WBITS)
            room = self.limit - len(self._out)
            try:
                # One byte more than the room: getting it proves the document is too large.
                piece = self._inflater.decompress(data, room + 1)
            except zlib.error:
                raise BadCompression("corrupt compressed document") from None
            if not self._members:
                self._members = 1
            self._append(piece)
            data = (
                self._inflater.unused_data if self._inflater.eof else self._inflater.unconsumed_tail
            )
        raise BadCompression("compressed document could not be decoded in bounded steps")

    def finish(self) -> bytes:
        if self._compressed:
            if self._members and not self._inflater.eof:
                raise BadCompression("compressed document is cut short")
            if not self._members and not self._out:
                raise BadCompression("compressed document is empty")
        return bytes(self._out)

    def _append(self, piece: bytes) -> None:
        if len(self._out) + len(piece) > self.limit:
            self._out = bytearray()  # let the partial document go now, not with the object
            raise DocumentTooLarge(self.limit)
        self._out += piece


def decompress_bounded(data: bytes, limit: int) -> bytes:
    """``data`` gunzipped (or as is when it is not gzip), at most ``limit`` bytes of it.

    Raises ``DocumentTooLarge`` past the limit and ``BadCompression`` on a corrupt stream.
    """
    body = BoundedBody(limit, "gzip" if data.startswith(_GZIP_MAGIC) else "")
    body.feed(data)
    return body.finish()


def read_document_file(path: Path, limit: int) -> bytes:
    """A document file's contents, gunzipped when it is gzip (by its first bytes), bounded.

    The file is read in pieces, so neither a huge file nor a gzip bomb is loaded whole.
    """
    with path.open("rb") as handle:
        first = handle.read(_FILE_CHUNK)
        body = BoundedBody(limit, "gzip" if first.startswith(_GZIP_MAGIC) else "")
        chunk = first
        while chunk:
            body.feed(chunk)
            chunk = handle.read(_FILE_CHUNK)
    return body.finish()
