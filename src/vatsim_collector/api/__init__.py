"""REST API: ``create_app(ingestor, stale_after=...)`` builds the FastAPI application."""

from vatsim_collector.api.app import create_app

__all__ = ["create_app"]
