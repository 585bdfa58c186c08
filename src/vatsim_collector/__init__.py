"""Records the VATSIM network into durable history."""

__version__ = "0.1.0"
