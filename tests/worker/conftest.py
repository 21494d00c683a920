"""Helpers for the worker tests: fill the stream like the vote app does, run workers, read state."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
import redis
from sqlalchemy import Engine, create_engine, text

from core.config import Config
from core.stream import GROUP, STREAM, Vote, split_id
from ops.wait import wait_for
from worker.daemon import VoteWorker


def wait_until(check: Callable[[], object], what: str, timeout: float = 15.0) -> object:
    """Poll until `check()` is truthy; fail naming `what` otherwise."""
    return wait_for(check, what, timeout, 0.02)


class Ledger:
    """Every vote XADDed by a test, so the expected end state can be computed."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.entries: list[tuple[tuple[int, int], Vote]] = []

    def vote(self, voter: str, option: str) -> bytes:
        vote = Vote.new(voter, option)
        entry_id = self.client.xadd(STREAM, vote.fields())
        self.entries.append((split_id(entry_id), vote))
        return entry_id

    def fill(self, votes: list[tuple[str, str]], chunk: int = 2000) -> None:
        """Pipelined XADDs, as a busy vote app would produce them."""
        for start in range(0, len(votes), chunk):
            made = [Vote.new(v, o) for v, o in votes[start : start + chunk]]
            with self.client.pipeline(transaction=False) as pipe:
                for vote in made:
                    pipe.xadd(STREAM, vote.fields())
                ids = pipe.execute()
            self.entries += [(split_id(i), v) for i, v in zip(ids, made, strict=True)]

    def newest(self) -> dict[str, Vote]:
        newest: dict[str, tuple[tuple[int, int], Vote]] = {}
        for position, vote in self.entries:
            if vote.voter not in newest or newest[vote.voter][0] < position:
                newest[vote.voter] = (position, vote)
        return {voter: vote for voter, (_, vote) in newest.items()}


def rows(engine: Engine) -> dict[str, tuple[str, str]]:
    """voter -> (option, vote_id) as stored."""
    with engine.connect() as conn:
        return {
            r.voter_id: (r.option, r.vote_id)
            for r in conn.execute(text("SELECT voter_id, option, vote_id FROM votes"))
        }


def tallies(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            r.option: r.count
            for r in conn.execute(text("SELECT option, count FROM tallies WHERE count <> 0"))
        }


def assert_exact(engine: Engine, ledger: Ledger) -> None:
    """Each voter's row is their newest vote, and tallies count exactly those rows."""
    stored = rows(engine)
    expected = {voter: (v.option, v.vote_id) for voter, v in ledger.newest().items()}
    assert stored == expected
    assert tallies(engine) == dict(Counter(option for option, _ in stored.values()))


def drained(client: redis.Redis) -> bool:
    """Every entry delivered to the group and acknowledged."""
    group = next((g for g in client.xinfo_groups(STREAM) if g["name"] == GROUP.encode()), None)
    if group is None:
        return False
    last = client.xinfo_stream(STREAM)["last-generated-id"]
    return group["pending"] == 0 and group["last-delivered-id"] == last


@pytest.fixture
def db(database_url: str, clean_data) -> Iterator[Engine]:
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def rclient(redis_servers, clean_data) -> redis.Redis:
    return redis_servers.client()


@pytest.fixture
def ledger(rclient: redis.Redis) -> Ledger:
    return Ledger(rclient)


@pytest.fixture
def worker_config(app_env: dict[str, str]) -> Callable[..., Config]:
    """A Config for the fast-tier servers, with WORKER_* overrides given as keywords."""

    def make(**overrides: object) -> Config:
        env = {**app_env, "WORKER_BLOCK_MS": "100"}
        env.update({f"WORKER_{k.upper()}": str(v) for k, v in overrides.items()})
        return Config.from_env(env)

    return make


@contextlib.contextmanager
def running(*workers: VoteWorker) -> Iterator[tuple[VoteWorker, ...]]:
    """Run workers in threads; stop them (and check they stopped) on the way out."""
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    try:
        yield workers
    finally:
        for worker in workers:
            worker.stop()
        for thread in threads:
            thread.join(10)
            assert not thread.is_alive(), "worker did not stop within 10 s"
