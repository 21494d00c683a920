"""The worker loop against real Redis and Postgres: flow, dead letters, reclaims, outages."""

from __future__ import annotations

import dataclasses
import logging
import random
import time

import redis

from core.db import Database
from core.stream import DEAD_LETTER, GROUP, STREAM, Vote
from tests.worker.conftest import (
    assert_exact,
    drained,
    rows,
    running,
    tallies,
    wait_until,
)
from tests.worker.proxy import TcpProxy
from worker.daemon import VoteWorker


def sample(worker: VoteWorker, name: str, **labels: str) -> float:
    return worker.metrics.registry.get_sample_value(name, labels or None) or 0.0


def test_votes_from_the_stream_end_up_in_votes_and_tallies(worker_config, ledger, rclient, db):
    ledger.vote("anon:a", "cats")
    ledger.vote("user:bob", "dogs")
    ledger.vote("anon:a", "dogs")  # changes her mind: only this one counts
    worker = VoteWorker.from_config(worker_config())
    with running(worker):
        wait_until(lambda: drained(rclient), "the stream to drain")
    assert_exact(db, ledger)
    assert tallies(db) == {"dogs": 2}
    assert sample(worker, "vote_worker_votes_applied_total") == 2
    assert sample(worker, "vote_worker_batches_total") >= 1


def test_malformed_entries_are_dead_lettered_and_the_rest_keep_flowing(
    worker_config, ledger, rclient, db
):
    ledger.vote("anon:a", "cats")
    bad = Vote.new("first", "anon:b", "Fish!").fields()
    bad_id = rclient.xadd(STREAM, bad)
    junk_id = rclient.xadd(STREAM, {"hello": "world"})
    ledger.vote("anon:c", "dogs")
    worker = VoteWorker.from_config(worker_config())
    with running(worker):
        wait_until(lambda: drained(rclient), "the stream to drain")
    assert_exact(db, ledger)
    dead = {f[b"original_id"]: f for _, f in rclient.xrange(DEAD_LETTER)}
    assert set(dead) == {bad_id, junk_id}
    assert dead[bad_id][b"reason"] == b"missing or malformed option 'Fish!'"
    assert dead[bad_id][b"vote_id"] == bad["vote_id"].encode()
    assert dead[junk_id][b"hello"] == b"world"
    assert sample(worker, "vote_worker_dead_lettered_total", reason="malformed") == 2


def test_an_entry_postgres_keeps_refusing_is_dead_lettered_after_max_deliveries(
    worker_config, ledger, rclient, db
):
    poison = dataclasses.replace(Vote.new("first", "anon:p", "cats"), ts_ms=10**18)
    poison_id = rclient.xadd(STREAM, poison.fields())
    ledger.vote("anon:a", "dogs")
    config = worker_config(max_deliveries=3, claim_idle_ms=100, claim_interval_ms=50)
    worker = VoteWorker.from_config(config)
    with running(worker):
        wait_until(lambda: rows(db), "the good vote to be applied", timeout=5)
        [(_, dead)] = wait_until(lambda: rclient.xrange(DEAD_LETTER), "the dead letter")
        wait_until(lambda: drained(rclient), "the stream to drain")
    assert dead[b"original_id"] == poison_id
    assert dead[b"reason"].startswith(b"rejected by postgres 3 times: 22008")
    assert_exact(db, ledger)
    assert sample(worker, "vote_worker_dead_lettered_total", reason="rejected") == 1


def test_a_redelivered_older_vote_does_not_overwrite_a_newer_one(
    worker_config, ledger, rclient, db
):
    older = ledger.vote("anon:a", "cats")
    rclient.xgroup_create(STREAM, GROUP, id="0")
    # A worker that read the older vote and died before acknowledging it.
    assert rclient.xreadgroup(GROUP, "dead", {STREAM: ">"}, count=1)[0][1][0][0] == older
    ledger.vote("anon:a", "dogs")
    worker = VoteWorker.from_config(worker_config(claim_idle_ms=300, claim_interval_ms=100))
    with running(worker):
        wait_until(lambda: drained(rclient), "the reclaim and the drain")
    assert sample(worker, "vote_worker_redelivered_total", source="claimed") == 1
    assert_exact(db, ledger)
    assert tallies(db) == {"dogs": 1}


def test_a_restarted_worker_finishes_its_own_pending_entries_first(
    worker_config, ledger, rclient, db
):
    ledger.fill([(f"anon:{i}", "cats") for i in range(30)])
    rclient.xgroup_create(STREAM, GROUP, id="0")
    rclient.xreadgroup(GROUP, "w1", {STREAM: ">"}, count=20)  # then it was killed
    worker = VoteWorker.from_config(worker_config(name="w1", claim_idle_ms=60_000))
    with running(worker):
        wait_until(lambda: drained(rclient), "the stream to drain")
    assert sample(worker, "vote_worker_redelivered_total", source="pending") == 20
    assert_exact(db, ledger)


