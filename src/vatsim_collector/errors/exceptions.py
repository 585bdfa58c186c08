"""The collector's one exception tree: every exception class the package defines derives from
``CollectorError``, and the branch it hangs on is its classification.

::

    CollectorError                 base; a wrapper: classified by its __cause__
    ├── FeedUnavailable            network, transient (http_status when given a status code)
    │   └── feed.client.FeedError  a wrapper: its cause decides, else network
    ├── DataRejected (ValueError)  decode, permanent: a document or value failed validation
    ├── StorageUnavailable         database, transient: the database cannot be reached
    ├── HandlerFailed              handler: a bus handler failed; transient if its cause is
    ├── ConfigurationError         configuration, permanent, critical
    └── ResourceExhausted          resource, transient: a bound (queue, spool, disk) was hit

The subclasses live beside the code that raises them (``feed.client.FeedTimeout``,
``pipeline.ingest.DatabaseUnavailable``, ``config.SettingsError``, ...). This module imports
nothing of the package, so that every layer, ``config`` included, may derive from it;
``errors.taxonomy`` turns a tree position (or a library's exception) into a
``Classification``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar


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
    """Base of the collector's own exceptions; subclasses carry their classification.

    A *wrapper* says nothing of its own kind (the root itself, a bare ``FeedError``, a
    circuit breaker's rejection): the first exception of its ``__cause__`` chain that
    classifies decides, and only when none does its own class does. A subclass is no wrapper
    unless its ``class`` statement says ``wrapper=True``, so that a kind is never inherited
    from a generic parent by accident.
    """

    category: ClassVar[Category] = Category.UNKNOWN
    severity: ClassVar[Severity] = Severity.HIGH
    transient: ClassVar[bool] = False
    wrapper: ClassVar[bool] = True

    def __init_subclass__(cls, *, wrapper: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.wrapper = wrapper


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
    # Stated, not inherited: a class that is also a FeedUnavailable (``FeedDocumentError``)
    # must not pick up the feed's transience through the method resolution order.
    transient = False


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
