"""The classifier: ``classify(exc)`` maps any exception to a category, a severity and whether
it is transient.

The collector's own exceptions are classified by where they hang in the one exception tree
(``errors/exceptions.py``), by ``isinstance`` only. The exceptions of the libraries and modules
the collector uses are known here too:

============================================  ==============  ========  =========
exception                                     category        severity  transient
============================================  ==============  ========  =========
httpx2.TimeoutException, TimeoutError         timeout         medium    yes
httpx2.TransportError (ConnectError, ...)     network         medium    yes
httpx2.HTTPStatusError 5xx, 408, 425, 429     http_status     medium    yes
httpx2.HTTPStatusError other statuses         http_status     high      no
httpx2.DecodingError                          decode          medium    no
httpx2.InvalidURL, UnsupportedProtocol        configuration   high      no
FeedUnavailable (FeedError, by subclass or    timeout, network, http_status or decode
status_code)
ConnectionError, other OSError                network         medium    yes
OSError ENOSPC/EDQUOT                         resource        high      no
OSError EMFILE/ENFILE/ENOMEM/ENOBUFS          resource        high      yes
PermissionError                               configuration   high      no
FileNotFoundError and other file errors       resource        high      no
DataRejected (FeedDecodeError, ...),          decode          medium    no
msgspec.DecodeError, pydantic.ValidationError,
json errors, UnicodeDecodeError
SQLAlchemy OperationalError, InterfaceError,  database        high      yes
pool TimeoutError, DisconnectionError,
invalidated connections, StorageUnavailable
(DatabaseUnavailable)
other SQLAlchemyError and DB-API errors       database        high      no
ConfigurationError (SettingsError, ...)       configuration   critical  no
MemoryError                                   resource        critical  no
anything else                                 unknown         high      no
============================================  ==============  ========  =========

The libraries' exceptions are recognised without importing the libraries: an exception of
``httpx2`` or ``psycopg`` can only exist once its library is imported, so a library absent from
``sys.modules`` has nothing to classify (a ``replay`` on SQLite imports neither, and this module
is imported by everything that handles errors).

One of our exceptions that is also an ``OSError`` (``SpoolWriteError``) is classified by its
errno like any ``OSError``: the errno says more than the class. Wrappers (a bare
``CollectorError``, ``RuntimeError``, ``Exception``, anything not in the table, and a
``CollectorError`` subclass declared ``wrapper=True`` such as a bare ``FeedError``) are
classified by walking their ``__cause__`` chain; the first cause that classifies decides, else
the first wrapper of ours in the chain does (a bare ``FeedError``: network).
"""

from __future__ import annotations

import asyncio
import errno
import json
import sqlite3
import sys
from typing import TYPE_CHECKING, TypeGuard

import msgspec
import pydantic
from sqlalchemy import exc as sa_exc

from vatsim_collector.errors.exceptions import (
    Category,
    Classification,
    CollectorError,
    FeedUnavailable,
    HandlerFailed,
    Severity,
)

if TYPE_CHECKING:
    import httpx2

_MAX_CAUSE_DEPTH = 8

UNKNOWN = Classification(Category.UNKNOWN, Severity.HIGH, False)
_TIMEOUT = Classification(Category.TIMEOUT, Severity.MEDIUM, True)
_NETWORK = Classification(Category.NETWORK, Severity.MEDIUM, True)
_DECODE = Classification(Category.DECODE, Severity.MEDIUM, False)
_DB_TRANSIENT = Classification(Category.DATABASE, Severity.HIGH, True)
_DB_PERMANENT = Classification(Category.DATABASE, Severity.HIGH, False)
_CONFIG = Classification(Category.CONFIGURATION, Severity.HIGH, False)
_RESOURCE_PERMANENT = Classification(Category.RESOURCE, Severity.HIGH, False)
_RESOURCE_TRANSIENT = Classification(Category.RESOURCE, Severity.HIGH, True)
_MEMORY = Classification(Category.RESOURCE, Severity.CRITICAL, False)

_TRANSIENT_STATUSES = frozenset({408, 425, 429})
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
_OUT_OF_HANDLES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})


def http_status(status: int) -> Classification:
    """The classification of an HTTP answer with ``status``."""
    if status >= 500 or status in _TRANSIENT_STATUSES:
        return Classification(Category.HTTP_STATUS, Severity.MEDIUM, True)
    return Classification(Category.HTTP_STATUS, Severity.HIGH, False)


