"""One record's bytes to a typed record, or a reason it is dropped.

The typed decoders of ``models.py`` enforce the limits table in C; this module only explains a
failure (a stable reason code and a readable detail), coerces benign drift, and runs the two
checks msgspec cannot express cheaply: forbidden control characters and a logon after the
snapshot. It is used for every record only once a whole-document decode has failed, so its
cost is paid per bad snapshot, not per snapshot.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

import msgspec

from vatsim_collector.errors.exceptions import DataRejected
from vatsim_collector.feed.limits import (
    COORDINATE_FIELDS,
    FORBIDDEN_CONTROLS,
    LIMITS,
    LOGON_TOLERANCE_SECONDS,
    FloatLimit,
    IntLimit,
)
from vatsim_collector.feed.models import Atis, Controller, Pilot
from vatsim_collector.feed.report import DroppedRecord, RecordReport

T = TypeVar("T", bound=msgspec.Struct)

# In JSON text a control character can only appear escaped: \u0000-\u001f, \b or \f (a raw
# one is malformed JSON). A match may be a false alarm (\\b is a backslash and a "b", \u0009 a
# tab); it only means the decoded strings are checked one by one.
CONTROL_ESCAPE = re.compile(rb"\\(?:u00[01][0-9a-fA-F]|[bf])")
_FORBIDDEN = re.compile(f"[{FORBIDDEN_CONTROLS}]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_INT_TEXT = re.compile(r"[+-]?\d{1,20}")
_FLOAT_TEXT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
LOGON_TOLERANCE = timedelta(seconds=LOGON_TOLERANCE_SECONDS)

# Nested records: the field holding them and the model whose limits apply inside.
_NESTED = {"flight_plan": "FlightPlan", "transceivers": "Transceiver"}
# Fields never quoted in a detail: members' names are personal data.
_PRIVATE = frozenset({"name"})


def _numeric_fields(model: str) -> dict[str, type]:
    prefix = f"{model}."
    return {
        key[len(prefix) :]: int if isinstance(limit, IntLimit) else float
        for key, limit in LIMITS.items()
        if key.startswith(prefix) and isinstance(limit, IntLimit | FloatLimit)
    }


class Problem(DataRejected):
    """Why one record is dropped; ``path`` is relative to the record (``.flight_plan.route``)."""

    def __init__(self, reason: str, path: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.path = path
        self.detail = detail


class MalformedRecord(DataRejected):
    """A record's bytes are no JSON at all: the document's syntax is broken, not a value."""


# -- explaining a failure -------------------------------------------------------------------

_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_BOUND = re.compile(r"Expected `\w+` (?P<op>[<>]=) (?P<bound>\S+)")
_LENGTH = re.compile(r"Expected `(?P<kind>str|array)` of length <= (?P<bound>\d+)")
_MISSING = re.compile(r"Object missing required field `(?P<field>\w+)`")
_TYPE = re.compile(r"Expected `(?P<expected>[^`]+)`, got `(?P<got>\w+)`")


def _value_at(raw: bytes, path: str) -> Any:
    """The JSON value at ``path`` (``.a.b[2]``) of ``raw``, or None if it cannot be read."""
    try:
        node: Any = msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    for name, index in re.findall(r"\.(\w+)|\[(\d+)\]", path):
        try:
            node = node[name] if name else node[int(index)]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _shown(raw: bytes, path: str) -> str:
    if path.rsplit(".", 1)[-1] in _PRIVATE:
        return "(a name)"
    text = repr(_value_at(raw, path))
    return text if len(text) <= 40 else text[:37] + "..."


def explain(exc: msgspec.ValidationError, raw: bytes) -> Problem:
    """The reason code and a readable detail for msgspec's complaint about ``raw``."""
    message = str(exc)
    at = _AT.search(message)
    path = at.group("path") if at else ""
    field = path.rsplit(".", 1)[-1].split("[", 1)[0]
    if m := _BOUND.match(message):
        reason = "bad_coordinates" if field in COORDINATE_FIELDS else "out_of_range"
        side = "above" if m.group("op") == "<=" else "below"
        return Problem(reason, path, f"{_shown(raw, path)} is {side} {m.group('bound')}")
    if m := _LENGTH.match(message):
        value = _value_at(raw, path)
        unit = "characters" if m.group("kind") == "str" else "lines"
        size = f"{len(value)} {unit}" if isinstance(value, str | list) else "too many " + unit
        return Problem("too_long", path, f"has {size}, more than {m.group('bound')}")
    if message.startswith("Number out of range"):
        return Problem("non_finite", path, "is not a finite number")
    if m := _MISSING.match(message):
        return Problem("missing_field", f"{path}.{m.group('field')}", "is missing")
    if "datetime" in message:
        return Problem("bad_time", path, f"{_shown(raw, path)} is not a time with a time zone")
    if m := _TYPE.match(message):
        if not path and m.group("expected") == "object":
            return Problem("not_an_object", "", f"is a JSON {m.group('got')}, not an object")
        return Problem(
            "bad_type",
            path,
            f"{_shown(raw, path)} is a {m.group('got')}, not {m.group('expected')}",
        )
    return Problem("bad_type", path, message)