def test_votes_arriving_close_together_are_applied_in_one_commit(
    worker_config, ledger, rclient, db
):
    """A trickle of votes is gathered for WORKER_LINGER_MS into one batch (one Postgres
    commit) instead of one batch per vote; with no linger each waits for its own."""

    def trickle(linger_ms: int) -> float:
        worker = VoteWorker.from_config(worker_config(linger_ms=linger_ms, block_ms=1000))
        with running(worker):
            time.sleep(0.3)  # the worker is in its blocking read
            for n in range(10):
                ledger.vote(f"anon:t{linger_ms}-{n}", "cats")
                time.sleep(0.02)
            wait_until(lambda: drained(rclient), "the stream to drain")
        return sample(worker, "vote_worker_batches_total")

    assert trickle(linger_ms=500) == 1
    assert trickle(linger_ms=0) >= 5
    assert_exact(db, ledger)


def test_two_workers_in_parallel_count_every_voter_exactly_once(worker_config, ledger, rclient, db):
    rng = random.Random(3)
    ledger.fill([(f"anon:{rng.randrange(300)}", rng.choice(["cats", "dogs"])) for _ in range(6000)])
    workers = [VoteWorker.from_config(worker_config(name=f"w{i}", batch=40)) for i in (1, 2)]
    with running(*workers):
        wait_until(lambda: drained(rclient), "the stream to drain", timeout=30)
    assert all(sample(w, "vote_worker_batches_total") > 5 for w in workers)
    assert_exact(db, ledger)


def test_acknowledged_entries_are_trimmed(worker_config, ledger, rclient, db):
    ledger.fill([(f"anon:{i}", "dogs") for i in range(500)])
    worker = VoteWorker.from_config(worker_config(batch=50, trim_interval_ms=50))
    with running(worker):
        wait_until(lambda: drained(rclient) and rclient.xlen(STREAM) == 0, "a trimmed stream")
        ledger.vote("anon:late", "cats")
        wait_until(lambda: rclient.xlen(STREAM) == 0 and drained(rclient), "trim after more")
    assert_exact(db, ledger)
    assert sample(worker, "vote_worker_stream_length") == 0


def assert_one_outage_logged(caplog, service: str) -> None:
    """Exactly one line when the outage starts and one when it ends, not one per retry."""
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if m.startswith(f"{service} unavailable:")]) == 1
    assert len([m for m in messages if m.startswith(f"{service} back after")]) == 1


def test_postgres_outage_is_waited_out_with_one_log_line_each_way(
    worker_config, ledger, rclient, db, database_url, pg_server, caplog
):
    proxy = TcpProxy(pg_server.port)  # stands in for HAProxy's leader port
    database = Database(database_url.replace(f":{pg_server.port}/", f":{proxy.port}/"))
    config = worker_config(batch=20)
    client = redis.Redis(
        port=rclient.connection_pool.connection_kwargs["port"],
        password=rclient.connection_pool.connection_kwargs["password"],
        socket_timeout=5,
    )
    worker = VoteWorker(config, client, database)
    caplog.set_level(logging.INFO, logger="worker")
    try:
        with running(worker):
            ledger.fill([(f"anon:{i}", "cats") for i in range(100)])
            wait_until(lambda: drained(rclient), "the first votes")
            proxy.cut()
            ledger.fill([(f"anon:{i}", "dogs") for i in range(50, 150)])
            wait_until(lambda: worker.postgres_outage.active, "the outage to be noticed")
            pending = rclient.xpending(STREAM, GROUP)["pending"]
            assert pending > 0  # nothing acknowledged while Postgres is away
            wait_until(
                lambda: sample(worker, "vote_worker_outages_total", service="postgres") == 1,
                "the outage metric",
            )
            proxy.restore()
            wait_until(lambda: drained(rclient), "the drain after the outage")
    finally:
        proxy.close()
        database.dispose()
    assert_one_outage_logged(caplog, "postgres")
    assert_exact(db, ledger)


def test_redis_outage_is_waited_out(
    worker_config, ledger, rclient, redis_servers, database_url, db, caplog
):
    proxy = TcpProxy(redis_servers.master_port)
    client = redis.Redis(
        port=proxy.port,
        password=redis_servers.password,
        socket_timeout=2,
        socket_connect_timeout=0.5,
        retry=None,
    )
    database = Database(database_url)
    worker = VoteWorker(worker_config(), client, database)
    caplog.set_level(logging.INFO, logger="worker")
    try:
        with running(worker):
            ledger.vote("anon:a", "cats")
            wait_until(lambda: drained(rclient), "the first vote")
            proxy.cut()
            wait_until(lambda: worker.redis_outage.active, "the outage to be noticed")
            ledger.vote("anon:b", "dogs")
            proxy.restore()
            wait_until(lambda: drained(rclient), "the drain after the outage")
    finally:
        proxy.close()
        database.dispose()
    assert_one_outage_logged(caplog, "redis")
    assert_exact(db, ledger)


def test_a_lost_consumer_group_is_recreated_and_nothing_is_missed(
    worker_config, ledger, rclient, db
):
    worker = VoteWorker.from_config(worker_config())
    with running(worker):
        ledger.vote("anon:a", "cats")
        wait_until(lambda: drained(rclient), "the first vote")
        # As after a failover to a replica that never received the group.
        rclient.xgroup_destroy(STREAM, GROUP)
        ledger.vote("anon:b", "dogs")
        wait_until(lambda: drained(rclient), "the group to be recreated and drained")
    assert_exact(db, ledger)
