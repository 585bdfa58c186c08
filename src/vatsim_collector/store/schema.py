"""The database schema, shared by SQLite and PostgreSQL. Migrations create it; tests may too.

Positions and transceivers are the volume tables (a row per pilot per 15 s, and more): they are
keyed by snapshot first, without a separate row id on SQLite, so every snapshot appends to the
end of one B-tree. Keyed by session first, each snapshot would dirty one page per online pilot
and the cost of a commit would grow with history. A track is still cheap: one primary-key
lookup per snapshot of the session.

Snapshot ids are the feed's ``update_timestamp`` in milliseconds since the Unix epoch, so a
day of positions is a contiguous id range (PostgreSQL partitions and retention use that).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
)

from vatsim_collector.store.types import MicroDegrees, UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

# SQLite stores an INTEGER PRIMARY KEY as the rowid only when the type is exactly INTEGER.
IdType = BigInteger().with_variant(Integer(), "sqlite")


def _plan_columns() -> list[Column[object]]:
    return [
        Column("flight_rules", Text),
        Column("aircraft", Text),
        Column("aircraft_faa", Text),
        Column("aircraft_short", Text),
        Column("departure", Text),
        Column("arrival", Text),
        Column("alternate", Text),
        Column("cruise_tas", Text),
        Column("altitude", Text),
        Column("deptime", Text),
        Column("enroute_time", Text),
        Column("fuel_time", Text),
        Column("remarks", Text),
        Column("route", Text),
        Column("revision_id", Integer),
        Column("assigned_transponder", Text),
    ]


def _session_columns() -> list[Column[object]]:
    return [
        Column("id", IdType, primary_key=True, autoincrement=True),
        Column("cid", Integer, nullable=False),
        Column("callsign", Text, nullable=False),
        Column("logon_time", UTCDateTime, nullable=False),
        Column("first_seen_at", UTCDateTime, nullable=False),
        # Always the time of the last accepted snapshot the session was in.
        Column("last_seen_at", UTCDateTime, nullable=False),
        # NULL while the session is online (or missing for fewer than N snapshots).
        Column("ended_at", UTCDateTime),
        Column("name", Text),
        Column("server", Text),
    ]


snapshots = Table(
    "snapshots",
    metadata,
    # update_timestamp in milliseconds since 1970-01-01 UTC (see snapshot_id_for).
    Column("id", IdType, primary_key=True, autoincrement=False),
    Column("update_timestamp", UTCDateTime, nullable=False, unique=True),
    Column("fetched_at", UTCDateTime, nullable=False),
    Column("status", Text, nullable=False),  # accepted | quarantined
    Column("reason", Text),
    Column("pilots", Integer, nullable=False),
    Column("controllers", Integer, nullable=False),
    Column("atis", Integer, nullable=False),
    Column("prefiles", Integer, nullable=False),
    Column("transceivers", Integer),
    # The leadership epoch of the node that stored it (cluster_leadership): after a failover,
    # which leader wrote what. NULL for snapshots stored before there were epochs.
    Column("leader_epoch", BigInteger),
    Index("ix_snapshots_status_update_timestamp", "status", "update_timestamp"),
)

# Documents kept for inspection: quarantined snapshots and rejected (undecodable) documents.
# Failures worth keeping: the error layer records here (messages scrubbed of secrets).
error_records = Table(
    "error_records",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("service", Text, nullable=False),
    Column("operation", Text, nullable=False),
    Column("category", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("error_type", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("context", Text),  # JSON
    # The node that raised it (docs/scaling.md); NULL on records written before nodes existed.
    Column("node", Text),
    Index("ix_error_records_occurred_at", "occurred_at"),
)

held_documents = Table(
    "held_documents",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("received_at", UTCDateTime, nullable=False),
    Column("kind", Text, nullable=False),  # quarantined | rejected
    Column("source", Text),
    Column("reason", Text, nullable=False),
    Column("snapshot_id", IdType, ForeignKey("snapshots.id", ondelete="CASCADE")),
    Column("body_gzip", LargeBinary, nullable=False),
    Index("ix_held_documents_received_at", "received_at"),
)

flights = Table(
    "flights",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("cid", Integer, nullable=False),
    Column("callsign", Text, nullable=False),
    Column("departure", Text),
    Column("arrival", Text),
    Column("started_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime),
    Index("ix_flights_callsign_started_at", "callsign", "started_at"),
    Index("ix_flights_cid_callsign", "cid", "callsign"),
)

# pilot_sessions, controller_sessions, atis_sessions and prefiles: every snapshot updates
# their online rows' last_seen_at, so on PostgreSQL they leave room on each page for that
# update to stay on its page (fillfactor 50, set by migration 0008).
pilot_sessions = Table(
    "pilot_sessions",
    metadata,
    *_session_columns(),
    Column("flight_id", IdType, ForeignKey("flights.id"), nullable=False),
    Column("pilot_rating", SmallInteger),
    Column("military_rating", SmallInteger),
    UniqueConstraint("cid", "callsign", "logon_time"),
    Index("ix_pilot_sessions_flight_id", "flight_id"),
    Index("ix_pilot_sessions_ended_at", "ended_at"),
)

flight_plans = Table(
    "flight_plans",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("pilot_session_id", IdType, ForeignKey("pilot_sessions.id"), nullable=False),
    Column("flight_id", IdType, ForeignKey("flights.id"), nullable=False),
    Column("first_seen_at", UTCDateTime, nullable=False),
    *_plan_columns(),
    Index("ix_flight_plans_pilot_session_id", "pilot_session_id"),
    Index("ix_flight_plans_flight_id", "flight_id"),
)

# The volume tables on PostgreSQL (issue 14; docs/postgresql.md "Storage layout"): coordinates
# are int4 micro-degrees (MicroDegrees), session ids int4 (see SessionRef), and there is no
# primary key. Rows arrive in snapshot order, so a BRIN index on snapshot_id finds a snapshot's
# rows for a few bytes per million rows, and a deduplicated btree on pilot_session_id serves
# tracks (7 to 9 bytes a row, BENCHMARKS.md). One row per (snapshot, session) -- and per (snapshot,
# callsign, transceiver) -- is kept without a unique index: a snapshot's rows are written only
# in the transaction that inserts its ``snapshots`` row (unique id), and the writer writes each
# key once (store/writer.py). SQLite keeps its primary keys: its tables are the key B-trees.
_POSTGRESQL = "postgresql"
_BRIN = {"pages_per_range": 16, "autosummarize": "on"}

# Session ids are bigint in their own tables; the volume tables refer to them in 4 bytes. At
# ten thousand sessions a day the int4 range lasts for centuries; an id beyond it would make
# the snapshot's write fail loudly ("integer out of range"), never store a wrong id.
SessionRef = Integer

positions = Table(
    "positions",
    metadata,
    # Column order: 8-byte, then 4-byte, then 2-byte columns, so PostgreSQL pads nothing
    # (a row's values are 32 bytes).
    Column("snapshot_id", IdType, ForeignKey("snapshots.id"), nullable=False),
    Column("pilot_session_id", SessionRef, ForeignKey("pilot_sessions.id"), nullable=False),
    Column("latitude", MicroDegrees, nullable=False),
    Column("longitude", MicroDegrees, nullable=False),
    Column("altitude", Integer, nullable=False),
    Column("groundspeed", SmallInteger, nullable=False),
    Column("heading", SmallInteger, nullable=False),
    # Squawk as an integer of its four octal digits (e.g. 7000); NULL if the feed sent junk.
    Column("transponder", SmallInteger),
    Column("qnh_mb", SmallInteger),
    # The primary key exists on SQLite only (migration 0007 drops it on PostgreSQL).
    PrimaryKeyConstraint("snapshot_id", "pilot_session_id"),
    Index(
        "ix_positions_snapshot_id", "snapshot_id", postgresql_using="brin", postgresql_with=_BRIN
    ).ddl_if(dialect=_POSTGRESQL),
    Index("ix_positions_pilot_session_id", "pilot_session_id").ddl_if(dialect=_POSTGRESQL),
    sqlite_with_rowid=False,
    # One partition per UTC day of snapshot ids, created by store.partitions.
    postgresql_partition_by="RANGE (snapshot_id)",
)


def _controller_like(name: str) -> Table:
    return Table(
        name,
        metadata,
        *_session_columns(),
        Column("frequency", Text),
        Column("facility", SmallInteger, nullable=False),
        Column("rating", SmallInteger),
        Column("visual_range", Integer),
        Column("is_observer", Boolean, nullable=False),
        Column("is_supervisor", Boolean, nullable=False),
        # Centroid of the station's transceivers: v3 controllers carry no position of their own.
        Column("latitude", Float),
        Column("longitude", Float),
        UniqueConstraint("cid", "callsign", "logon_time"),
        Index(f"ix_{name}_ended_at", "ended_at"),
    )


controller_sessions = _controller_like("controller_sessions")
atis_sessions = _controller_like("atis_sessions")

atis_revisions = Table(
    "atis_revisions",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("atis_session_id", IdType, ForeignKey("atis_sessions.id"), nullable=False),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("atis_code", Text),
    Column("text_atis", Text),
    Index("ix_atis_revisions_atis_session_id", "atis_session_id"),
)

prefiles = Table(
    "prefiles",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("cid", Integer, nullable=False),
    Column("callsign", Text, nullable=False),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime),
    Column("name", Text),
    *_plan_columns(),
    Index("ix_prefiles_cid_callsign", "cid", "callsign"),
    Index("ix_prefiles_ended_at", "ended_at"),
)

transceivers = Table(
    "transceivers",
    metadata,
    Column("snapshot_id", IdType, ForeignKey("snapshots.id"), primary_key=True),
    Column("callsign", Text, primary_key=True),
    Column("transceiver_id", SmallInteger, primary_key=True),
    Column("frequency_hz", Integer, nullable=False),
    Column("latitude", MicroDegrees),
    Column("longitude", MicroDegrees),
    Column("height_msl_m", Float),
    Column("height_agl_m", Float),
    Column("pilot_session_id", SessionRef, ForeignKey("pilot_sessions.id")),
    Column("controller_session_id", SessionRef, ForeignKey("controller_sessions.id")),
    Column("atis_session_id", SessionRef, ForeignKey("atis_sessions.id")),
    # As for positions: the primary key on SQLite only, a BRIN index on PostgreSQL. Every
    # query reads transceivers by snapshot (one, or a range).
    Index(
        "ix_transceivers_snapshot_id",
        "snapshot_id",
        postgresql_using="brin",
        postgresql_with=_BRIN,
    ).ddl_if(dialect=_POSTGRESQL),
    sqlite_with_rowid=False,
    postgresql_partition_by="RANGE (snapshot_id)",
)


# The event bus's log: every published event of the configured types, for audit and back-fill.
# The id is the event's UUIDv7 text, so a re-published event is stored once.
events = Table(
    "events",
    metadata,
    Column("id", Text, primary_key=True),
    Column("type", Text, nullable=False),
    Column("time", UTCDateTime, nullable=False),
    Column("source", Text, nullable=False),
    Column("correlation_id", Text),
    Column("payload", Text, nullable=False),  # msgspec JSON of the payload, tag included
    Index("ix_events_time_id", "time", "id"),
    Index("ix_events_type_time", "type", "time"),
)

# Deliveries that exhausted their retries: one row per (event, handler), bounded in number
# (the oldest go first) rather than expired by age, and kept until replayed or discarded.
dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("event_id", Text, nullable=False),
    Column("event_type", Text, nullable=False),
    Column("event_time", UTCDateTime, nullable=False),
    Column("handler", Text, nullable=False),
    Column("event", Text, nullable=False),  # the whole event as JSON
    Column("error_type", Text),
    Column("error_category", Text),
    Column("error_message", Text),
    Column("attempts", Integer, nullable=False),
    Column("first_failed_at", UTCDateTime, nullable=False),
    Column("last_failed_at", UTCDateTime, nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),  # pending | replaying
    UniqueConstraint("event_id", "handler"),
    Index("ix_dead_letters_handler", "handler"),
)


# Airspace analytics. Rows are written when something starts or ends, never per snapshot: an open
# row's running state (last time inside, last contact) is rebuilt from positions and sessions.
sector_occupancy = Table(
    "sector_occupancy",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("pilot_session_id", IdType, ForeignKey("pilot_sessions.id"), nullable=False),
    Column("flight_id", IdType, ForeignKey("flights.id"), nullable=False),
    Column("sector", Text, nullable=False),
    Column("entered_at", UTCDateTime, nullable=False),
    Column("entry_latitude", Float, nullable=False),
    Column("entry_longitude", Float, nullable=False),
    Column("entry_altitude", Integer, nullable=False),
    Column("exited_at", UTCDateTime),  # NULL while inside (or outside for fewer than N)
    Column("exit_latitude", Float),
    Column("exit_longitude", Float),
    Column("exit_altitude", Integer),
    UniqueConstraint("pilot_session_id", "sector", "entered_at"),
    Index("ix_sector_occupancy_sector_entered_at", "sector", "entered_at"),
    Index("ix_sector_occupancy_flight_id", "flight_id"),
    Index("ix_sector_occupancy_exited_at", "exited_at"),
)

contact_intervals = Table(
    "contact_intervals",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("pilot_session_id", IdType, ForeignKey("pilot_sessions.id"), nullable=False),
    Column("flight_id", IdType, ForeignKey("flights.id"), nullable=False),
    Column("controller_session_id", IdType, ForeignKey("controller_sessions.id"), nullable=False),
    Column("frequency_hz", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime),  # NULL while in contact
    UniqueConstraint("pilot_session_id", "controller_session_id", "started_at"),
    Index("ix_contact_intervals_flight_id", "flight_id"),
    # Covering: a controller's contacts in a window and their flights, read from the index
    # alone (aircraft handled in controller activity).
    Index(
        "ix_contact_intervals_controller_window",
        "controller_session_id",
        "started_at",
        "ended_at",
        "flight_id",
    ),
    Index("ix_contact_intervals_started_at", "started_at"),
    Index("ix_contact_intervals_ended_at", "ended_at"),
)

# A controller's frequency and facility over its session (the session row keeps the latest):
# what a recompute needs to match contacts exactly as they were matched live.
controller_frequencies = Table(
    "controller_frequencies",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("controller_session_id", IdType, ForeignKey("controller_sessions.id"), nullable=False),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("frequency", Text),
    Column("facility", SmallInteger, nullable=False),
    Index("ix_controller_frequencies_controller_session_id", "controller_session_id"),
)

flight_summaries = Table(
    "flight_summaries",
    metadata,
    Column("flight_id", IdType, ForeignKey("flights.id"), primary_key=True, autoincrement=False),
    Column("cid", Integer, nullable=False),
    Column("callsign", Text, nullable=False),
    Column("departure", Text),
    Column("arrival", Text),
    Column("aircraft", Text),
    Column("started_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime, nullable=False),
    Column("online_minutes", Float, nullable=False),
    Column("airborne_minutes", Float, nullable=False),
    Column("distance_nm", Float, nullable=False),
    Column("max_altitude", Integer),
    Column("coverage", Float),
    Column("airborne_coverage", Float),
    Column("controllers", Text, nullable=False),  # JSON
    Column("sectors", Text, nullable=False),  # JSON
    Column("computed_at", UTCDateTime, nullable=False),
    Index("ix_flight_summaries_ended_at", "ended_at"),
    Index("ix_flight_summaries_callsign", "callsign"),
    Index("ix_flight_summaries_cid", "cid"),
    Index("ix_flight_summaries_departure", "departure"),
    Index("ix_flight_summaries_arrival", "arrival"),
)

controller_summaries = Table(
    "controller_summaries",
    metadata,
    Column(
        "controller_session_id",
        IdType,
        ForeignKey("controller_sessions.id"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("cid", Integer, nullable=False),
    Column("callsign", Text, nullable=False),
    Column("facility", SmallInteger, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("ended_at", UTCDateTime, nullable=False),
    Column("duration_minutes", Float, nullable=False),
    Column("frequencies", Text, nullable=False),  # JSON
    Column("aircraft_handled", Integer, nullable=False),
    Column("peak_concurrent", Integer, nullable=False),
    Column("hourly", Text, nullable=False),  # JSON
    Column("per_aircraft", Text, nullable=False),  # JSON
    Column("computed_at", UTCDateTime, nullable=False),
    Index("ix_controller_summaries_ended_at", "ended_at"),
    Index("ix_controller_summaries_callsign", "callsign"),
    Index("ix_controller_summaries_cid", "cid"),
)


# Several nodes on one PostgreSQL database (docs/scaling.md).
#
# One row: who leads, and the fencing epoch it was elected with. Every snapshot transaction
# reads the row (FOR SHARE) and refuses to commit unless the epoch is still its own, so an
# ex-leader that was paused or cut off can never commit after a new leader took over.
cluster_leadership = Table(
    "cluster_leadership",
    metadata,
    Column("id", SmallInteger, primary_key=True, autoincrement=False),  # always 1
    Column("epoch", BigInteger, nullable=False),
    Column("leader_node", Text),
    Column("elected_at", UTCDateTime),
)

# Every node that runs: its role, a heartbeat, and its breakers (JSON) for any node to show.
cluster_nodes = Table(
    "cluster_nodes",
    metadata,
    Column("node", Text, primary_key=True),
    Column("role", Text, nullable=False),  # leader | standby | api | worker
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
    Column("breakers", Text),  # JSON list of breaker snapshots
)

# A breaker reset asked on one node for the node that owns the breaker; the owner applies
# and deletes it on its next heartbeat.
breaker_resets = Table(
    "breaker_resets",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("node", Text, nullable=False),
    Column("breaker", Text, nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
    Index("ix_breaker_resets_node", "node"),
)

# Transactional outbox: each snapshot's events, written in the snapshot's own transaction, for
# the relay to publish to JetStream (ordered by id) and delete once the server acknowledged.
event_outbox = Table(
    "event_outbox",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("event_id", Text, nullable=False, unique=True),
    Column("subject", Text, nullable=False),
    Column("snapshot_id", BigInteger),
    Column("event", Text, nullable=False),  # the whole event as JSON, as the bus carries it
    Column("created_at", UTCDateTime, nullable=False),
)

# Movements (issue 13): what a pilot session did at an airport, detected live in the snapshot's
# transaction and identically by recompute. ``at`` is the estimate, between ``bracket_from`` (the
# last sample before the movement) and ``bracket_to`` (the first sample after it).
movements = Table(
    "movements",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("pilot_session_id", IdType, ForeignKey("pilot_sessions.id"), nullable=False),
    Column("flight_id", IdType, ForeignKey("flights.id"), nullable=False),
    Column("snapshot_id", BigInteger, nullable=False),  # the snapshot that confirmed it
    Column("cid", Integer, nullable=False),
    Column("callsign", Text, nullable=False),
    # off_block, takeoff, landing, touch_and_go, go_around, on_block
    Column("kind", Text, nullable=False),
    Column("airport", Text),  # ICAO code; NULL: no airport within the radius
    Column("at", UTCDateTime, nullable=False),
    Column("bracket_from", UTCDateTime, nullable=False),
    Column("bracket_to", UTCDateTime, nullable=False),
    Column("runway_heading", SmallInteger),  # true degrees, 0-359, when the track shows it
    Column("diversion", Boolean, nullable=False),  # a landing away from the filed arrival
    Column("filed_arrival", Text),  # the plan's arrival when it was detected
    Index("ix_movements_airport_at", "airport", "at"),
    Index("ix_movements_cid_at", "cid", "at"),
    Index("ix_movements_at", "at"),
    Index("ix_movements_pilot_session_id", "pilot_session_id"),
    Index("ix_movements_flight_id", "flight_id"),
)

# The movement detector's state of each open pilot session, written when it changes (not every
# snapshot) and deleted when the session ends, so a restart continues detection exactly.
movement_state = Table(
    "movement_state",
    metadata,
    Column("pilot_session_id", IdType, ForeignKey("pilot_sessions.id"), primary_key=True),
    Column("state", Text, nullable=False),  # JSON, movements/state.py
    Column("snapshot_id", BigInteger, nullable=False),  # the snapshot that last changed it
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def snapshot_id_for(update_timestamp: datetime) -> int:
    """The id of the snapshot published at ``update_timestamp`` (milliseconds since epoch)."""
    return (update_timestamp - _EPOCH) // timedelta(milliseconds=1)
