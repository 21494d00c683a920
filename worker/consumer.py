"""The Redis side of the worker: read, claim, acknowledge, dead-letter and trim the stream."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import (
    ClusterDownError,
    ConnectionError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    TimeoutError,
    TryAgainError,
)

from core.stream import DEAD_LETTER, GROUP, STREAM
from worker.batch import Entry, Rejected

# Errors that mean "Redis cannot serve us right now", not "we sent something wrong".
REDIS_UNAVAILABLE = (
    ConnectionError,
    TimeoutError,
    ReadOnlyError,
    ClusterDownError,
    TryAgainError,
    OutOfMemoryError,
)
# Keep the dead-letter stream bounded even if nobody ever looks at it.
DEAD_LETTER_MAXLEN = 100_000


def is_nogroup(exc: ResponseError) -> bool:
    """The group (or the stream) is gone, e.g. after a failover to a replica that lacked it."""
    return str(exc).startswith("NOGROUP")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _as_tuple(entry_id: bytes | str) -> tuple[int, int]:
    ms, _, seq = _text(entry_id).partition("-")
    return int(ms), int(seq or 0)


def _next_id(entry_id: bytes | str) -> str:
    ms, seq = _as_tuple(entry_id)
    return f"{ms}-{seq + 1}"


def _trim_floor(groups: list[dict], pending_by_name: dict) -> str | None:
    """The smallest id any group still needs, or None when unsure (no group, a new group)."""
    floors = []
    for group in groups:
        pending = pending_by_name.get(group["name"])
        if pending is None:
            return None
        floors.append(_next_id(group["last-delivered-id"]))
        if pending["pending"]:
            floors.append(_text(pending["min"]))
    return min(floors, key=_as_tuple) if floors else None


@dataclass(frozen=True)
class StreamStats:
    """What the trim saw: the stream's length, entries pending in our group, undelivered ones."""

    length: int
    pending: int
    lag: int | None
    min_id: str | None


class ConsumerGroup:
    """One consumer of the vote stream's consumer group."""

    def __init__(
        self,
        client: Redis,
        consumer: str,
        *,
        stream: str = STREAM,
        group: str = GROUP,
        dead_letter: str = DEAD_LETTER,
    ) -> None:
        self.client = client
        self.consumer = consumer
        self.stream = stream
        self.group = group
        self.dead_letter = dead_letter

    def ensure(self) -> None:
        """Create the group at the stream's start (and the stream itself) unless it exists."""
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if not str(exc).startswith("BUSYGROUP"):
                raise

    def read(self, start: bytes | str, count: int, block_ms: int | None = None) -> list[Entry]:
        """Entries after `start` from our pending list, or new ones when `start` is '>'."""
        reply = self.client.xreadgroup(
            self.group, self.consumer, {self.stream: start}, count=count, block=block_ms
        )
        return list(reply[0][1]) if reply else []

    def claim(
        self, min_idle_ms: int, cursor: bytes | str, count: int
    ) -> tuple[bytes, list[Entry], list[bytes]]:
        """XAUTOCLAIM: (next cursor, entries now ours, ids that no longer exist)."""
        reply = self.client.xautoclaim(
            self.stream, self.group, self.consumer, min_idle_ms, cursor, count=count
        )
        deleted = list(reply[2]) if len(reply) > 2 else []
        return reply[0], [e for e in reply[1] if e[0] is not None], deleted

    def deliveries(self, entry_id: bytes) -> int:
        """How many times the entry has been delivered (0 if it is no longer pending)."""
        rows = self.client.xpending_range(
            self.stream, self.group, min=entry_id, max=entry_id, count=1
        )
        return int(rows[0]["times_delivered"]) if rows else 0

    def settle(self, ids: Iterable[bytes], dead: Iterable[Rejected]) -> None:
        """Dead-letter `dead` and acknowledge `ids` in one MULTI, so neither happens alone."""
        ids, dead = list(ids), list(dead)
        if not ids and not dead:
            return
        if not dead:
            # One command is atomic by itself: no MULTI/EXEC to run and to replicate.
            self.client.xack(self.stream, self.group, *dict.fromkeys(ids))
            return
        with self.client.pipeline(transaction=True) as pipe:
            for item in dead:
                pipe.xadd(
                    self.dead_letter,
                    self._dead_fields(item),
                    maxlen=DEAD_LETTER_MAXLEN,
                    approximate=True,
                )
            pipe.xack(self.stream, self.group, *dict.fromkeys([*ids, *(d.entry_id for d in dead)]))
            pipe.execute()

    def _dead_fields(self, item: Rejected) -> dict[bytes, bytes | str]:
        """The original fields plus why and where from; ours win over same-named originals."""
        fields = {(k.encode() if isinstance(k, str) else k): v for k, v in item.fields.items()}
        fields.update(
            {b"reason": item.reason, b"original_id": item.entry_id, b"consumer": self.consumer}
        )
        return fields

    def trim(self) -> StreamStats:
        """Drop entries every group has acknowledged; never a pending or undelivered one.

        The floor is the oldest pending id of any group, or just past the group's
        last-delivered id when nothing is pending. Reading all groups' state in one MULTI
        makes it a snapshot: anything delivered after it has a larger id than the floor.
        """
        names = [g["name"] for g in self.client.xinfo_groups(self.stream)]
        with self.client.pipeline(transaction=True) as pipe:
            pipe.xinfo_groups(self.stream)
            for name in names:
                pipe.xpending(self.stream, name)
            groups, *pendings = pipe.execute()
        min_id = _trim_floor(groups, dict(zip(names, pendings, strict=True)))
        if min_id is not None:
            self.client.xtrim(self.stream, minid=min_id, approximate=False)
        ours = next((g for g in groups if g["name"] in (self.group, self.group.encode())), None)
        return StreamStats(
            length=self.client.xlen(self.stream),
            pending=int(ours["pending"]) if ours else 0,
            lag=ours.get("lag") if ours else None,
            min_id=min_id,
        )
