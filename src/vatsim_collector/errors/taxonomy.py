"""The project's exception tree and the classifier that maps any exception to a category.

Exceptions the collector raises itself::

    CollectorError                 base; classified by its __cause__ when raised bare
    ├── FeedUnavailable            network, transient (http_status when given a status code)
    ├── DataRejected (ValueError)  decode, permanent: a document or value failed validation
    ├── StorageUnavailable         database, transient: the database cannot be reached
    ├── HandlerFailed              handler: a bus handler failed; transient if its cause is
    ├── ConfigurationError         configuration, permanent, critical
    └── ResourceExhausted          resource, transient: a bound (queue, spool, disk) was hit

``classify(exc)`` also knows the exceptions of the libraries and modules the collector uses:

============================================  ==============  ========  =========
exception                                     category        severity  transient
============================================  ==============  ========  =========
httpx2.TimeoutException, TimeoutError         timeout         medium    yes
httpx2.TransportError (ConnectError, ...)     network         medium    yes
httpx2.HTTPStatusError 5xx, 408, 425, 429     http_status     medium    yes
httpx2.HTTPStatusError other statuses         http_status     high      no
httpx2.DecodingError                          decode          medium    no
httpx2.InvalidURL, UnsupportedProtocol        configuration   high      no
feed FeedError (by subclass / status_code)    timeout, network, http_status or decode
ConnectionError, other OSError                network         medium    yes
OSError ENOSPC/EDQUOT                         resource        high      no
OSError EMFILE/ENFILE/ENOMEM/ENOBUFS          resource        high      yes
PermissionError                               configuration   high      no
FileNotFoundError and other file errors       resource        high      no
FeedDecodeError, msgspec.DecodeError,         decode          medium    no
pydantic.ValidationError, json errors,
UnicodeDecodeError
SQLAlchemy OperationalError, InterfaceError,  database        high      yes
pool TimeoutError, DisconnectionError,
invalidated connections, DatabaseUnavailable
other SQLAlchemyError and DB-API errors       database        high      no
SettingsError                                 configuration   critical  no
MemoryError                                   resource        critical  no
anything else                                 unknown         high      no
============================================  ==============  ========  =========

Generic wrappers (a bare ``CollectorError``, ``RuntimeError``, ``Exception``, anything not in
the table, and a ``FeedError`` that says nothing about its kind) are classified by walking
their ``__cause__`` chain; the first cause that classifies decides.
"""

from __future__ import annotations

import asyncio
import errno
import json
import sqlite3
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

import httpx2
import msgspec
import psycopg
import pydantic
from sqlalchemy import exc as sa_exc

from vatsim_collector.config import SettingsError


class Category(StrEnum):
    NETWORK = "network"
    TIMEOUT = "timeout"
    HTTP_STATUS = "http_status"
    DECODE = "decode"
    DATABASE = "database"
    CONFIGURATION = "configuration"
    RESOURCE = "resource"
    HANDLER = "handler"
    UNKNOWN = "unknown"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Classification:
    category: Category
    severity: Severity
    transient: bool


class CollectorError(Exception):
    """Base of the collector's own exceptions; subclasses carry their classification."""

    category: ClassVar[Category] = Category.UNKNOWN
    severity: ClassVar[Severity] = Severity.HIGH
    transient: ClassVar[bool] = False


class FeedUnavailable(CollectorError):
    """A feed could not be fetched. ``status_code`` is set when the server answered."""

    category = Category.NETWORK
    severity = Severity.MEDIUM
    transient = True

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class DataRejected(CollectorError, ValueError):
    """A document or value was read but is not acceptable; retrying will not change that."""

    category = Category.DECODE
    severity = Severity.MEDIUM


class StorageUnavailable(CollectorError):
    """The database (or the spool standing in for it) cannot be reached right now."""

    category = Category.DATABASE
    transient = True


class HandlerFailed(CollectorError):
    """An event handler failed; ``handler`` names it and ``__cause__`` says why."""

    category = Category.HANDLER
    severity = Severity.MEDIUM

    def __init__(self, handler: str, message: str = "") -> None:
        super().__init__(f"handler {handler} failed" + (f": {message}" if message else ""))
        self.handler = handler


class ConfigurationError(CollectorError):
    """The configuration cannot work; the message names the setting."""

    category = Category.CONFIGURATION
    severity = Severity.CRITICAL


class ResourceExhausted(CollectorError):
    """A bound was reached (queue, spool, disk, file descriptors); it may free up."""

    category = Category.RESOURCE
    transient = True


_MAX_CAUSE_DEPTH = 8

