"""record_vote against the real master + replica: success only once replicas hold the vote."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis.client

from app.ballot_box import VoteNotSaved, record_vote
from core.config import Config
from core.polls import FIRST_POLL_ID
from core.redis_client import master_client
from core.stream import STREAM, Vote


@pytest.fixture
def config(app_env: dict[str, str], clean_data: None) -> Config:
    return Config.from_env({**app_env, "VOTE_WAIT_TIMEOUT_MS": "20", "VOTE_WRITE_BUDGET_S": "0.4"})


@pytest.fixture
def client(config: Config) -> Iterator[redis.client.Redis]:
    client = master_client(config)
    yield client
    client.connection_pool.disconnect()


def test_a_recorded_vote_is_in_the_stream_and_on_the_replica(client, config, redis_servers):
    vote = Vote.new(FIRST_POLL_ID, "anon:" + "a" * 32, "cats")

    recorded = record_vote(client, vote, config)

    assert recorded.label == "Cats"
    replica = redis_servers.client(redis_servers.replica_port)
    [(_id, fields)] = replica.xrange(STREAM)
    assert fields == {k.encode(): v.encode() for k, v in vote.fields().items()}


def test_too_few_replicas_retries_with_backoff_then_fails(client, config):
    config = Config(**{**config.__dict__, "wait_replicas": 2})
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    with pytest.raises(VoteNotSaved, match="1 of 2 replicas") as failure:
        record_vote(
            client, Vote.new(FIRST_POLL_ID, "anon:" + "b" * 32, "dogs"), config, sleep=sleep
        )

    assert failure.value.attempts == len(sleeps) + 1 >= 3
    for attempt, seconds in enumerate(sleeps):
        ceiling = min(0.05 * 2**attempt, 1.0)
        assert ceiling / 2 <= seconds <= ceiling
    assert sum(sleeps) <= config.write_budget_s


def test_noreplicas_from_the_master_is_retried_then_fails(config, master):
    # The client's own retries (a few here) come on top of the vote's write budget.
    client = master_client(config, retries=2)
    # The master refuses writes, as it does when its replicas are gone.
    master.config_set("min-replicas-to-write", 2)
    try:
        started = time.monotonic()
        with pytest.raises(VoteNotSaved, match="NOREPLICAS") as failure:
            record_vote(client, Vote.new(FIRST_POLL_ID, "anon:" + "c" * 32, "dogs"), config)
        elapsed = time.monotonic() - started
    finally:
        master.config_set("min-replicas-to-write", 0)
        client.connection_pool.disconnect()

    assert failure.value.attempts > 1
    assert elapsed < config.write_budget_s + 1
    assert master.xlen(STREAM) == 0


def test_noreplicas_on_any_command_is_retried_like_a_failover(client, master):
    # Sessions and the worker write through the same client: a master without its replicas
    # (a promotion in progress) must not fail them at once, but be retried until it has one.
    master.config_set("min-replicas-to-write", 2)
    timer = threading.Timer(0.3, master.config_set, ("min-replicas-to-write", 0))
    timer.start()
    try:
        started = time.monotonic()
        client.set("session:probe", "x")
        elapsed = time.monotonic() - started
    finally:
        timer.join()
        master.config_set("min-replicas-to-write", 0)

    assert master.get("session:probe") == b"x"
    assert 0.25 < elapsed < 5


def test_an_unexpected_redis_refusal_fails_at_once(client, config, master):
    master.set(STREAM, "not a stream")

    with pytest.raises(VoteNotSaved, match="WRONGTYPE") as failure:
        record_vote(client, Vote.new(FIRST_POLL_ID, "anon:" + "d" * 32, "dogs"), config)

    assert failure.value.attempts == 1
