"""The ``events`` commands end to end: a handler that fails for real, then is fixed."""

from __future__ import annotations

import json

from sqlalchemy import Engine, text

from feeds import SMALL
from test_cli import cli, summary

REFUSE = {
    "sqlite": [
        "CREATE TRIGGER refuse_events BEFORE INSERT ON events "
        "BEGIN SELECT RAISE(ABORT, 'event log refused'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_events() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'event log refused'; END $$",
        "CREATE TRIGGER refuse_events BEFORE INSERT ON events "
        "FOR EACH ROW EXECUTE FUNCTION refuse_events()",
    ],
}


def lines(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.strip().splitlines()]


def test_dead_letters_of_a_failing_event_log_replay_once_it_works_again(
    engine: Engine, database_url: str
) -> None:
    with engine.begin() as conn:
        for statement in REFUSE[engine.dialect.name]:
            conn.execute(text(statement))
    replayed = cli("replay", str(SMALL), "--no-progress", database_url=database_url)
    assert replayed.returncode == 0, replayed.stderr
    counts = summary(replayed)
    published = counts["events_published"]
    assert published > 1000  # the first snapshot connects every pilot
    assert counts["events_dead_lettered"] == published

    listed = cli("events", "dead-letters", "list", "--limit", "5", database_url=database_url)
    assert listed.returncode == 0, listed.stderr
    *first, total = lines(listed.stdout)
    assert total == {"total": published, "shown": 5, "offset": 0}
    assert all(letter["handler"] == "event-log" for letter in first)
    assert all("event log refused" in str(letter["error_message"]) for letter in first)
    shown = cli("events", "dead-letters", "show", str(first[0]["id"]), database_url=database_url)
    assert lines(shown.stdout)[0]["event"]["id"] == first[0]["event_id"]  # type: ignore[index]

    with engine.begin() as conn:
        conn.execute(
            text(
                "DROP TRIGGER refuse_events"
                + (" ON events" if engine.dialect.name == "postgresql" else "")
            )
        )
    fixed = cli("events", "dead-letters", "replay", "--all", database_url=database_url)
    assert fixed.returncode == 0, fixed.stderr
    assert lines(fixed.stdout)[-1] == {"replayed": published, "delivered": published}

    logged = cli("events", "log", "--limit", "100000", database_url=database_url)
    events = lines(logged.stdout)
    assert len(events) == published  # each exactly once
    assert len({e["id"] for e in events}) == published
    empty = cli("events", "dead-letters", "list", database_url=database_url)
    assert lines(empty.stdout) == [{"total": 0, "shown": 0, "offset": 0}]
    again = cli("events", "dead-letters", "replay", str(first[0]["id"]), database_url=database_url)
    assert again.returncode == 1
    assert lines(again.stdout)[0] == {"id": first[0]["id"], "outcome": "not_found"}


def test_event_log_filters_by_type_and_time(database_url: str, engine: Engine) -> None:
    assert cli("replay", str(SMALL), "--no-progress", database_url=database_url).returncode == 0
    got = cli(
        "events",
        "log",
        "--type",
        "controller.*",
        "--type",
        "snapshot.received",
        database_url=database_url,
    )
    assert got.returncode == 0, got.stderr
    types = {e["type"] for e in lines(got.stdout)}
    assert types == {"controller.connected", "snapshot.received"}
    later = cli("events", "log", "--from", "2030-01-01T00:00:00", database_url=database_url)
    assert later.stdout.strip() == ""


def test_replay_and_discard_need_ids_or_all_but_not_both(database_url: str, engine: Engine) -> None:
    neither = cli("events", "dead-letters", "discard", database_url=database_url)
    assert neither.returncode == 2
    assert "give letter ids or --all" in neither.stderr
    missing = cli("events", "dead-letters", "discard", "12345", database_url=database_url)
    assert missing.returncode == 1
    assert lines(missing.stdout) == [{"id": 12345, "discarded": False}]
