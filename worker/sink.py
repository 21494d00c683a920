"""The Postgres side: one idempotent upsert per batch, tallies adjusted in the same transaction."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from psycopg2 import Error as PostgresError
from psycopg2 import InterfaceError, OperationalError
from redis.backoff import EqualJitterBackoff

from core.db import Database
from worker.batch import StreamVote

logger = logging.getLogger(__name__)

# First, each poll of the batch is locked FOR KEY SHARE, in id order: deleting a poll locks its
# row FOR UPDATE, so a deletion waits for this batch to commit (and then deletes its votes
# too), and a batch that comes after a deletion finds the poll gone and applies none of its
# votes. Closing or reopening (FOR NO KEY UPDATE) does not wait for the workers, nor they
# for it: a vote that entered the stream before the close counts.
LOCK_POLLS = (
    "SELECT id FROM polls WHERE id = ANY(CAST(%(ids)s AS text[])) ORDER BY id FOR KEY SHARE"
)

# Then one statement for the whole batch, so it costs one round trip besides BEGIN/COMMIT:
# - `changed`: last vote wins by stream position, per (poll, voter). The WHERE makes a
#   redelivered or older entry a no-op, and `prev_option = v.option` reads the replaced option
#   under the row lock, so RETURNING reports exactly the rows that changed: +1 for the new
#   option, -1 for the old one (an inserted row has no prev_option). Rows are locked in
#   (poll, voter) order.
# - `deltas`: those moves summed per (poll, option) (an aggregate: `changed` is complete before
#   any tally row is touched, so tally rows are always locked after vote rows, in order).
# - the tallies: the CHECK (count >= 0) is evaluated on the proposed row before ON CONFLICT,
#   so the proposed row carries GREATEST(delta, 0) and the update adds the true delta.
APPLY_BATCH = """
WITH changed AS (
    INSERT INTO votes AS v (poll_id, voter_id, option, stream_ms, stream_seq, vote_id, voted_at)
    SELECT b.poll_id, b.voter_id, b.option, b.stream_ms, b.stream_seq, b.vote_id,
           to_timestamp(b.ts_ms / 1000.0)
    FROM unnest(CAST(%(poll_id)s AS text[]), CAST(%(voter_id)s AS text[]),
                CAST(%(option)s AS text[]), CAST(%(stream_ms)s AS bigint[]),
                CAST(%(stream_seq)s AS bigint[]), CAST(%(vote_id)s AS text[]),
                CAST(%(ts_ms)s AS bigint[]))
         AS b(poll_id, voter_id, option, stream_ms, stream_seq, vote_id, ts_ms)
    ORDER BY b.poll_id, b.voter_id
    ON CONFLICT (poll_id, voter_id) DO UPDATE SET
        option = EXCLUDED.option, stream_ms = EXCLUDED.stream_ms,
        stream_seq = EXCLUDED.stream_seq, vote_id = EXCLUDED.vote_id,
        voted_at = EXCLUDED.voted_at, prev_option = v.option, updated_at = now()
    WHERE (v.stream_ms, v.stream_seq) < (EXCLUDED.stream_ms, EXCLUDED.stream_seq)
    RETURNING v.poll_id, v.option, v.prev_option
), deltas AS (
    SELECT poll_id, option, sum(delta) AS delta
    FROM (SELECT poll_id, option, 1 AS delta FROM changed
          UNION ALL
          SELECT poll_id, prev_option, -1 FROM changed WHERE prev_option IS NOT NULL) AS moves
    GROUP BY poll_id, option
), tallied AS (
    INSERT INTO tallies AS t (poll_id, option, count)
    SELECT poll_id, option, GREATEST(delta, 0) FROM deltas WHERE delta <> 0
    ORDER BY poll_id, option
    ON CONFLICT (poll_id, option) DO UPDATE
    SET count = t.count + (SELECT d.delta FROM deltas AS d
                           WHERE d.poll_id = EXCLUDED.poll_id AND d.option = EXCLUDED.option)
)
SELECT count(*) FROM changed
"""

# SQLSTATE classes that blame the entry itself (data exception, integrity violation).
_REJECTING_CLASSES = frozenset({"22", "23"})
# Serialization failure and deadlock: retry the transaction almost at once.
_CONFLICTS = frozenset({"40001", "40P01"})
_CONFLICT_BACKOFF = EqualJitterBackoff(cap=0.2, base=0.02)


class SinkError(Exception):
    """Base of the errors the sink reports to the daemon."""


class PostgresUnavailable(SinkError):
    """Postgres cannot take the batch now (no leader, read-only, connection lost); retry later."""


class EntriesRejected(SinkError):
    """Postgres refused the batch because of its content (SQLSTATE class 22 or 23)."""


@dataclass
class Outcome:
    """What applying a batch did: rows changed, the votes Postgres refused (with why), and
    the votes of polls deleted before the batch could lock them."""

    changed: int = 0
    rejected: list[tuple[StreamVote, str]] = field(default_factory=list)
    vanished: list[StreamVote] = field(default_factory=list)

    def __add__(self, other: Outcome) -> Outcome:
        return Outcome(
            self.changed + other.changed,
            self.rejected + other.rejected,
            self.vanished + other.vanished,
        )


def text_array(values: Iterable[str]) -> str:
    """A Postgres text[] literal with every element quoted, so that any string is safe.

    One string per column instead of a list: psycopg2 adapts list items one by one, which
    costs about twice as much for the 3,000 values of a 500-vote batch.
    """
    quoted = ['"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values]
    return "{" + ",".join(quoted) + "}"


def int_array(values: Iterable[int]) -> str:
    """A Postgres bigint[] literal."""
    return "{" + ",".join(map(str, values)) + "}"


def apply_votes(cursor, votes: Sequence[StreamVote]) -> Outcome:
    """Lock the batch's polls, then upsert one vote per (poll, voter) and adjust the tallies
    through `cursor` (inside a transaction): the rows changed, and the votes whose poll no
    longer exists."""
    if not votes:
        return Outcome()
    polls = sorted({v.vote.poll for v in votes})
    cursor.execute(LOCK_POLLS, {"ids": text_array(polls)})
    live = {row[0] for row in cursor.fetchall()}
    vanished = [v for v in votes if v.vote.poll not in live]
    if vanished:
        votes = [v for v in votes if v.vote.poll in live]
        if not votes:
            return Outcome(vanished=vanished)
    cast = [v.vote for v in votes]
    cursor.execute(
        APPLY_BATCH,
        {
            "poll_id": text_array([c.poll for c in cast]),
            "voter_id": text_array([c.voter for c in cast]),
            "option": text_array([c.option for c in cast]),
            "stream_ms": int_array([v.ms for v in votes]),
            "stream_seq": int_array([v.seq for v in votes]),
            "vote_id": text_array([c.vote_id for c in cast]),
            "ts_ms": int_array([c.ts_ms for c in cast]),
        },
    )
    (changed,) = cursor.fetchone()
    return Outcome(changed=changed, vanished=vanished)


def _sqlstate(exc: PostgresError) -> str:
    return exc.pgcode or ""


def describe(exc: BaseException) -> str:
    """The first line of the driver's message: enough for one log line."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class PostgresSink:
    """Applies batches in one transaction each through the read-write pool."""

    def __init__(
        self,
        database: Database,
        *,
        conflict_retries: int = 5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._database = database
        self._conflict_retries = conflict_retries
        self._sleep = sleep

    def apply(self, votes: Sequence[StreamVote]) -> Outcome:
        """Apply `votes` (one per poll and voter); isolate refused ones by bisection.

        Raises PostgresUnavailable when Postgres cannot take any of it right now.
        """
        if not votes:
            return Outcome()
        try:
            return self._commit(votes)
        except EntriesRejected as exc:
            if len(votes) == 1:
                return Outcome(rejected=[(votes[0], str(exc))])
        middle = len(votes) // 2
        return self.apply(votes[:middle]) + self.apply(votes[middle:])

    def _commit(self, votes: Sequence[StreamVote]) -> Outcome:
        """One transaction, retried a few times on deadlock or serialization failure."""
        for attempt in range(1, self._conflict_retries + 1):
            try:
                with self._database.begin() as cursor:
                    return apply_votes(cursor, votes)
            except PostgresError as exc:
                state = _sqlstate(exc)
                if state[:2] in _REJECTING_CLASSES:
                    raise EntriesRejected(f"{state} {describe(exc)}") from exc
                if state in _CONFLICTS and attempt < self._conflict_retries:
                    logger.info("batch hit %s (%s); retrying", state, describe(exc))
                    self._sleep(_CONFLICT_BACKOFF.compute(attempt - 1))
                    continue
                if isinstance(exc, OperationalError | InterfaceError) and state not in _CONFLICTS:
                    # The pool may hold connections to a demoted leader: start afresh.
                    self._database.dispose()
                raise PostgresUnavailable(describe(exc)) from exc
        raise AssertionError("unreachable")