UNKNOWN = Classification(Category.UNKNOWN, Severity.HIGH, False)
_TIMEOUT = Classification(Category.TIMEOUT, Severity.MEDIUM, True)
_NETWORK = Classification(Category.NETWORK, Severity.MEDIUM, True)
_DECODE = Classification(Category.DECODE, Severity.MEDIUM, False)
_DB_TRANSIENT = Classification(Category.DATABASE, Severity.HIGH, True)
_DB_PERMANENT = Classification(Category.DATABASE, Severity.HIGH, False)
_CONFIG = Classification(Category.CONFIGURATION, Severity.HIGH, False)
_CONFIG_CRITICAL = Classification(Category.CONFIGURATION, Severity.CRITICAL, False)
_RESOURCE_PERMANENT = Classification(Category.RESOURCE, Severity.HIGH, False)
_RESOURCE_TRANSIENT = Classification(Category.RESOURCE, Severity.HIGH, True)
_MEMORY = Classification(Category.RESOURCE, Severity.CRITICAL, False)

_TRANSIENT_STATUSES = frozenset({408, 425, 429})
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
_OUT_OF_HANDLES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
# Exceptions of other project modules are matched by qualified class name: importing those
# modules here would make an import cycle as soon as one of them uses the error layer.
_FEED_ERROR = "vatsim_collector.feed.client.FeedError"
_FEED_KINDS = {
    "vatsim_collector.feed.client.FeedTimeout": _TIMEOUT,
    "vatsim_collector.feed.client.FeedConnectionError": _NETWORK,
    "vatsim_collector.feed.client.FeedDocumentError": _DECODE,
}
_FEED_DECODE_ERROR = "vatsim_collector.feed.decode.FeedDecodeError"
_DATABASE_UNAVAILABLE = "vatsim_collector.pipeline.ingest.DatabaseUnavailable"


def http_status(status: int) -> Classification:
    """The classification of an HTTP answer with ``status``."""
    if status >= 500 or status in _TRANSIENT_STATUSES:
        return Classification(Category.HTTP_STATUS, Severity.MEDIUM, True)
    return Classification(Category.HTTP_STATUS, Severity.HIGH, False)


def classify(exc: BaseException) -> Classification:
    """Category, severity and transience of ``exc`` (see the module docstring)."""
    current: BaseException | None = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen and len(seen) < _MAX_CAUSE_DEPTH:
        seen.add(id(current))
        found = _classify_one(current)
        if found is not None:
            return found
        current = current.__cause__
    return UNKNOWN


def _classify_one(exc: BaseException) -> Classification | None:
    """``exc``'s own classification, or ``None`` when its type says nothing (look deeper)."""
    if isinstance(exc, CollectorError):
        return _collector(exc)
    if isinstance(exc, httpx2.HTTPError | httpx2.InvalidURL):
        return _httpx(exc)
    names = _type_names(exc)
    if _FEED_ERROR in names:
        return _feed(exc, names)
    if _DATABASE_UNAVAILABLE in names:
        return _DB_TRANSIENT
    if _FEED_DECODE_ERROR in names:
        return _DECODE
    if isinstance(exc, sa_exc.SQLAlchemyError):
        return _sqlalchemy(exc)
    if isinstance(exc, sqlite3.Error | psycopg.Error):
        transient = isinstance(
            exc, sqlite3.OperationalError | psycopg.OperationalError | psycopg.InterfaceError
        )
        return _DB_TRANSIENT if transient else _DB_PERMANENT
    if isinstance(exc, SettingsError):
        return _CONFIG_CRITICAL
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


def _collector(exc: CollectorError) -> Classification | None:
    if type(exc) is CollectorError:
        return None
    if isinstance(exc, FeedUnavailable) and exc.status_code is not None:
        return http_status(exc.status_code)
    transient = exc.transient
    if isinstance(exc, HandlerFailed) and exc.__cause__ is not None:
        transient = classify(exc.__cause__).transient
    return Classification(exc.category, exc.severity, transient)


def _httpx(exc: httpx2.HTTPError | httpx2.InvalidURL) -> Classification:
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


_NAMES: dict[type[BaseException], frozenset[str]] = {}


def _type_names(exc: BaseException) -> frozenset[str]:
    """Qualified names of the classes of ``exc`` (cached per type)."""
    cls = type(exc)
    names = _NAMES.get(cls)
    if names is None:
        names = frozenset(f"{c.__module__}.{c.__qualname__}" for c in cls.__mro__)
        if len(_NAMES) < 1024:
            _NAMES[cls] = names
    return names


def _feed(exc: BaseException, names: frozenset[str]) -> Classification:
    """A FeedError: by its status code, by its subclass, by its cause, else network."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return http_status(status)
    for name, kind in _FEED_KINDS.items():
        if name in names:
            return kind
    if exc.__cause__ is not None:
        inner = classify(exc.__cause__)
        if inner.category is not Category.UNKNOWN:
            return inner
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
