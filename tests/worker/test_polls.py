"""The worker with many polls: exact per poll, refuses votes for polls or options that do not
exist, counts votes that entered the stream before a close, and keeps Redis' copy of the polls
in step with Postgres."""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from core.polls import CLOSED, Poll, make_draft, store
from core.polls.published import OPEN_INDEX, definition_key, publish, read_poll, unpublish
from core.polls.sync import sync_all
from core.replicated import WaitPolicy
from core.stream import DEAD_LETTER
from tests.worker.conftest import (
    all_tallies,
    assert_exact,
    drained,
    rows,
    running,
    tallies,
    wait_until,
)
from tests.worker.test_daemon import sample
from tests.worker.test_sink import sv
from worker.daemon import VoteWorker
from worker.sink import PostgresSink


def make_poll(pg, question: str = "Tea or coffee?", labels=("Tea", "Coffee"), owner=None) -> Poll:
    return store.create(pg, make_draft(question, list(labels), None, now=datetime.now(UTC)), owner)


def test_votes_in_several_polls_are_exact_in_each(worker_config, ledger, rclient, db, pg):
    tea, pets = make_poll(pg), make_poll(pg, "Pets?", ("Cats", "Dogs", "Fish"))
    for n in range(40):
        ledger.vote(f"anon:{n % 7}", ("tea", "coffee")[n % 2], poll=tea.id)
        ledger.vote(f"anon:{n % 5}", ("cats", "dogs", "fish")[n % 3], poll=pets.id)
        ledger.vote(f"anon:{n % 3}", ("cats", "dogs")[n % 2])  # the first poll
    with running(VoteWorker.from_config(worker_config())):
        wait_until(lambda: drained(rclient), "the stream to drain")
    assert_exact(db, ledger)
    assert sum(tallies(db, tea.id).values()) == 7
    assert sum(tallies(db, pets.id).values()) == 5
    assert sum(tallies(db).values()) == 3


def test_votes_for_unknown_polls_or_options_are_dead_lettered_and_counted(
    worker_config, ledger, rclient, db, pg
):
    tea = make_poll(pg)
    ledger.vote("anon:a", "tea", poll=tea.id)
    ghost = ledger.vote("anon:b", "tea", poll="nosuchpoll12")
    wrong = ledger.vote("anon:c", "cats", poll=tea.id)
    ledger.entries = [e for e in ledger.entries if e[1].voter == "anon:a"]
    worker = VoteWorker.from_config(worker_config())
    with running(worker):
        wait_until(lambda: drained(rclient), "the stream to drain")
    assert_exact(db, ledger)
    dead = {f[b"original_id"]: f[b"reason"] for _, f in rclient.xrange(DEAD_LETTER)}
    assert dead == {
        ghost: b"unknown poll 'nosuchpoll12'",
        wrong: f"unknown option 'cats' of poll '{tea.id}'".encode(),
    }
    assert sample(worker, "vote_worker_dead_lettered_total", reason="unknown_poll") == 1
    assert sample(worker, "vote_worker_dead_lettered_total", reason="unknown_option") == 1


def test_a_vote_that_entered_the_stream_before_the_close_counts(
    worker_config, ledger, rclient, db, pg
):
    tea = make_poll(pg, owner=None)
    ledger.vote("anon:a", "coffee", poll=tea.id)
    with db.begin() as conn:  # closed after the vote was acknowledged
        conn.execute(text("UPDATE polls SET state = 'closed' WHERE id = :id"), {"id": tea.id})
    with running(VoteWorker.from_config(worker_config())):
        wait_until(lambda: drained(rclient), "the stream to drain")
    assert tallies(db, tea.id) == {"coffee": 1}


def test_votes_of_a_deleted_poll_go_and_late_ones_are_dead_lettered(
    worker_config, ledger, rclient, db, pg
):
    owner = _account(db)
    tea = make_poll(pg, owner=owner)
    ledger.vote("anon:a", "tea", poll=tea.id)
    worker = VoteWorker.from_config(worker_config())
    with running(worker):
        wait_until(lambda: drained(rclient), "the first vote")
        store.remove(pg, tea.id, owner)
        late = ledger.vote("anon:b", "coffee", poll=tea.id)
        wait_until(lambda: drained(rclient), "the late vote")
    assert rows(db, tea.id) == {} and tallies(db, tea.id) == {}
    [(_, dead)] = rclient.xrange(DEAD_LETTER)
    assert (dead[b"original_id"], dead[b"reason"]) == (late, f"unknown poll '{tea.id}'".encode())


