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
from core.polls import FIRST_POLL_ID
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

    def vote(self, voter: str, option: str, poll: str = FIRST_POLL_ID) -> bytes:
        vote = Vote.new(poll, voter, option)
        entry_id = self.client.xadd(STREAM, vote.fields())
        self.entries.append((split_id(entry_id), vote))
        return entry_id

    def fill(self, votes: list[tuple[str, str]], chunk: int = 2000, poll: str = FIRST_POLL_ID):
        """Pipelined XADDs, as a busy vote app would produce them."""
        for start in range(0, len(votes), chunk):
            made = [Vote.new(poll, v, o) for v, o in votes[start : start + chunk]]
            with self.client.pipeline(transaction=False) as pipe:
                for vote in made:
                    pipe.xadd(STREAM, vote.fields())
                ids = pipe.execute()
            self.entries += [(split_id(i), v) for i, v in zip(ids, made, strict=True)]

    def newest(self) -> dict[tuple[str, str], Vote]:
        """(poll, voter) -> their newest vote by stream position."""
        newest: dict[tuple[str, str], tuple[tuple[int, int], Vote]] = {}
        for position, vote in self.entries:
            ballot = (vote.poll, vote.voter)
            if ballot not in newest or newest[ballot][0] < position:
                newest[ballot] = (position, vote)
        return {ballot: vote for ballot, (_, vote) in newest.items()}


def all_rows(engine: Engine) -> dict[tuple[str, str], tuple[str, str]]:
    """(poll, voter) -> (option, vote_id) as stored."""
    query = text("SELECT poll_id, voter_id, option, vote_id FROM votes")
    with engine.connect() as conn:
        return {(r.poll_id, r.voter_id): (r.option, r.vote_id) for r in conn.execute(query)}


def all_tallies(engine: Engine) -> dict[tuple[str, str], int]:
    """(poll, option) -> count, for the counts that are not zero."""
    query = text("SELECT poll_id, option, count FROM tallies WHERE count <> 0")
    with engine.connect() as conn:
        return {(r.poll_id, r.option): r.count for r in conn.execute(query)}


def rows(engine: Engine, poll: str = FIRST_POLL_ID) -> dict[str, tuple[str, str]]:
    """voter -> (option, vote_id) as stored, in one poll."""
    return {voter: row for (p, voter), row in all_rows(engine).items() if p == poll}


def tallies(engine: Engine, poll: str = FIRST_POLL_ID) -> dict[str, int]:
    """option -> count in one poll."""
    return {option: n for (p, option), n in all_tallies(engine).items() if p == poll}


def assert_exact(engine: Engine, ledger: Ledger) -> None:
    """Each voter's row in each poll is their newest vote there, and tallies count exactly
    those rows."""
    stored = all_rows(engine)
    expected = {ballot: (v.option, v.vote_id) for ballot, v in ledger.newest().items()}
    assert stored == expected
    counted = Counter((poll, option) for (poll, _), (option, _) in stored.items())
    assert all_tallies(engine) == dict(counted)


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
