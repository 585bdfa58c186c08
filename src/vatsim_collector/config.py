"""One validated settings object, read from ``VATSIM_*`` environment variables, ``.env`` and flags.

Nothing here is instantiated at import time: the CLI or a test builds a ``Settings`` and passes
it down, so two collectors with different settings can live in one process (the tests do this).
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The one package module config may import: the leaf exception tree, so that a bad setting is
# the configuration error every layer catches.
from vatsim_collector.errors.exceptions import ConfigurationError

LIVE_STATUS_URL = "https://status.vatsim.net/status.json"
LIVE_DATA_FALLBACK_URL = "https://data.vatsim.net/v3/vatsim-data.json"
LIVE_TRANSCEIVERS_FALLBACK_URL = "https://data.vatsim.net/v3/transceivers-data.json"
# VATSIM regenerates the feed every 15 s; asking more often only loads their servers.
LIVE_MIN_POLL_SECONDS = 15.0


def is_live_vatsim_host(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host == "vatsim.net" or host.endswith(".vatsim.net")


def default_database_url() -> str:
    return f"sqlite:///{Path('data') / 'vatsim.db'}"


# A node's name: what error records, /api/status and the cluster table call it; safe in a URL.
NODE_NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"


class SettingsError(ConfigurationError, ValueError):
    """Raised with a message that names the setting and what it accepts."""


API_KEY_ROLES = ("read", "admin")


def parse_api_keys(text: str) -> list[tuple[str, str]]:
    """``(role, key)`` for each comma-separated ``role:key`` entry of ``text``.

    A bare key (no colon) is an admin key: that was the only kind before roles existed.
    Error messages name the entry by position and never quote it, since any part of it may be
    a secret.
    """
    entries: dict[str, tuple[int, str]] = {}
    for position, raw in enumerate((part.strip() for part in text.split(",")), start=1):
        if not raw:
            continue
        role, sep, key = raw.partition(":")
        if not sep:
            role, key = "admin", raw
        role, key = role.strip().lower(), key.strip()
        if role not in API_KEY_ROLES:
            raise ValueError(
                f"entry {position} has an unknown role; write read:<key> or admin:<key> (a bare"
                " key is an admin key; a key containing ':' needs its role in front)"
            )
        if not key:
            raise ValueError(f"entry {position} has a role but no key")
        earlier = entries.get(key)
        if earlier is not None and earlier[1] != role:
            raise ValueError(f"entries {earlier[0]} and {position} give one key two roles")
        entries.setdefault(key, (position, role))
    return [(role, key) for key, (_, role) in entries.items()]


def parse_cors_origins(text: str) -> list[str]:
    """The origins in ``text``; ``*`` allows any. An origin is scheme://host[:port] only."""
    origins = [o.strip() for o in text.split(",") if o.strip()]
    for origin in origins:
        if origin == "*":
            continue
        parts = urlsplit(origin)
        if (
            parts.scheme not in {"http", "https"}
            or not parts.netloc
            or parts.path
            or parts.query
            or parts.fragment
        ):
            # Browsers send Origin without a path or trailing slash, so such an entry
            # would never match.
            raise ValueError(
                f"{origin!r} is not an origin; write scheme://host[:port], e.g."
                " https://example.org, or * for any"
            )
    return origins


