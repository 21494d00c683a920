"""The Postgres side: one idempotent upsert per batch, tallies adjusted in the same transaction."""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError

from worker.batch import StreamVote

logger = logging.getLogger(__name__)

# Last vote wins by stream position: the WHERE makes a redelivered or older entry a no-op,
# and `prev_option = v.option` reads the replaced option under the row lock, so the
# tally deltas below are exact even with two workers. Rows are locked in voter order.
UPSERT_VOTES = text("""
INSERT INTO votes AS v (voter_id, option, stream_ms, stream_seq, vote_id, voted_at)
SELECT b.voter_id, b.option, b.stream_ms, b.stream_seq, b.vote_id, to_timestamp(b.ts_ms / 1000.0)
FROM unnest(CAST(:voter_id AS text[]), CAST(:option AS text[]), CAST(:stream_ms AS bigint[]),
            CAST(:stream_seq AS bigint[]), CAST(:vote_id AS text[]), CAST(:ts_ms AS bigint[]))
     AS b(voter_id, option, stream_ms, stream_seq, vote_id, ts_ms)
ORDER BY b.voter_id
ON CONFLICT (voter_id) DO UPDATE SET
    option = EXCLUDED.option, stream_ms = EXCLUDED.stream_ms, stream_seq = EXCLUDED.stream_seq,
    vote_id = EXCLUDED.vote_id, voted_at = EXCLUDED.voted_at, prev_option = v.option,
    updated_at = now()
WHERE (v.stream_ms, v.stream_seq) < (EXCLUDED.stream_ms, EXCLUDED.stream_seq)
RETURNING v.option, v.prev_option
""")

# The CHECK (count >= 0) is evaluated on the proposed row before ON CONFLICT, so a negative
# delta cannot travel in EXCLUDED.count; hence one statement per option, in option order.
ADD_TO_TALLY = text("""
INSERT INTO tallies (option, count) VALUES (:option, GREATEST(:delta, 0))
ON CONFLICT (option) DO UPDATE SET count = tallies.count + :delta
""")

# SQLSTATE classes that blame the entry itself (data exception, integrity violation).
_REJECTING_CLASSES = frozenset({"22", "23"})
# Serialization failure and deadlock: retry the transaction at once.
_CONFLICTS = frozenset({"40001", "40P01"})


class SinkError(Exception):
    """Base of the errors the sink reports to the daemon."""


class PostgresUnavailable(SinkError):
    """Postgres cannot take the batch now (no leader, read-only, connection lost); retry later."""


class EntriesRejected(SinkError):
    """Postgres refused the batch because of its content (SQLSTATE class 22 or 23)."""


@dataclass
class Outcome:
    """What applying a batch did: rows changed and the votes Postgres refused (with why)."""

    changed: int = 0
    rejected: list[tuple[StreamVote, str]] = field(default_factory=list)

    def __add__(self, other: Outcome) -> Outcome:
        return Outcome(self.changed + other.changed, self.rejected + other.rejected)


def tally_deltas(rows: Sequence[tuple[str, str | None]]) -> list[tuple[str, int]]:
    """Per-option count changes from the upsert's (option, prev_option) rows, in option order.

    An inserted row has no prev_option; an updated row always has one (option is NOT NULL).
    """
    deltas: Counter[str] = Counter()
    for option, prev_option in rows:
        deltas[option] += 1
        if prev_option is not None:
            deltas[prev_option] -= 1
    return [(option, delta) for option, delta in sorted(deltas.items()) if delta]


def apply_votes(conn: Connection, votes: Sequence[StreamVote]) -> int:
    """Upsert one vote per voter and adjust the tallies on `conn`; return the rows changed."""
    if not votes:
        return 0
    rows = conn.execute(
        UPSERT_VOTES,
        {
            "voter_id": [v.vote.voter for v in votes],
            "option": [v.vote.option for v in votes],
            "stream_ms": [v.ms for v in votes],
            "stream_seq": [v.seq for v in votes],
            "vote_id": [v.vote.vote_id for v in votes],
            "ts_ms": [v.vote.ts_ms for v in votes],
        },
    ).all()
    for option, delta in tally_deltas(rows):
        conn.execute(ADD_TO_TALLY, {"option": option, "delta": delta})
    return len(rows)


def _sqlstate(exc: DBAPIError) -> str:
    return getattr(exc.orig, "pgcode", None) or ""


def describe(exc: BaseException) -> str:
    """The first line of the driver's message: enough for one log line."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


class PostgresSink:
    """Applies batches in one transaction each through the read-write engine."""

    def __init__(
        self,
        engine: Engine,
        *,
        conflict_retries: int = 5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._engine = engine
        self._conflict_retries = conflict_retries
        self._sleep = sleep

    def apply(self, votes: Sequence[StreamVote]) -> Outcome:
        """Apply `votes` (one per voter); isolate refused ones by bisection.

        Raises PostgresUnavailable when Postgres cannot take any of it right now.
        """
        if not votes:
            return Outcome()
        try:
            return Outcome(changed=self._commit(votes))
        except EntriesRejected as exc:
            if len(votes) == 1:
                return Outcome(rejected=[(votes[0], str(exc))])
        middle = len(votes) // 2
        return self.apply(votes[:middle]) + self.apply(votes[middle:])

    def _commit(self, votes: Sequence[StreamVote]) -> int:
        """One transaction, retried a few times on deadlock or serialization failure."""
        for attempt in range(1, self._conflict_retries + 1):
            try:
                with self._engine.begin() as conn:
                    return apply_votes(conn, votes)
            except DBAPIError as exc:
                state = _sqlstate(exc)
                if state[:2] in _REJECTING_CLASSES:
                    raise EntriesRejected(f"{state} {describe(exc)}") from exc
                if state in _CONFLICTS and attempt < self._conflict_retries:
                    logger.info("batch hit %s (%s); retrying", state, describe(exc))
                    self._sleep(random.uniform(0.01, 0.05) * attempt)
                    continue
                if isinstance(exc, OperationalError | InterfaceError) and state not in _CONFLICTS:
                    # The pool may hold connections to a demoted leader: start afresh.
                    self._engine.dispose()
                raise PostgresUnavailable(describe(exc)) from exc
            except SQLAlchemyError as exc:
                raise PostgresUnavailable(describe(exc)) from exc
        raise AssertionError("unreachable")