def classify(exc: BaseException) -> Classification:
    """Category, severity and transience of ``exc`` (see the module docstring)."""
    fallback = UNKNOWN
    current: BaseException | None = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen and len(seen) < _MAX_CAUSE_DEPTH:
        seen.add(id(current))
        if _is_wrapper(current):
            # The outermost wrapper that knows a kind (a bare FeedError: network) answers
            # only if no cause below it does.
            if fallback == UNKNOWN:
                fallback = _collector(current)
        else:
            found = _classify_one(current)
            if found is not None:
                return fallback if found == UNKNOWN else found
        current = current.__cause__
    return fallback


def _is_wrapper(exc: BaseException) -> TypeGuard[CollectorError]:
    """Whether ``exc`` is one of ours that says nothing of its kind (a status code does)."""
    if not isinstance(exc, CollectorError) or not exc.wrapper:
        return False
    return not (isinstance(exc, FeedUnavailable) and exc.status_code is not None)


def _classify_one(exc: BaseException) -> Classification | None:
    """``exc``'s own classification, or ``None`` when its type says nothing (look deeper)."""
    if isinstance(exc, CollectorError):
        return _collector(exc)
    if "httpx2" in sys.modules:  # else no exception of it exists (module docstring)
        import httpx2

        if isinstance(exc, httpx2.HTTPError | httpx2.InvalidURL):
            return _httpx(exc)
    if isinstance(exc, sa_exc.SQLAlchemyError):
        return _sqlalchemy(exc)
    if isinstance(exc, sqlite3.Error):
        return _DB_TRANSIENT if isinstance(exc, sqlite3.OperationalError) else _DB_PERMANENT
    if "psycopg" in sys.modules:
        import psycopg

        if isinstance(exc, psycopg.Error):
            transient = isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
            return _DB_TRANSIENT if transient else _DB_PERMANENT
    if isinstance(
        exc,
        msgspec.DecodeError | pydantic.ValidationError | json.JSONDecodeError | UnicodeDecodeError,
    ):
        return _DECODE
    if isinstance(exc, MemoryError):
        return _MEMORY
    if isinstance(exc, asyncio.QueueFull):
        return _RESOURCE_TRANSIENT
    if isinstance(exc, OSError):
        return _os_error(exc)
    return None


def _collector(exc: CollectorError) -> Classification:
    """One of ours, by its place in the tree (its errno first, if it is an OSError too)."""
    if isinstance(exc, OSError):
        return _os_error(exc)
    if isinstance(exc, FeedUnavailable) and exc.status_code is not None:
        return http_status(exc.status_code)
    transient = exc.transient
    if isinstance(exc, HandlerFailed) and exc.__cause__ is not None:
        transient = classify(exc.__cause__).transient
    return Classification(exc.category, exc.severity, transient)


def _httpx(exc: httpx2.HTTPError | httpx2.InvalidURL) -> Classification:
    import httpx2  # loaded: exc is one of its exceptions

    if isinstance(exc, httpx2.HTTPStatusError):
        return http_status(exc.response.status_code)
    if isinstance(exc, httpx2.TimeoutException):
        return _TIMEOUT
    if isinstance(exc, httpx2.InvalidURL | httpx2.UnsupportedProtocol):
        return _CONFIG
    if isinstance(exc, httpx2.DecodingError):
        return _DECODE
    if isinstance(exc, httpx2.TooManyRedirects):
        return Classification(Category.HTTP_STATUS, Severity.HIGH, False)
    return _NETWORK


def _sqlalchemy(exc: sa_exc.SQLAlchemyError) -> Classification:
    if isinstance(
        exc,
        sa_exc.OperationalError
        | sa_exc.InterfaceError
        | sa_exc.TimeoutError
        | sa_exc.DisconnectionError,
    ):
        return _DB_TRANSIENT
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return _DB_TRANSIENT
    return _DB_PERMANENT


def _os_error(exc: OSError) -> Classification:
    if isinstance(exc, TimeoutError):
        return _TIMEOUT
    if exc.errno in _DISK_FULL:
        return _RESOURCE_PERMANENT
    if exc.errno in _OUT_OF_HANDLES:
        return _RESOURCE_TRANSIENT
    if isinstance(exc, ConnectionError):
        return _NETWORK
    if isinstance(exc, PermissionError):
        return _CONFIG
    if isinstance(
        exc, FileNotFoundError | FileExistsError | IsADirectoryError | NotADirectoryError
    ):
        return _RESOURCE_PERMANENT
    return _NETWORK
