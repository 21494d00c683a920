"""The worker daemon: read a batch from the stream, commit it to Postgres, then acknowledge it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from psycopg2 import Error as PostgresError
from redis import Redis
from redis.exceptions import ResponseError

from core.config import Config
from core.db import Database
from core.polls.sync import sync_all
from core.redis_client import make_sentinel, master_client
from core.replicated import NotReplicated, WaitPolicy
from core.stream import DEAD_LETTER, GROUP, STREAM
from worker.batch import Batch, Entry, Rejected, StreamVote, decode_batch, newest_per_voter
from worker.catalog import UNKNOWN_POLL, PollCatalog
from worker.consumer import REDIS_UNAVAILABLE, ConsumerGroup, is_nogroup
from worker.metrics import WorkerMetrics
from worker.outage import Outage
from worker.sink import Outcome, PostgresSink, PostgresUnavailable, describe

logger = logging.getLogger(__name__)

# Reads block for worker_block_ms; the socket must wait longer than that (redis-py #2807).
SOCKET_TIMEOUT_MARGIN_S = 5.0
# redis-py's own retries ride out a short blip; the loop's backoff handles longer outages and
# keeps a stop request from waiting behind a long retry chain.
REDIS_RETRIES = 3
# Sleeps are cut into slices this long so that stop() is noticed quickly.
NAP_S = 0.1
# How soon a poll sync that failed is tried again (at most the sync interval).
SYNC_RETRY_S = 5.0


class VoteWorker:
    """Drains the vote stream into Postgres until stop() is called.

    Invariant: an entry is acknowledged only after the transaction that applied it (or
    made it unnecessary) has committed, so a crash at any point leaves it pending.
    """

    def __init__(
        self,
        config: Config,
        redis: Redis,
        database: Database,
        *,
        stream: str = STREAM,
        group: str = GROUP,
        dead_letter: str = DEAD_LETTER,
        metrics: WorkerMetrics | None = None,
        nap: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.metrics = metrics or WorkerMetrics()
        self.group = ConsumerGroup(
            redis, config.worker_name, stream=stream, group=group, dead_letter=dead_letter
        )
        self.sink = PostgresSink(database, sleep=self._sleep)
        self.catalog = PollCatalog(database)
        self._redis = redis
        self._database = database
        self._nap = nap
        self._clock = clock
        self._stopping = False
        self._group_ready = False
        self._batch: Batch | None = None
        # The next batch, read while the current one is applied (see _read_ahead).
        self._ahead: Future[Batch] | None = None
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead")
        # Our own pending entries come first (a restart after a crash), then new ones.
        self._pending_cursor: bytes | None = b"0"
        self._claim_cursor: bytes = b"0-0"
        self._next_claim = clock()
        self._next_trim = clock() + config.worker_trim_interval_ms / 1000
        # Polls are re-published at start, then every WORKER_POLL_SYNC_INTERVAL_MS; a sync that
        # failed (the migration that makes the first poll not run yet, a failover) is tried
        # again sooner.
        self._next_poll_sync = clock()
        self.redis_outage = Outage(
            "redis", on_start=self.metrics.outages.labels("redis").inc, clock=clock
        )
        self.postgres_outage = Outage(
            "postgres", on_start=self.metrics.outages.labels("postgres").inc, clock=clock
        )

    @classmethod
    def from_config(cls, config: Config, **kwargs) -> VoteWorker:
        """A worker with its own Sentinel client and a small read-write pool."""
        socket_timeout = config.worker_block_ms / 1000 + SOCKET_TIMEOUT_MARGIN_S
        redis = master_client(
            config, make_sentinel(config), socket_timeout=socket_timeout, retries=REDIS_RETRIES
        )
        return cls(config, redis, Database(config.database_url, size=4, keep=2), **kwargs)

    def stop(self) -> None:
        """Ask the loop to stop after the current step; safe to call from a signal handler."""
        self._stopping = True

    def run(self) -> int:
        """Run cycles until stopped; transient failures are waited out, never fatal."""
        logger.info(
            "worker %s consuming %s (group %s, batch %d, block %d ms)",
            self.config.worker_name,
            self.group.stream,
            self.group.group,
            self.config.worker_batch,
            self.config.worker_block_ms,
        )
        while not self._stopping:
            try:
                self.run_cycle()
            except REDIS_UNAVAILABLE as exc:
                self._sleep(self.redis_outage.failed(exc))
            except PostgresUnavailable as exc:
                self._sleep(self.postgres_outage.failed(exc))
            except ResponseError as exc:
                if not is_nogroup(exc):
                    raise
                self._group_lost(exc)
        left = len(self._batch or ()) + self._drop_ahead()
        self._reader.shutdown()
        if left:
            logger.info("stopping: %d entries left unacknowledged; they will be redelivered", left)
        logger.info("worker %s stopped", self.config.worker_name)
        return 0

    def run_cycle(self) -> None:
        """One step: fetch a batch unless one is still unfinished, apply it, acknowledge it."""
        if not self._group_ready:
            self.group.ensure()
            self._group_ready = True
        if self._batch is None:
            self._batch = self._next_batch()
            self.redis_outage.recovered()
        if self._batch:
            self._read_ahead()
            self._settle(self._batch)
        self._batch = None
        if self._clock() >= self._next_trim:
            self.trim()
        if self._clock() >= self._next_poll_sync:
            self.sync_polls()

    def _next_batch(self) -> Batch:
        """The batch read ahead during the previous cycle (its error, if it failed), or one
        read now."""
        ahead, self._ahead = self._ahead, None
        return ahead.result() if ahead is not None else self._fetch()

    def _read_ahead(self) -> None:
        """Start reading the next batch while this one is applied, so that Redis and decoding
        overlap with Postgres. Safe: reading only delivers entries, which stay pending until
        acknowledged after their own commit; entries read ahead and then abandoned (a stop, a
        lost group) are redelivered. Only one read is ever in flight, and the loop reads
        itself only when none is.

        The read does not block: it takes what is already waiting (a backlog), and otherwise
        the next cycle's blocking read collects what arrived meanwhile into one batch, instead
        of waking up for the first new entry and cutting the batch short."""
        if self._ahead is None and not self._stopping:
            self._ahead = self._reader.submit(self._fetch, block=False)

    def _drop_ahead(self) -> int:
        """Wait for a read in flight (a non-blocking one) and forget it; its size."""
        ahead, self._ahead = self._ahead, None
        if ahead is None or ahead.exception() is not None:
            return 0
        return len(ahead.result())

    def _fetch(self, block: bool = True) -> Batch:
        """Own pending entries first, then entries idle at dead consumers, then new ones
        (waiting up to WORKER_BLOCK_MS for them when `block`, and then WORKER_LINGER_MS for
        more to join them)."""
        count = self.config.worker_batch
        if self._pending_cursor is not None:
            entries = self.group.read(self._pending_cursor, count)
            if entries:
                self._pending_cursor = entries[-1][0]
                self.metrics.redelivered.labels("pending").inc(len(entries))
                return self._decode(entries)
            self._pending_cursor = None
        if self._clock() >= self._next_claim:
            entries = self._claim(count)
            if entries:
                return self._decode(entries)
        if not block:
            return self._decode(self.group.read(">", count))
        entries = self.group.read(">", count, self.config.worker_block_ms)
        if entries and len(entries) < count and self.config.worker_linger_ms:
            # The first new votes arrived: let more join them for one commit.
            self._sleep(self.config.worker_linger_ms / 1000)
            entries += self.group.read(">", count - len(entries))
        return self._decode(entries)

    def _group_lost(self, exc: ResponseError) -> None:
        """The group vanished (a failover to a replica without it): recreate it at id 0.

        The unfinished batch is dropped: the new group redelivers every entry still in the
        stream, and applying an entry again changes nothing.
        """
        logger.warning("consumer group missing (%s); creating it again", exc)
        self._group_ready = False
        self._batch = None
        self._drop_ahead()

    def _claim(self, count: int) -> list[Entry]:
        cursor, entries, deleted = self.group.claim(
            self.config.worker_claim_idle_ms, self._claim_cursor, count
        )
        self._claim_cursor = cursor
        if cursor in (b"0-0", "0-0"):
            self._next_claim = self._clock() + self.config.worker_claim_interval_ms / 1000
        if entries:
            logger.info(
                "claimed %d entries idle for over %d ms",
                len(entries),
                self.config.worker_claim_idle_ms,
            )
            self.metrics.redelivered.labels("claimed").inc(len(entries))
        if deleted:
            logger.warning("%d pending entries no longer exist in the stream", len(deleted))
        return entries

    def _decode(self, entries: list[Entry]) -> Batch:
        return decode_batch(entries)

    def _settle(self, batch: Batch) -> None:
        """Commit the batch's newest vote per (poll, voter), then dead-letter and acknowledge.

        A vote for a poll or option that does not exist (a poll deleted since the vote entered
        the stream) is dead-lettered at once, with the reason counted.
        """
        started = self._clock()
        known, unknown = self.catalog.sort(newest_per_voter(batch.votes))
        outcome = self.sink.apply(known)
        self.postgres_outage.recovered()
        unknown += [(item, UNKNOWN_POLL) for item in outcome.vanished]
        self.catalog.forget({item.vote.poll for item in outcome.vanished})
        fields = dict(batch.entries) if outcome.rejected or unknown else {}
        dead = list(batch.malformed)
        dead += [Rejected(i.entry_id, fields[i.entry_id], _unknown(i, why)) for i, why in unknown]
        keep: set[bytes] = set()
        for item, reason in outcome.rejected:
            deliveries = self.group.deliveries(item.entry_id)
            if deliveries >= self.config.worker_max_deliveries:
                dead.append(
                    Rejected(
                        item.entry_id,
                        fields[item.entry_id],
                        f"rejected by postgres {deliveries} times: {reason}",
                    )
                )
            else:
                keep.add(item.entry_id)
                logger.warning(
                    "entry %s rejected by postgres (delivery %d of %d): %s",
                    item.entry_id.decode(),
                    deliveries,
                    self.config.worker_max_deliveries,
                    reason,
                )
        self.group.settle([i for i in batch.ids if i not in keep], dead)
        for item in dead:
            logger.warning("dead-lettered entry %s: %s", item.entry_id.decode(), item.reason)
        self._count(batch, outcome, unknown, len(dead), self._clock() - started)

    def _count(
        self,
        batch: Batch,
        outcome: Outcome,
        unknown: list[tuple[StreamVote, str]],
        dead: int,
        seconds: float,
    ) -> None:
        malformed = len(batch.malformed)
        self.metrics.applied.inc(outcome.changed)
        self.metrics.stale.inc(
            len(batch.votes) - outcome.changed - len(outcome.rejected) - len(unknown)
        )
        self.metrics.batches.inc()
        self.metrics.batch_seconds.observe(seconds)
        if malformed:
            self.metrics.dead_lettered.labels("malformed").inc(malformed)
        for _item, reason in unknown:
            self.metrics.dead_lettered.labels(reason).inc()
        rejected = dead - malformed - len(unknown)
        if rejected:
            self.metrics.dead_lettered.labels("rejected").inc(rejected)

    def sync_polls(self) -> None:
        """Re-publish every poll from Postgres to Redis (core/polls/sync.py).

        A failure is logged and tried again within SYNC_RETRY_S: votes do not wait for it.
        """
        interval = self.config.worker_poll_sync_interval_ms / 1000
        self._next_poll_sync = self._clock() + min(interval, SYNC_RETRY_S)
        policy = WaitPolicy(self.config.wait_replicas, self.config.wait_timeout_ms, 1.0)
        try:
            report = sync_all(self._database, self._redis, policy)
        except PostgresError as exc:
            logger.warning("poll sync: postgres unavailable: %s", describe(exc))
            return
        except (*REDIS_UNAVAILABLE, NotReplicated) as exc:
            logger.warning("poll sync: redis unavailable: %s", exc)
            return
        self._next_poll_sync = self._clock() + interval
        if report.published or report.unlisted or report.tombstoned:
            logger.info(
                "poll sync: %d polls, %d published, %d unlisted, %d tombstoned",
                report.polls,
                report.published,
                report.unlisted,
                report.tombstoned,
            )

    def trim(self) -> None:
        """Trim acknowledged entries and refresh the stream gauges."""
        stats = self.group.trim()
        self.metrics.stream_length.set(stats.length)
        self.metrics.pending.set(stats.pending)
        if stats.lag is not None:
            self.metrics.lag.set(stats.lag)
        self._next_trim = self._clock() + self.config.worker_trim_interval_ms / 1000

    def _sleep(self, seconds: float) -> None:
        """Sleep in short naps, returning early once stop() has been called."""
        deadline = self._clock() + seconds
        while not self._stopping:
            left = deadline - self._clock()
            if left <= 0:
                return
            self._nap(min(left, NAP_S))


def _unknown(item: StreamVote, why: str) -> str:
    """The dead letter's reason for a vote whose poll or option does not exist."""
    if why == UNKNOWN_POLL:
        return f"unknown poll {item.vote.poll!r}"
    return f"unknown option {item.vote.option!r} of poll {item.vote.poll!r}"
