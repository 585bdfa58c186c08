"""The event bus: typed domain events delivered to isolated handlers.

Owns event ids and payloads, the bus and its deliveries (queues, timeouts, retries, breakers),
metrics, shed reports and event-log gap markers, the dead-letter types, and the storage
interfaces (``sinks``) that ``store`` implements: the bus itself never touches the database.

May import: ``config``, ``errors``.
"""
