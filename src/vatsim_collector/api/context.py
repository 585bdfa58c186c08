"""What the routes share: the ingestor (live state + engine), the staleness limit and a clock.

``create_app`` stores one ``ApiContext`` on ``app.state``; routes receive it through the
``Context`` dependency, so two apps with different ingestors can live in one process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request

from vatsim_collector.ingest import Ingestor


@dataclass(frozen=True)
class ApiContext:
    ingestor: Ingestor
    stale_after: float
    clock: Callable[[], datetime]

    def age_seconds(self) -> float | None:
        """Seconds since the latest accepted snapshot's ``general.update_timestamp``."""
        last = self.ingestor.live.snapshot_at
        if last is None:
            return None
        return (self.clock() - last).total_seconds()


def get_context(request: Request) -> ApiContext:
    context = request.app.state.api_context
    assert isinstance(context, ApiContext)
    return context


Context = Annotated[ApiContext, Depends(get_context)]
