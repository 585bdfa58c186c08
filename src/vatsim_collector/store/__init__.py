"""Every SQL statement, and the database's health.

Owns the schema and its Alembic migrations, the engine and pool, ``DatabaseService`` (through
which every statement runs, counted and timed), the snapshot writer and whose fault a failed
write was, held documents, restoring the live state, retention and partitions, forget and
redaction, summaries, the implementations of the error and event layers' sinks (error records,
dead letters, the event log) and the API's read queries.

May import: ``config``, ``errors``, ``feed``, ``tracking``, ``airspace``, ``events``.
"""