_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_HANDLER = re.compile(r"[a-z0-9][a-z0-9_-]{0,47}")


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="VATSIM_",
        env_file=".env",
        extra="ignore",
        validate_default=True,
        # Values such as API keys and database passwords must not reach a printed error.
        hide_input_in_errors=True,
    )

    database_url: str = Field(default_factory=default_database_url)
    status_url: str = LIVE_STATUS_URL
    data_fallback_url: str = LIVE_DATA_FALLBACK_URL
    transceivers_fallback_url: str = LIVE_TRANSCEIVERS_FALLBACK_URL
    poll_interval: float = Field(default=15.0, gt=0, description="seconds between feed polls")
    status_refresh_interval: float = Field(default=3600.0, gt=0)
    http_timeout: float = Field(default=10.0, gt=0)
    user_agent: str = "vatsim-collector/0.1 (+https://github.com/vatsim-collector)"
    fetch_transceivers: bool = True
    # One fetch cycle (status, data and transceivers, connect and whole bodies) ends by then,
    # however slowly a host drips its bytes; http_timeout only bounds each single read.
    fetch_deadline: float = Field(default=12.0, gt=0)
    # Largest decompressed feed document accepted, enforced while decompressing.
    max_document_bytes: int = Field(default=64 * 1024**2, ge=1024**2)
    # More records than this in one section (pilots, controllers, ...): the snapshot is
    # quarantined. The real network has about 2,000 pilots.
    max_records_per_section: int = Field(default=20_000, ge=100)
    # A document dated more than this ahead of the collector's clock is quarantined.
    future_margin_seconds: float = Field(default=300.0, ge=0)
    # Live collection: a document older than this is quarantined (replay takes any age).
    max_document_age_seconds: float = Field(default=86_400.0, gt=0)
    # Malformed records dropped from one snapshot that are kept (scrubbed) for inspection.
    held_records_per_snapshot: int = Field(default=20, ge=0, le=10_000)
    # Seconds between the feed's update timestamps (VATSIM: 15): a longer gap between two
    # stored snapshots counts as missed ticks.
    feed_cadence_seconds: float = Field(default=15.0, gt=0)
    # Fetched snapshots waiting in memory for the writer before they spill to the spool.
    pending_in_memory: int = Field(default=4, ge=1, le=1000)

    missed_snapshots_to_end: int = Field(default=4, ge=1, le=1000)
    flight_reconnect_minutes: float = Field(default=30.0, ge=0)
    sanity_min_pilots: int = Field(default=10, ge=0)
    sanity_max_drop_fraction: float = Field(default=0.5, gt=0, le=1)
    sanity_accept_after: int = Field(
        default=3,
        ge=1,
        description="consecutive quarantined snapshots after which the new level is believed",
    )
    stale_after_seconds: float = Field(default=120.0, gt=0)
    store_names: bool = False

    # Database service (engine pool, query statistics, health).
    db_pool_size: int = Field(default=5, ge=1, le=100)
    db_max_overflow: int = Field(default=5, ge=0, le=100)
    db_pool_timeout: float = Field(default=30.0, gt=0)
    db_pool_recycle: float = Field(default=1800.0, gt=0)
    slow_query_ms: float = Field(default=500.0, gt=0)
    slow_query_log_size: int = Field(default=100, ge=1, le=10_000)
    health_interval: float = Field(default=15.0, gt=0)
    health_latency_degraded_ms: float = Field(default=500.0, gt=0)
    health_pool_saturation_degraded: float = Field(default=0.9, gt=0, le=1)
    health_min_free_disk_mb: float = Field(default=500.0, ge=0)

    # Where accepted snapshots wait while the database is unreachable.
    spool_dir: Path = Path("data") / "spool"
    spool_max_snapshots: int = Field(default=5760, ge=1, description="a day at 15 s")
    spool_max_bytes: int = Field(default=4 * 1024**3, ge=1024**2)

    # Retention, in days, per class of data; 0 keeps it forever.
    retention_positions_days: int = Field(default=30, ge=0)
    retention_transceivers_days: int = Field(default=7, ge=0)
    retention_held_documents_days: int = Field(default=30, ge=0)
    retention_error_records_days: int = Field(default=30, ge=0)
    retention_events_days: int = Field(default=30, ge=0)
    retention_interval: float = Field(default=3600.0, gt=0)
    retention_chunk_rows: int = Field(default=5000, ge=100)
    partitions_ahead_days: int = Field(default=2, ge=1, le=60)
    # Unset: expired positions and transceivers are deleted. Set: each expired UTC day of them
    # is first written to DIR/TABLE/TABLE-YYYY-MM-DD.parquet (zstd at this level).
    archive_dir: Path | None = None
    archive_compression_level: int = Field(default=9, ge=1, le=22)

    # Error layer: breakers per dependency, retries of transient failures, error records.
    breaker_failure_threshold: int = Field(default=5, ge=1, le=1000)
    breaker_cooldown: float = Field(default=30.0, gt=0)
    retry_attempts: int = Field(default=2, ge=1, le=10)
    retry_initial: float = Field(default=0.5, gt=0)
    retry_max: float = Field(default=4.0, gt=0)
    error_window_size: int = Field(default=10_000, ge=100)
    error_flush_interval: float = Field(default=5.0, gt=0)

    # Event bus. Event types written to the event log: comma-separated fnmatch patterns
    # ("*", "pilot.*", "atis.changed"); an empty value logs nothing.
    event_log_types: str = "*"
    # Failed deliveries kept for replay; beyond this the oldest are evicted.
    dead_letter_max: int = Field(default=10_000, ge=1)
    # Events waiting per handler before the overflow policy applies.
    event_queue_size: int = Field(default=10_000, ge=1)
    # Seconds one handler call may take before it counts as failed.
    event_handler_timeout: float = Field(default=10.0, gt=0)
    # Attempts per delivery (the first included) before the event is dead-lettered.
    event_handler_retries: int = Field(default=3, ge=1)
    # Seconds a publish waits for room in a full blocking queue before shedding.
    event_block_timeout: float = Field(default=5.0, ge=0)
    # Handlers registered by modules: importable names, comma-separated, each module with a
    # register(registry) function (pipeline/handlers.py).
    handler_modules: str = ""
    # Handlers (by name, comma-separated) that `vatsim-collector worker` processes run from
    # the stream: with NATS on, the collector does not run them; it still replays their dead
    # letters. Without NATS they run in-process as always.
    remote_handlers: str = ""

    # Several nodes on one PostgreSQL database (docs/scaling.md). This node's name in error
    # records, /api/status and the cluster table; empty: "<host>-<pid>".
    node_name: str = Field(default="", pattern=NODE_NAME_PATTERN.replace("{1,64}", "{0,64}"))
    # Standbys poll the feed too and keep what they fetched, to fill the gap when they take
    # over; false: a standby only waits.
    standby_poll: bool = True
    # Seconds of fetched documents a standby keeps for gap fill.
    gap_fill_seconds: float = Field(default=600.0, ge=0)
    # A leader that stops answering PostgreSQL for this long loses its lock, and a standby
    # takes over; also the bound on a fenced ex-leader's open transaction.
    leader_lease_seconds: float = Field(default=5.0, ge=1, le=300)
    # NATS with JetStream: with a URL, each snapshot's events go through an outbox table to
    # this stream; empty: the in-process bus only.
    nats_url: SecretStr = SecretStr("")
    nats_stream: str = Field(default="VATSIM_EVENTS", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    nats_subject_prefix: str = Field(
        default="vatsim.events", pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
    )
    # Seconds between this node's heartbeats in cluster_nodes (its role and breaker states;
    # breaker resets asked on other nodes are applied then). A node silent for three
    # heartbeats is reported stale.
    node_heartbeat_seconds: float = Field(default=5.0, gt=0, le=300)
    # A node that does not ingest (serve, a standby) checks this often whether the leader
    # committed a newer snapshot, and rebuilds its live view from the database when it did.
    follow_interval: float = Field(default=1.0, gt=0, le=60)
    # The outbox relay and the events stream (docs/events-stream.md). Seconds the stream
    # remembers message ids: a relay restarted after a crash re-publishes what it had
    # published but not yet deleted from the outbox, and the server drops those copies.
    nats_duplicate_window_seconds: float = Field(default=600.0, ge=1, le=86_400)
    # Days the stream keeps an event; 0: until someone removes it.
    nats_stream_max_age_days: float = Field(default=7.0, ge=0)
    # Seconds a batch waits for the server's acknowledgements before it is tried again.
    nats_ack_timeout: float = Field(default=5.0, gt=0, le=300)
    # Outbox rows the relay reads and publishes at a time.
    outbox_batch_size: int = Field(default=500, ge=1, le=4000)
    # Events waiting in the outbox above which health reports degraded.
    outbox_backlog_degraded: int = Field(default=10_000, ge=1)

    # Airspace analytics: sector occupancy and ATC contact, computed during ingest.
    airspace_enabled: bool = True
    # A GeoJSON file of sectors; empty: the shipped VATSpy FIR boundaries.
    sector_file: Path | None = None
    sector_name_property: str = Field(default="id", min_length=1)
    # Feature properties with the altitude band in feet; a missing value is unbounded.
    sector_lower_property: str = "lower_ft"
    sector_upper_property: str = "upper_ft"
    # Snapshots seen outside a sector, in a row, before the flight counts as having left it.
    sector_exit_after: int = Field(default=4, ge=1, le=100)
    # Contact range per facility, overriding the defaults: "TWR=15,APP=60,CTR=400".
    contact_ranges: str = ""
    # Optional boundary filter, off unless an area is given: record only pilots inside these
    # sectors (comma-separated names from the sector file) or this GeoJSON file, plus a margin.
    boundary_sectors: str = ""
    boundary_file: Path | None = None
    boundary_margin_nm: float = Field(default=0.0, ge=0, le=1000)
    # With a boundary: only controllers whose callsign matches one of these patterns (EDDF_*).
    boundary_controllers: str = ""

    # Airports (docs/airports.md): the pinned airportsdata reference, plus an optional CSV file
    # that adds airports or corrects fields of known ones (header: icao and any of name, lat,
    # lon, elevation_ft, tz, country).
    airports_file: Path | None = None
    # An aircraft is placed at the nearest airport within this distance (nautical miles).
    airport_radius_nm: float = Field(default=5.0, gt=0, le=50)

    # Movement detection (README "Movements"): takeoffs, landings, touch-and-goes, go-arounds,
    # off- and on-block, per pilot session, from height above the nearest airport's elevation
    # and ground speed. Off: no movement rows, no flight.* movement events.
    movements_enabled: bool = True
    # A sample slower than the taxi limit is on the ground within this height above the field.
    movement_ground_height_ft: float = Field(default=200.0, ge=0, le=2000)
    # A faster sample (a take-off or landing roll) is on the ground only within this height.
    movement_roll_height_ft: float = Field(default=50.0, ge=0, le=2000)
    # Stopped (parked, holding) at or below this ground speed; taxiing up to the taxi limit.
    movement_stopped_max_kt: float = Field(default=1.0, ge=0, le=20)
    movement_taxi_max_kt: float = Field(default=40.0, gt=0, le=100)
    # Samples a new phase must last before it counts (one noisy sample changes nothing).
    movement_dwell_samples: int = Field(default=2, ge=1, le=10)
    # Back in the air within this many seconds of touchdown without stopping: a touch-and-go.
    movement_touch_and_go_seconds: float = Field(default=90.0, gt=0, le=900)
    # A single ground sample between two air samples is a touch-and-go only when both are
    # within this height above the field (otherwise it is noise).
    movement_touch_and_go_height_ft: float = Field(default=1000.0, gt=0, le=5000)
    # A go-around: descending below this height near an airport, then climbing by at least
    # ``movement_go_around_climb_ft`` for the dwell, without touching down.
    movement_go_around_height_ft: float = Field(default=1000.0, gt=0, le=5000)
    movement_go_around_climb_ft: float = Field(default=300.0, gt=0, le=5000)
    # Stopped this long after landing: on block (a shorter stop is a hold on the taxiway).
    movement_on_block_seconds: float = Field(default=60.0, ge=0, le=3600)

    # API access (docs/access.md). Keys: comma-separated "role:key" entries, role read or
    # admin; a bare key is an admin key (the format before roles existed). With none
    # configured, keyed endpoints always answer 401.
    api_keys: SecretStr = SecretStr("")
    # Live and history data without a key; false: a read key is needed (/health stays open).
    public_read: bool = True
    # Comma-separated origins allowed to call the API from a browser; empty: CORS off.
    cors_origins: str = ""
    # Requests per minute per API key (or per client IP without one); 0 turns the limit off.
    rate_limit_per_minute: int = Field(default=600, ge=0)
    max_request_bytes: int = Field(default=65536, ge=1024)
    # Comma-separated addresses or networks of reverse proxies whose X-Forwarded-For is
    # believed; empty: forwarded headers are ignored and the peer address is the client.
    trusted_proxies: str = ""
    # Serve the interactive API docs (/docs, /redoc); the schema at /openapi.json stays.
    api_docs: bool = False

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    log_level: str = "INFO"
    # Log lines as JSON or for people; "auto": JSON unless stderr is a terminal.
    log_format: Literal["auto", "json", "console"] = "auto"

    @field_validator("database_url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        scheme = value.split(":", 1)[0]
        if scheme not in {"sqlite", "postgresql", "postgresql+psycopg"}:
            raise ValueError(
                "must start with sqlite:/// or postgresql:// (postgresql+psycopg:// also accepted)"
            )
        if scheme == "postgresql":
            value = "postgresql+psycopg" + value[len("postgresql") :]
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return upper

    @field_validator("api_keys")
    @classmethod
    def _key_roles(cls, value: SecretStr) -> SecretStr:
        parse_api_keys(value.get_secret_value())  # raises ValueError naming the entry
        return value

    @property
    def api_key_entries(self) -> list[tuple[str, str]]:
        """``(role, key)`` per configured key; a bare key is an admin key."""
        return parse_api_keys(self.api_keys.get_secret_value())

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: str) -> str:
        for entry in filter(None, (part.strip() for part in value.split(","))):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is neither an IP address nor a network (e.g. 10.0.0.0/8)"
                ) from None
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        parse_cors_origins(value)
        return value

    @field_validator("handler_modules")
    @classmethod
    def _modules(cls, value: str) -> str:
        for entry in _comma_list(value):
            if not _MODULE.fullmatch(entry):
                raise ValueError(f"{entry!r} is not an importable module name (pkg.module)")
        return value

    @field_validator("remote_handlers")
    @classmethod
    def _handler_names(cls, value: str) -> str:
        for entry in _comma_list(value):
            if not _HANDLER.fullmatch(entry):
                raise ValueError(f"{entry!r} is not a handler name (a-z, 0-9, '_', '-')")
        return value

    @property
    def handler_module_list(self) -> list[str]:
        return _comma_list(self.handler_modules)

    @property
    def remote_handler_list(self) -> list[str]:
        return _comma_list(self.remote_handlers)

    @property
    def node(self) -> str:
        """This node's name: the configured one, or "<host>-<pid>"."""
        if self.node_name:
            return self.node_name
        # The host name as far as it fits the pattern (it normally does entirely).
        host = re.sub(r"[^A-Za-z0-9_.:-]", "-", socket.gethostname())[:50] or "node"
        return f"{host}-{os.getpid()}"

    @property
    def nats_enabled(self) -> bool:
        return bool(self.nats_url.get_secret_value())

    @property
    def cors_origin_list(self) -> list[str]:
        return parse_cors_origins(self.cors_origins)

    @property
    def event_log_type_list(self) -> list[str]:
        return [p.strip() for p in self.event_log_types.split(",") if p.strip()]

    @property
    def boundary_sector_list(self) -> list[str]:
        return [n.strip() for n in self.boundary_sectors.split(",") if n.strip()]

    @property
    def boundary_controller_list(self) -> list[str]:
        return [p.strip() for p in self.boundary_controllers.split(",") if p.strip()]

    @model_validator(mode="after")
    def _polite_to_vatsim(self) -> Settings:
        if self.poll_interval < LIVE_MIN_POLL_SECONDS and is_live_vatsim_host(self.status_url):
            raise ValueError(
                f"poll_interval {self.poll_interval:g}s is faster than the"
                f" {LIVE_MIN_POLL_SECONDS:g}s the live VATSIM feed allows;"
                " use a local simulator for faster polling"
            )
        return self


def load_settings(**overrides: Any) -> Settings:
    """Build settings, letting explicit (CLI) overrides win over the environment.

    Validation failures become one readable ``SettingsError`` naming each bad setting.
    """
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "settings"
            env = f"VATSIM_{name.upper()}" if err["loc"] else ""
            where = f"{name} ({env})" if env else name
            lines.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
        raise SettingsError("invalid configuration: " + "; ".join(lines)) from None
