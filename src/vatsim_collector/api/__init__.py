"""The HTTP API and dashboard: ``create_app(ingestor, stale_after=...)`` builds the app.

Owns routes, response models and their validation per resource, access control, limits,
problem responses, forwarded addresses, response headers, static files and the Prometheus
metrics. Reads live state through a ``Collector`` view and history through the store's
queries, run by ``DatabaseService``.

May import everything but ``service`` and ``cli``.
"""

from vatsim_collector.api.app import create_app

__all__ = ["create_app"]
