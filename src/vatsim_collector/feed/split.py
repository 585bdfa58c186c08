"""Cutting a document into its records' bytes when no JSON parser will take the whole of it.

msgspec refuses a document with one ``NaN``, ``Infinity`` or unpaired surrogate escape anywhere,
even where it only skips. To lose just that record, the sections are split on the document's
structure alone: strings (whatever bytes they hold) and brackets and commas outside them. The
rest of the document, with the sections emptied, is then parsed strictly, and each record on
its own, so real syntax errors are still found (``records.MalformedRecord``).

This is the slow path (a Python loop over every string of the document): it runs only for a
document that msgspec could not parse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vatsim_collector.errors.exceptions import DataRejected

# A JSON string (any bytes but an unescaped quote), or a structural character.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]', re.DOTALL)
_OPEN, _COMMA, _QUOTE = b"[{", ord(","), ord('"')
_LIST = ord("[")


class StructureError(DataRejected):
    """The brackets do not balance: the document is truncated or no JSON."""


@dataclass
class Split:
    """Each wanted section's element bytes, and the document with those sections emptied."""

    elements: dict[str, list[bytes]]
    rest: bytes


def split_sections(raw: bytes, sections: tuple[str, ...]) -> Split:
    """Split the arrays under the top-level keys ``sections`` of an object document.

    ``sections == ("",)`` splits a document that is itself an array.
    """
    top_is_array = sections == ("",)
    element_depth = 1 if top_is_array else 2
    depth = 0
    key = b""
    current: str | None = None
    start = 0
    elements: dict[str, list[bytes]] = {}
    emptied: list[tuple[int, int]] = []
    opened_at = 0
    for token in _TOKEN.finditer(raw):
        pos = token.start()
        char = raw[pos]
        if char == _QUOTE:
            if depth == 1 and not top_is_array:
                key = raw[pos + 1 : token.end() - 1]
            continue
        if char == _COMMA:
            if current is not None and depth == element_depth:
                elements[current].append(raw[start:pos].strip())
                start = pos + 1
            continue
        if char in _OPEN:
            depth += 1
            if depth == element_depth and char == _LIST and current is None:
                name = "" if top_is_array else key.decode("utf-8", "replace")
                if name in sections and name not in elements:
                    current, start, opened_at = name, pos + 1, pos + 1
                    elements[name] = []
            continue
        if current is not None and depth == element_depth:
            final = raw[start:pos].strip()
            if final or elements[current]:  # "[]" has no element, "[1,]" an empty last one
                elements[current].append(final)
            emptied.append((opened_at, pos))
            current = None
        depth -= 1
        if depth < 0:
            raise StructureError("a closing bracket without an opening one")
    if depth != 0:
        raise StructureError("unbalanced brackets: the document is truncated")
    kept: list[bytes] = []
    end = 0
    for interior_start, interior_end in emptied:
        kept.append(raw[end:interior_start])
        end = interior_end
    kept.append(raw[end:])
    return Split(elements, b"".join(kept))
