"""An ingestor with no reader on another thread (``replay``) builds its live view when it is read
instead of after every commit; what it shows is the same as the view published after a commit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from feeds import SMALL, encode, later, load
from vatsim_collector.pipeline.ingest import IngestConfig, Ingestor, Outcome
from vatsim_collector.store.engine import create_db_engine
from vatsim_collector.store.migrate import upgrade
from vatsim_collector.tracking.live import LiveView


@pytest.fixture
def second_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = create_db_engine(f"sqlite:///{tmp_path_factory.mktemp('second') / 'b.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def _shown(view: LiveView) -> tuple[object, ...]:
    return (
        view.snapshot_at,
        sorted((s.key, s.latest.latitude, s.latest.longitude) for s in view.pilots),
        sorted(s.key for s in view.controllers),
        sorted(s.key for s in view.atis),
        view.prefiles,
    )


def test_a_view_built_on_demand_shows_what_a_published_one_shows(
    engine: Engine, second_engine: Engine
) -> None:
    published = Ingestor(engine, IngestConfig())
    on_demand = Ingestor(second_engine, IngestConfig())
    on_demand.readers_on_other_threads = False
    for ingestor in (published, on_demand):
        ingestor.restore()
    first = load(SMALL)
    docs = [first, later(first, 15), later(first, 30)]
    for doc in docs:
        raw = encode(doc)
        assert published.ingest(raw).outcome is Outcome.INGESTED
        assert on_demand.ingest(raw).outcome is Outcome.INGESTED
        assert _shown(on_demand.live) == _shown(published.live)
    assert on_demand.live is on_demand.live  # built once, then kept until the next commit
    assert len(on_demand.live.pilots) == len(docs[-1]["pilots"])
