"""The event bus: typed domain events, isolated handlers, metrics, event log, dead letters."""
