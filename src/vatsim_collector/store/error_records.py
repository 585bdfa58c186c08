"""The error manager's records in ``error_records`` (``errors.sink.ErrorRecordSink``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, case, func, insert, select

from vatsim_collector.errors.analytics import TOP_ERRORS, Data, Top
from vatsim_collector.errors.records import TRANSIENT_KEY, ErrorRecord
from vatsim_collector.store import schema as t
from vatsim_collector.store.database import DatabaseService

# Transience is a key of the JSON context, not a column (see errors.records).
_TRANSIENT_PATTERN = f'%"{TRANSIENT_KEY}":true%'


class ErrorRecordStore:
    def __init__(self, db: DatabaseService) -> None:
        self.db = db

    def persist(self, records: Sequence[ErrorRecord]) -> None:
        with self.db.write("errors.persist") as conn:
            conn.execute(insert(t.error_records), [r.row() for r in records])

    def summary_since(self, since: datetime, node: str | None = None) -> Data:
        """Every node's records (the table is shared), or only ``node``'s."""
        e = t.error_records
        transient = case((e.c.context.like(_TRANSIENT_PATTERN), True), else_=False)
        recent = e.c.occurred_at >= since
        if node is not None:
            recent = and_(recent, e.c.node == node)
        data = Data()
        with self.db.read("errors.analytics") as conn:
            groups = conn.execute(
                select(
                    e.c.category,
                    e.c.severity,
                    e.c.service,
                    e.c.error_type,
                    transient.label("transient"),
                    e.c.node,
                    func.count().label("n"),
                )
                .where(recent)
                .group_by(
                    e.c.category, e.c.severity, e.c.service, e.c.error_type, transient, e.c.node
                )
            ).all()
            for category, severity, service, error_type, is_transient, origin, n in groups:
                data.add_group(
                    category, severity, service, error_type, bool(is_transient), n, origin
                )
            tops = conn.execute(
                select(
                    e.c.error_type,
                    e.c.message,
                    func.count().label("n"),
                    func.max(e.c.occurred_at).label("last_seen"),
                    func.max(e.c.service).label("service"),
                    func.count(e.c.service.distinct()).label("services"),
                )
                .where(recent)
                .group_by(e.c.error_type, e.c.message)
                .order_by(func.count().desc(), func.max(e.c.occurred_at).desc())
                .limit(TOP_ERRORS)
            ).all()
            for error_type, message, n, last_seen, service, services in tops:
                data.tops[(error_type, message)] = Top(n, last_seen, {service}, services)
            data.times.extend(
                (at, category)
                for at, category in conn.execute(
                    select(e.c.occurred_at, e.c.category).where(recent)
                )
            )
        return data
