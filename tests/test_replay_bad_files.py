"""``replay`` of a folder with bad files among good ones: each is reported, the rest ingested."""

from __future__ import annotations

import copy
import gzip
from pathlib import Path

import orjson
from sqlalchemy import create_engine, func, select

from feeds import SMALL, encode, later, load, timestamp
from test_cli import cli, summary
from vatsim_collector.store import schema as t


def write_bomb(path: Path, decompressed_mib: int) -> None:
    """A gzip file of zeros that inflates to ``decompressed_mib`` MiB (about 1,000 : 1)."""
    zeros = bytes(1024 * 1024)
    with gzip.open(path, "wb", compresslevel=9) as handle:
        for _ in range(decompressed_mib):
            handle.write(zeros)


def test_replay_reports_each_bad_file_and_ingests_the_rest(
    database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "feeds"
    folder.mkdir()
    base = load(SMALL)
    good = [later(base, 15 * i) for i in range(4)]
    for i, doc in enumerate(good):
        (folder / f"vatsim-data-{i}.json").write_bytes(encode(doc))

    # A pilot whose groundspeed no column holds: that record goes, the snapshot stays.
    fast = copy.deepcopy(later(base, 60))
    fast["pilots"][0]["groundspeed"] = 70_000
    (folder / "vatsim-data-fast.json").write_bytes(encode(fast))
    # Invalid UTF-8 inside one pilot's name.
    broken_name = encode(later(base, 75)).replace(
        orjson.dumps(base["pilots"][1]["callsign"]),
        orjson.dumps(base["pilots"][1]["callsign"])[:-1] + b'\xff\xfe"',
        1,
    )
    (folder / "vatsim-data-utf8.json").write_bytes(broken_name)
    future = copy.deepcopy(base)
    future["general"]["update_timestamp"] = "2099-01-01T00:00:00Z"
    (folder / "vatsim-data-future.json").write_bytes(encode(future))
    (folder / "vatsim-data-tiny.json").write_bytes(b"\x00\x01\x02\x03\x04\x05\x06")
    write_bomb(folder / "vatsim-data-bomb.json.gz", 200)
    # The transceivers beside a good file are not JSON: the snapshot is kept without them.
    (folder / "transceivers-data-0.json").write_bytes(b"\xff\xfe not json")

    result = cli(
        "replay",
        str(folder),
        "--no-progress",
        database_url=database_url,
    )
    assert result.returncode == 0, result.stderr
    counts = summary(result)  # exactly one JSON line, whatever happened
    assert counts["snapshots_ingested"] == len(good) + 2  # the fast and the broken-name file
    assert counts["snapshots_quarantined"] == 1  # the future
    assert counts["records_dropped"] == 2
    for name in ("future", "tiny", "bomb", "transceivers-data-0"):
        assert name in result.stderr, f"{name} is reported"
    assert "Traceback" not in result.stderr

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            stamps = set(conn.execute(select(t.snapshots.c.update_timestamp)).scalars())
            pilots_of_fast = conn.execute(
                select(func.count())
                .select_from(t.positions)
                .where(t.positions.c.snapshot_id == t.snapshot_id_for(timestamp(fast)))
            ).scalar_one()
            kinds = list(conn.execute(select(t.held_documents.c.kind)).scalars())
    finally:
        engine.dispose()
    assert stamps >= {timestamp(d) for d in good} | {timestamp(fast)}
    assert pilots_of_fast == len({(p["cid"], p["callsign"]) for p in fast["pilots"]}) - 1
    assert kinds.count("record") == 2
    assert "quarantined" in kinds
