"""Whose fault a failed snapshot write was: the database's availability, or the data.

An outage is worth waiting out (the snapshot is kept and tried again); a refusal of the data
is not (the same snapshot would fail on every try and block every later one), so it is held.
The driver's exception classes do not tell the two apart: PostgreSQL reports an index row over
its size limit as an OperationalError, like a lost connection. The SQLSTATE and SQLite's
result codes do.
"""

from __future__ import annotations

from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)

# SQLSTATE classes that mean "this data cannot be stored", whatever exception class the driver
# maps them to: PostgreSQL reports a btree row over its size limit (54000) as an
# OperationalError, like a lost connection. 22 data exception, 23 integrity, 54 program limit.
_DATA_SQLSTATE_CLASSES = ("22", "23", "54")
# SQLite's result codes that say the same of the data, not of the database's availability.
_DATA_SQLITE_ERRORS = frozenset({"SQLITE_TOOBIG", "SQLITE_MISMATCH", "SQLITE_CONSTRAINT"})

# Raised while writing a snapshot when a value cannot be stored: by the database (above) or by
# the driver before it sends anything (an integer beyond 64 bits, a NUL byte, a lone surrogate).
_DATA_EXCEPTIONS: tuple[type[BaseException], ...] = (
    OverflowError,
    ValueError,
    TypeError,
    UnicodeError,
)


def _data_fault(exc: BaseException) -> bool:
    """Whether the database refused ``exc``'s write because of the values written."""
    orig = getattr(exc, "orig", None) or exc
    sqlstate = getattr(orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate[:2] in _DATA_SQLSTATE_CLASSES
    error_name = getattr(orig, "sqlite_errorname", None)
    if isinstance(error_name, str):
        # Extended codes name their family first: SQLITE_CONSTRAINT_UNIQUE.
        return any(error_name.startswith(name) for name in _DATA_SQLITE_ERRORS)
    return False


def is_data_error(exc: BaseException) -> bool:
    """Whether a write failed because of the values written (hold the snapshot)."""
    if isinstance(exc, SQLAlchemyError):
        orig = getattr(exc, "orig", None)
        return (
            _data_fault(exc)
            or isinstance(exc, DataError | IntegrityError)
            or isinstance(orig, _DATA_EXCEPTIONS)
        )
    return isinstance(exc, _DATA_EXCEPTIONS)


def is_unavailable(exc: BaseException) -> bool:
    """Whether the database could not be reached or used (keep the snapshot, try later)."""
    if _data_fault(exc):
        return False
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def data_error_reason(exc: BaseException) -> str:
    """Why a write failed on its data, without the driver's message: that may quote the
    failing row, names included."""
    orig = getattr(exc, "orig", None) or exc
    code = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None)
    return f"{type(orig).__name__}" + (f" ({code})" if code else "")
