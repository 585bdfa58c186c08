"""Operational visibility of a running collector: Prometheus metrics (logs: ``logsetup``)."""

from vatsim_collector.observability.metrics import ServiceMetrics, install_metrics

__all__ = ["ServiceMetrics", "install_metrics"]
