"""Several collector nodes on one PostgreSQL database: leadership, fencing, the node registry.

See docs/scaling.md for the topologies and docs/architecture.md for where this sits.
"""