def test_a_deletion_waits_for_a_batch_in_flight_and_takes_its_votes(db, pg):
    """The sink locks each poll of a batch (FOR KEY SHARE) before writing its votes; a deletion
    locks the poll FOR UPDATE, so it waits for the batch and then deletes what it wrote."""
    owner = _account(db)
    tea = make_poll(pg, owner=owner)
    sink = PostgresSink(pg)
    deleted = threading.Event()
    with db.begin() as conn:
        conn.execute(text("SELECT id FROM polls WHERE id = :id FOR KEY SHARE"), {"id": tea.id})
        deleter = threading.Thread(target=lambda: (store.remove(pg, tea.id, owner), deleted.set()))
        deleter.start()
        time.sleep(0.3)
        assert not deleted.is_set(), "the deletion did not wait for the batch"
        conn.execute(
            text(
                "INSERT INTO votes (poll_id, voter_id, option, stream_ms, stream_seq, vote_id,"
                " voted_at) VALUES (:p, 'anon:a', 'tea', 1, 0, 'x', now())"
            ),
            {"p": tea.id},
        )
    deleter.join(10)
    assert deleted.is_set()
    assert rows(db, tea.id) == {}
    outcome = sink.apply([sv("b", "tea", 2000, poll=tea.id)])
    assert (outcome.changed, [v.vote.voter for v in outcome.vanished]) == (0, ["anon:b"])


def test_closing_does_not_wait_for_the_workers(db, pg):
    owner = _account(db)
    tea = make_poll(pg, owner=owner)
    with db.begin() as conn:
        conn.execute(text("SELECT id FROM polls WHERE id = :id FOR KEY SHARE"), {"id": tea.id})
        started = time.monotonic()
        closed = store.set_state(pg, tea.id, owner, CLOSED, datetime.now(UTC))
    assert closed.state == CLOSED and closed.revision == 2
    assert time.monotonic() - started < 2


def test_the_worker_publishes_polls_and_heals_a_lost_publication(worker_config, rclient, db, pg):
    tea = make_poll(pg)  # stored, never published (as if Redis failed right after the commit)
    rclient.delete(definition_key("first"))  # a publication lost in a failover
    worker = VoteWorker.from_config(worker_config())
    with running(worker):
        wait_until(lambda: read_poll(rclient, tea.id), "the sweep at start")
        wait_until(lambda: read_poll(rclient, "first"), "the first poll again")
    published = read_poll(rclient, tea.id)
    assert abs(published.created_at - tea.created_at).total_seconds() < 0.001  # ms in Redis
    assert dataclasses.replace(published, created_at=tea.created_at) == tea
    assert rclient.zrevrange(OPEN_INDEX, 0, -1)[0] == tea.id.encode()


def test_a_sync_that_failed_is_tried_again_within_seconds(worker_config, rclient, db):
    """A worker that starts before the migration that makes the polls (a fresh compose or
    Swarm deployment) publishes the first poll seconds later, not an interval later."""
    rclient.delete(definition_key("first"))
    with db.begin() as conn:
        conn.execute(text("ALTER TABLE polls RENAME TO polls_not_yet"))
    try:
        worker = VoteWorker.from_config(worker_config(poll_sync_interval_ms=600_000))
        with running(worker):
            time.sleep(1)  # the sync at start has failed by now
            assert read_poll(rclient, "first") is None
            with db.begin() as conn:
                conn.execute(text("ALTER TABLE polls_not_yet RENAME TO polls"))
            started = time.monotonic()
            wait_until(lambda: read_poll(rclient, "first"), "the sync tried again", 15)
            assert time.monotonic() - started < 10
    finally:
        with db.begin() as conn:
            conn.execute(text("ALTER TABLE IF EXISTS polls_not_yet RENAME TO polls"))


def test_a_sweep_never_undoes_a_newer_change_or_a_deletion(rclient, db, pg):
    owner = _account(db)
    tea, gone = make_poll(pg, owner=owner), make_poll(pg, owner=owner)
    policy = WaitPolicy()
    sync_all(pg, rclient, policy)
    closed = store.set_state(pg, tea.id, owner, CLOSED, datetime.now(UTC))
    publish(rclient, closed, policy)
    # A sweep that read Postgres before the close and the deletion publishes late:
    assert not publish(rclient, tea, policy)
    store.remove(pg, gone.id, owner)
    unpublish(rclient, gone.id, policy)
    assert not publish(rclient, gone, policy)
    assert read_poll(rclient, tea.id).state == CLOSED
    assert read_poll(rclient, gone.id) is None
    assert rclient.zrange(OPEN_INDEX, 0, -1) == [b"first"]


def test_a_sweep_unlists_expired_and_vanished_polls(rclient, db, pg):
    tea, gone = make_poll(pg), make_poll(pg)
    policy = WaitPolicy()
    sync_all(pg, rclient, policy)
    # Past its closing time (on Redis' clock), and deleted in Postgres behind Redis' back.
    expired = dataclasses.replace(tea, closes_at=datetime.now(UTC), revision=5)
    publish(rclient, expired, policy)
    with db.begin() as conn:
        conn.execute(text("DELETE FROM polls WHERE id = :id"), {"id": gone.id})

    report = sync_all(pg, rclient, policy)

    assert (report.unlisted, report.tombstoned) == (1, 1)
    assert rclient.zrange(OPEN_INDEX, 0, -1) == [b"first"]
    assert read_poll(rclient, gone.id) is None
    assert read_poll(rclient, tea.id).closes_at is not None


@pytest.fixture(autouse=True)
def _no_leftover_tallies(db):
    yield
    assert all(count >= 0 for count in all_tallies(db).values())


def _account(db) -> int:
    with db.begin() as conn:
        return conn.execute(
            text("INSERT INTO accounts (username, password_hash) VALUES ('o', 'x') RETURNING id")
        ).scalar_one()
