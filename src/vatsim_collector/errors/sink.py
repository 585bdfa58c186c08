"""Where the error manager keeps its records: an interface the store implements.

The error layer must work before, without and while losing the database, and must not depend
on it: the service wires ``store.error_records.ErrorRecordStore`` in; tests and tools may pass
``None`` (memory only) or their own sink.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from vatsim_collector.errors.analytics import Data
from vatsim_collector.errors.records import ErrorRecord


class ErrorRecordSink(Protocol):
    def persist(self, records: Sequence[ErrorRecord]) -> None:
        """Store ``records`` in one transaction, or raise: the manager keeps them queued."""

    def summary_since(self, since: datetime, node: str | None = None) -> Data:
        """The stored records since ``since`` -- of every node, or only those ``node``
        raised -- summarised for analytics (or raise)."""
