"""The Postgres upsert: last vote wins by stream position, idempotent, exact under concurrency."""

from __future__ import annotations

import dataclasses
import random
import threading
from collections import Counter

import pytest

from core.db import Database
from core.polls import FIRST_POLL_ID
from core.stream import Vote
from tests.servers import free_port
from tests.worker.conftest import rows, tallies
from worker.batch import StreamVote, newest_per_voter
from worker.sink import PostgresSink, PostgresUnavailable


def sv(
    voter: str,
    option: str,
    ms: int,
    seq: int = 0,
    ts_ms: int | None = None,
    poll: str = FIRST_POLL_ID,
) -> StreamVote:
    vote = Vote.new(poll, f"anon:{voter}", option)
    if ts_ms is not None:
        vote = dataclasses.replace(vote, ts_ms=ts_ms)
    return StreamVote(f"{ms}-{seq}".encode(), ms, seq, vote)


def options(engine) -> dict[str, str]:
    return {voter: option for voter, (option, _) in rows(engine).items()}


def test_one_batch_counts_inserts_moves_and_unchanged_choices(db, pg):
    sink = PostgresSink(pg)
    sink.apply([sv("a", "cats", 1000), sv("b", "cats", 1001), sv("c", "dogs", 1002)])
    # a: a new vote for the same option; b: cats -> dogs; c: dogs -> cats; d: a new voter.
    batch = [sv("a", "cats", 2000), sv("b", "dogs", 2001), sv("c", "cats", 2002)]
    assert sink.apply([*batch, sv("d", "dogs", 2003)]).changed == 4
    assert tallies(db) == {"cats": 2, "dogs": 2}
    sink.apply([sv("a", "dogs", 3000), sv("c", "dogs", 3001)])  # cats loses two at once
    assert tallies(db) == {"dogs": 4}


def test_last_vote_wins_by_stream_order_even_when_applied_out_of_order(db, pg):
    sink = PostgresSink(pg)
    newer, older = sv("a", "dogs", 2000), sv("a", "cats", 1000)
    assert sink.apply([newer]).changed == 1
    assert sink.apply([older]).changed == 0  # e.g. a reclaimed entry arriving late
    assert options(db) == {"anon:a": "dogs"}
    assert tallies(db) == {"dogs": 1}


def test_a_later_vote_moves_the_tally(db, pg):
    sink = PostgresSink(pg)
    sink.apply([sv("a", "cats", 1000), sv("b", "cats", 1001)])
    sink.apply([sv("a", "dogs", 1000, seq=1)])  # same millisecond, later sequence
    assert options(db) == {"anon:a": "dogs", "anon:b": "cats"}
    assert tallies(db) == {"cats": 1, "dogs": 1}


def test_applying_a_batch_twice_changes_nothing(db, pg):
    sink = PostgresSink(pg)
    batch = [sv("a", "cats", 1000), sv("b", "dogs", 1001), sv("c", "dogs", 1002)]
    assert sink.apply(batch).changed == 3
    before = (rows(db), tallies(db))
    assert sink.apply(batch).changed == 0
    assert (rows(db), tallies(db)) == before == (before[0], {"cats": 1, "dogs": 2})


def test_entries_postgres_refuses_are_isolated_and_the_rest_committed(db, pg):
    good = [sv(f"v{i}", "cats", 1000 + i) for i in range(9)]
    poison = sv("poison", "dogs", 2000, ts_ms=10**18)  # decodes, but no timestamp fits it
    outcome = PostgresSink(pg).apply(sorted([*good, poison], key=lambda v: v.vote.voter))
    assert outcome.changed == 9
    assert [(v.vote.voter, "22008" in reason) for v, reason in outcome.rejected] == [
        ("anon:poison", True)
    ]
    assert tallies(db) == {"cats": 9}


def test_unreachable_or_read_only_postgres_is_an_outage_not_a_rejection(database_url, db):
    down = Database(f"postgresql+psycopg2://x:y@127.0.0.1:{free_port()}/votes")
    with pytest.raises(PostgresUnavailable, match="refused"):
        PostgresSink(down).apply([sv("a", "cats", 1000)])
    # HAProxy's leader port briefly reaching a still read-only server (SQLSTATE 25006).
    read_only = Database(f"{database_url}?options=-c%20default_transaction_read_only%3Don")
    with pytest.raises(PostgresUnavailable, match="read-only transaction"):
        PostgresSink(read_only).apply([sv("a", "cats", 1000)])
    read_only.dispose()
    assert rows(db) == {}


def test_two_workers_applying_interleaved_batches_stay_exact(db, pg):
    rng = random.Random(7)
    entries = [
        sv(f"v{rng.randrange(40)}", rng.choice(["cats", "dogs"]), 1000 + i // 3, i % 3)
        for i in range(4000)
    ]
    rng.shuffle(entries)  # reclaims and redeliveries reach the sink in any order
    batches = [newest_per_voter(entries[i : i + 80]) for i in range(0, len(entries), 80)]
    # Each thread gets every batch of its own plus every third one of the other's (redelivery).
    plans = [[b for n, b in enumerate(batches) if n % 2 == k or n % 3 == 0] for k in (0, 1)]
    errors: list[BaseException] = []

    def apply_all(plan):
        sink = PostgresSink(pg)
        try:
            for batch in plan:
                sink.apply(batch)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=apply_all, args=(plan,)) for plan in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    newest = {v.vote.voter: v.vote.option for v in newest_per_voter(entries)}
    assert options(db) == newest
    assert tallies(db) == dict(Counter(newest.values()))
