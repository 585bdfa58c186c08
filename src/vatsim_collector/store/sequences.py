"""PostgreSQL id sequences put back to the highest stored id.

A rolled-back transaction gives back its rows but not the ids its inserts drew from the
sequences, so after an interrupted bulk replay every later row would be numbered past a gap:
the same history under other ids. Rewinding the sequences before the replay resumes makes it
number rows as an uninterrupted run would. Only for a process that is the database's sole
writer (a back-fill): a concurrent transaction may hold ids above the stored maximum.
SQLite needs none of this: its next id is derived from the rows themselves.
"""

from __future__ import annotations

from sqlalchemy import Connection, func, select, text

from vatsim_collector.store import schema as t


def rewind_sequences(conn: Connection) -> list[str]:
    """Set each table's id sequence to follow its highest id; the tables changed."""
    if conn.dialect.name != "postgresql":
        return []
    rewound: list[str] = []
    for table in t.metadata.sorted_tables:
        column = table.c.get("id")
        if column is None or column.autoincrement is not True:
            continue
        sequence = conn.execute(
            text("SELECT pg_get_serial_sequence(:table, 'id')"), {"table": table.name}
        ).scalar_one_or_none()
        if sequence is None:
            continue
        highest = conn.execute(select(func.max(column))).scalar_one()
        # is_called false: the next nextval() returns exactly highest + 1 (or 1 when empty).
        conn.execute(
            text("SELECT setval(CAST(:sequence AS regclass), :next, false)"),
            {"sequence": sequence, "next": (highest or 0) + 1},
        )
        rewound.append(table.name)
    return rewound
