"""An ingestor from settings: migrations applied, airspace and movements wired, live state
restored. Its own module so that ``replay`` opens one without importing the service (and with
it the web stack, the brokers and the simulator)."""

from __future__ import annotations

from sqlalchemy import Engine

from vatsim_collector.airspace.setup import Airspace, build_airspace
from vatsim_collector.config import Settings
from vatsim_collector.movements.setup import build_detector
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor
from vatsim_collector.store.database import DatabaseService
from vatsim_collector.store.migrate import upgrade
from vatsim_collector.store.outbox import EventOutbox

__all__ = ["open_ingestor"]


def open_ingestor(
    settings: Settings, airspace: Airspace | None = None, db: DatabaseService | None = None
) -> tuple[Ingestor, Engine]:
    """Engine with migrations applied, and an ingestor holding the restored live state."""
    airspace = airspace if airspace is not None else build_airspace(settings)
    db = db if db is not None else DatabaseService.from_settings(settings)
    upgrade(db.engine)
    ingestor = Ingestor(
        db,
        IngestConfig.from_settings(settings),
        airspace=airspace.engine,
        boundary=airspace.boundary,
        movements=build_detector(settings),
    )
    if settings.nats_enabled:
        ingestor.outbox = EventOutbox(settings.nats_subject_prefix)
    ingestor.restore()
    return ingestor, db.engine
