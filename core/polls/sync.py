"""Re-publish every poll from Postgres to Redis, so Redis heals after a lost write or a restore.

The worker runs this at start and every POLL_SYNC_INTERVAL_S (30 s); a poll change that
reached Postgres but not Redis (Redis failed between the two, or lost the write in a
failover) is therefore visible to voters at most that long after Redis is back.
`votectl restore` runs it with `force`, since a restored database may hold older revisions
than Redis, or polls Redis knows as deleted.
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.client import Redis

from core.db import Database
from core.polls import published, store
from core.replicated import WaitPolicy, run_replicated_many

# Script calls per pipeline (each pipeline ends with one WAIT).
CHUNK = 200


@dataclass
class SyncReport:
    """What one sweep changed in Redis."""

    polls: int = 0
    published: int = 0
    unlisted: int = 0
    tombstoned: int = 0


def _chunks(items: list, size: int = CHUNK):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def sync_all(
    database: Database, client: Redis, policy: WaitPolicy, *, force: bool = False
) -> SyncReport:
    """Publish every poll (a newer revision in Redis wins unless `force`), take polls off the
    open index whose definition is not open, and tombstone listed polls Postgres lacks.

    The index is read before Postgres: anything listed then was committed before the read
    (a poll is published only after its commit), so a listed id Postgres lacks was deleted.
    """
    report = SyncReport()
    listed = published.open_ids(client)
    known: set[str] = set()
    for page in store.every_poll(database):
        known.update(p.id for p in page)
        report.polls += len(page)
        calls = [published.publish_call(p, force=force) for p in page]
        for chunk in _chunks(calls):
            report.published += sum(run_replicated_many(client, chunk, policy))
    gone = [i for i in listed if i not in known]
    for chunk in _chunks(gone):
        run_replicated_many(client, [published.unpublish_call(i) for i in chunk], policy)
    report.tombstoned = len(gone)
    for chunk in _chunks([i for i in listed if i in known]):
        [removed] = run_replicated_many(client, [published.prune_call(chunk)], policy)
        report.unlisted += int(removed)
    return report
