"""One reported failure, as the error manager keeps it and the analytics read it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vatsim_collector.errors.exceptions import Category, Severity

# Where a record's transience is kept in its stored JSON context.
TRANSIENT_KEY = "$transient"


@dataclass(frozen=True)
class ErrorRecord:
    """One reported failure. ``message`` and ``context`` are already scrubbed."""

    occurred_at: datetime
    service: str
    operation: str
    category: Category
    severity: Severity
    transient: bool
    error_type: str
    message: str
    context: dict[str, Any] = field(default_factory=dict)
    # The node that raised it (``Settings.node``); None where no node was named (tools, tests).
    node: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "occurred_at": self.occurred_at.isoformat(),
            "service": self.service,
            "operation": self.operation,
            "category": self.category.value,
            "severity": self.severity.value,
            "transient": self.transient,
            "error_type": self.error_type,
            "message": self.message,
            "context": self.context,
            "node": self.node,
        }

    def row(self) -> dict[str, Any]:
        """The ``error_records`` row (context as JSON text, transience in it)."""
        context = {TRANSIENT_KEY: self.transient, **self.context}
        context[TRANSIENT_KEY] = self.transient
        return {
            "occurred_at": self.occurred_at,
            "service": self.service,
            "operation": self.operation,
            "category": self.category.value,
            "severity": self.severity.value,
            "error_type": self.error_type,
            "message": self.message,
            "context": json.dumps(context, separators=(",", ":"), ensure_ascii=False),
            "node": self.node,
        }
