"""Pure batch logic: decode stream entries and keep only each voter's newest vote."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from core.stream import MalformedVote, Vote, decode, split_id

# What redis-py returns for one stream entry: (id, fields); fields is empty or None when
# the entry was deleted while it was pending.
Entry = tuple[bytes, dict | None]


class StreamVote(NamedTuple):
    """A decoded vote and its place in the stream, which decides which vote is newer.

    A NamedTuple rather than a frozen dataclass: one is built per entry, and this is cheaper.
    """

    entry_id: bytes
    ms: int
    seq: int
    vote: Vote

    @property
    def position(self) -> tuple[int, int]:
        return self.ms, self.seq


@dataclass(frozen=True)
class Rejected:
    """An entry that will never be applied, with the reason kept in the dead-letter stream."""

    entry_id: bytes
    fields: dict
    reason: str


@dataclass(frozen=True)
class Batch:
    """One read from the stream: every entry (all to be acknowledged), decoded or rejected."""

    entries: tuple[Entry, ...]
    votes: tuple[StreamVote, ...]
    malformed: tuple[Rejected, ...]

    @property
    def ids(self) -> tuple[bytes, ...]:
        return tuple(entry_id for entry_id, _ in self.entries)

    def __len__(self) -> int:
        return len(self.entries)


def decode_batch(entries: Iterable[Entry]) -> Batch:
    """Decode a batch of entries; malformed ones become Rejected instead of raising.

    An entry without fields was deleted while pending: it is acknowledged and ignored.
    """
    entries = tuple(entries)
    votes: list[StreamVote] = []
    malformed: list[Rejected] = []
    add = votes.append
    for entry_id, fields in entries:
        if not fields:
            continue
        try:
            ms, seq = split_id(entry_id)
            add(StreamVote(entry_id, ms, seq, decode(fields)))
        except MalformedVote as exc:
            malformed.append(Rejected(entry_id, fields, str(exc)))
    return Batch(entries, tuple(votes), tuple(malformed))


def newest_per_voter(votes: Iterable[StreamVote]) -> list[StreamVote]:
    """Each voter's newest vote in each poll by stream position, sorted by (poll, voter)."""
    newest: dict[tuple[str, str], StreamVote] = {}
    for item in votes:
        ballot = (item.vote.poll, item.vote.voter)
        current = newest.get(ballot)
        if current is None or (current.ms, current.seq) < (item.ms, item.seq):
            newest[ballot] = item
    return [newest[ballot] for ballot in sorted(newest)]