def _first_unparseable(value: Any, path: str = "") -> Problem | None:
    if isinstance(value, float) and not math.isfinite(value):
        return Problem("non_finite", path, f"is {value!r}, not a finite number")
    if isinstance(value, str):
        if _SURROGATE.search(value):
            return Problem("invalid_utf8", path, "holds bytes that are not UTF-8 text")
        if _FORBIDDEN.search(value) or "\t" in value or "\n" in value or "\r" in value:
            return Problem("control_chars", path, "holds an unescaped control character")
        return None
    children = (
        ((f".{k}", v) for k, v in value.items())
        if isinstance(value, dict)
        else ((f"[{i}]", v) for i, v in enumerate(value))
        if isinstance(value, list)
        else ()
    )
    for suffix, child in children:
        found = _first_unparseable(child, path + suffix)
        if found is not None:
            return found
    return None


def explain_unparseable(raw: bytes, exc: Exception) -> Problem:
    """Why msgspec could not parse ``raw`` at all, if that is a value's fault.

    Python's parser is laxer: it takes NaN and Infinity, unpaired surrogates and raw control
    characters. What it parses and msgspec does not is one bad value; what neither parses is
    broken syntax, which is the document's fault (``MalformedRecord``).
    """
    try:
        value = json.loads(raw.decode("utf-8", "surrogateescape"), strict=False)
        found = _first_unparseable(value)
    except RecursionError:
        return Problem("invalid_json", "", "is nested too deeply")
    except ValueError:
        raise MalformedRecord(str(exc)) from None
    return found or Problem("invalid_json", "", f"is not valid JSON: {exc}")


# -- coercion ---------------------------------------------------------------------------------


def _coerced_number(value: Any, kind: type) -> tuple[Any, str | None]:
    """``value`` as a ``kind`` and a label for the change, or unchanged and None."""
    if kind is int:
        if isinstance(value, float) and math.isfinite(value):
            # Round to nearest (ties to even): 35000.4 ft is 35000 ft.
            return round(value), "float->int"
        if isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
            return int(value), "str->int"
    elif isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip()):
        number = float(value)
        if math.isfinite(number):
            return number, "str->float"
    return value, None


def _coerce(node: Any, model: str, path: str, labels: Counter[str]) -> None:
    if not isinstance(node, dict):
        return
    for name, kind in _numeric_fields(model).items():
        if name in node:
            node[name], label = _coerced_number(node[name], kind)
            if label:
                labels[f"{path}{name} {label}"] += 1
    for name, nested in _NESTED.items():
        child = node.get(name)
        for item in child if isinstance(child, list) else [child]:
            _coerce(item, nested, f"{path}{name}.", labels)


# -- the checks msgspec does not make ---------------------------------------------------------


def _control_chars(record: msgspec.Struct, path: str = "") -> str | None:
    """The path of the first string holding a forbidden control character, if any."""
    for name in record.__struct_fields__:
        value = getattr(record, name)
        items = value if isinstance(value, list) else (value,)
        for i, item in enumerate(items):
            where = f"{path}.{name}" + (f"[{i}]" if isinstance(value, list) else "")
            if isinstance(item, str) and _FORBIDDEN.search(item):
                return where
            if isinstance(item, msgspec.Struct):
                found = _control_chars(item, where)
                if found is not None:
                    return found
    return None


def latest_logon(update_timestamp: datetime) -> datetime:
    """The latest logon time a snapshot taken at ``update_timestamp`` can list."""
    return update_timestamp + LOGON_TOLERANCE


def _check(record: msgspec.Struct, raw: bytes, logon_limit: datetime) -> None:
    if CONTROL_ESCAPE.search(raw):
        where = _control_chars(record)
        if where is not None:
            raise Problem("control_chars", where, "holds a control character (NUL, ESC, ...)")
    if isinstance(record, Pilot | Controller | Atis) and record.logon_time > logon_limit:
        raise Problem(
            "logon_after_snapshot",
            ".logon_time",
            f"{record.logon_time.isoformat()} is more than {LOGON_TOLERANCE_SECONDS:g} s after"
            " the snapshot",
        )


# -- one record -------------------------------------------------------------------------------


class RecordDecoder(Generic[T]):
    """Decodes the records of one section, adding each dropped one to a report."""

    def __init__(self, section: str, model: type[T]) -> None:
        self.section = section
        self.model = model
        self._decoder = msgspec.json.Decoder(model)

    def _typed(self, raw: bytes, labels: Counter[str]) -> T:
        try:
            return self._decoder.decode(raw)
        except msgspec.ValidationError as exc:
            problem = explain(exc, raw)
            if problem.reason != "bad_type":
                raise problem from None
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise explain_unparseable(raw, exc) from None
        # A wrong type may be benign drift (35000.0 for 35000, "123" for 123): coerce the
        # numbers that can be, and decode again; what still fails is the record's fault.
        try:
            generic = msgspec.json.decode(raw)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise explain_unparseable(raw, exc) from None
        _coerce(generic, self.model.__name__, f"{self.section}.", labels)
        if not labels:
            raise problem
        try:
            return self._decoder.decode(msgspec.json.encode(generic))
        except msgspec.ValidationError as exc:
            raise explain(exc, raw) from None

    def decode(
        self, index: int, raw: bytes, logon_limit: datetime, report: RecordReport
    ) -> T | None:
        """The record, or None after adding why it was dropped to ``report``.

        Raises ``MalformedRecord`` if ``raw`` is not even JSON.
        """
        labels: Counter[str] = Counter()
        try:
            record = self._typed(raw, labels)
            _check(record, raw, logon_limit)
        except Problem as problem:
            where = f"{self.section}[{index}]{problem.path}"
            report.dropped.append(
                DroppedRecord(self.section, index, problem.reason, f"{where} {problem.detail}", raw)
            )
            return None
        report.count_coerced(labels)
        return record
