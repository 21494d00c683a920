"""The vote stream: the one definition of what the vote app writes and the worker reads."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from core.polls.poll import FIRST_POLL_ID, OPTION_KEY, POLL_ID

STREAM = "votes"
GROUP = "workers"
DEAD_LETTER = "votes:dead"

_STREAM_ID = re.compile(r"^(\d+)-(\d+)$")
_VOTER = re.compile(r"^(anon|user):[A-Za-z0-9_.:-]{1,80}$")
_VOTE_ID = re.compile(r"[0-9a-f]{32}")


class MalformedVote(ValueError):
    """A stream entry that can never be applied; the reason goes to the dead-letter stream."""


@dataclass(frozen=True)
class Vote:
    """One vote as it travels from the vote app to the worker: a voter's choice in a poll."""

    vote_id: str
    poll: str
    voter: str
    option: str
    ts_ms: int

    @classmethod
    def new(cls, poll: str, voter: str, option: str) -> Vote:
        """A fresh vote with a unique id and the current time."""
        now_ms = int(datetime.now(UTC).timestamp() * 1000)
        return cls(uuid.uuid4().hex, poll, voter, option, now_ms)

    def fields(self) -> dict[str, str]:
        """The stream entry's fields (XADD)."""
        return {
            "vote_id": self.vote_id,
            "poll": self.poll,
            "voter": self.voter,
            "option": self.option,
            "ts": str(self.ts_ms),
        }


def _text(value: bytes | str | None) -> str | None:
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return None
    return value


def decode(fields: dict) -> Vote:
    """Turn a stream entry's fields into a Vote, or raise MalformedVote with the reason.

    Whether the poll and its option exist is for the worker to check (the vote app's script
    already did, but a poll may have been deleted since). An entry without a poll was written
    before polls existed: it is a vote in the first poll.
    """
    # Only the five fields are looked up and decoded: the worker calls this for every entry.
    # Keys are bytes from Redis, str when written by hand; an empty value counts as missing.
    get = fields.get
    vote_id = _text(get(b"vote_id") or get("vote_id"))
    poll = _text(get(b"poll") or get("poll")) or FIRST_POLL_ID
    voter = _text(get(b"voter") or get("voter"))
    option = _text(get(b"option") or get("option"))
    ts = _text(get(b"ts") or get("ts"))
    if not vote_id or not _VOTE_ID.fullmatch(vote_id):
        raise MalformedVote("missing or malformed vote_id")
    if not POLL_ID.fullmatch(poll):
        raise MalformedVote("malformed poll")
    if not voter or not _VOTER.match(voter):
        raise MalformedVote("missing or malformed voter")
    if not option or not OPTION_KEY.fullmatch(option):
        raise MalformedVote(f"missing or malformed option {option!r}")
    if not ts or not ts.isdigit():
        raise MalformedVote("missing or malformed ts")
    return Vote(vote_id, poll, voter, option, int(ts))


def split_id(stream_id: bytes | str) -> tuple[int, int]:
    """Split a stream id 'ms-seq' into two integers that sort like the stream does."""
    if isinstance(stream_id, bytes):
        # The common case (ids as Redis returns them), without a regex: bytes.isdigit() is
        # ASCII-only and false when empty, so anything unusual takes the checked path below.
        ms, _, seq = stream_id.partition(b"-")
        if ms.isdigit() and seq.isdigit():
            return int(ms), int(seq)
    match = _STREAM_ID.match(_text(stream_id) or "")
    if not match:
        raise MalformedVote(f"bad stream id {stream_id!r}")
    return int(match.group(1)), int(match.group(2))


def drained(client) -> bool:
    """Every entry of the stream has been delivered to the workers and acknowledged by them.

    "Delivered" compares the group's last-delivered id with the stream's last id rather than
    trusting XINFO's lag: Redis 7.0 keeps reporting a lag after a failover and trimming,
    even when nothing is left to read.
    """
    with client.pipeline(transaction=True) as pipe:
        pipe.xinfo_groups(STREAM)
        pipe.xinfo_stream(STREAM)
        groups, stream = pipe.execute()
    group = next((g for g in groups if g["name"] in (GROUP, GROUP.encode())), None)
    return (
        group is not None
        and group["pending"] == 0
        and group["last-delivered-id"] == stream["last-generated-id"]
    )
