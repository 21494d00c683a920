"""Polls as Redis publishes them for the vote path: keys, format, and the scripts that use them.

Postgres is the source of truth; Redis holds a copy of every poll's definition so that the
vote app never needs Postgres. Every key is here (ACL pattern `~polls:*`):

- `polls:def:<id>` (hash): one poll. `revision`, `state` (open, closed or deleted),
  `question`, `owner` (account id or empty), `created_ms`, `closes_ms`, `closed_ms` (epoch ms
  or empty), `listed` (1 or 0), `options` (JSON `[[key, label], ...]` in order) and
  `opt:<key>` = label for each option (what the vote script checks).
- `polls:open` (sorted set): the ids of open, listed polls scored by creation time (ms); the
  home page.

Beside them, `choices:<voter>` (hash, ACL pattern `~choices:*`): each voter's last accepted
vote per poll, `<poll id>` = `<stream entry id> <vote id> <option key>`, written by the vote
script in the same atomic step as the stream entry (so the same WAIT covers both) and kept
as long as a session (SESSION_LIFETIME_DAYS after the voter's last vote). The pages show it
until the worker has applied the vote to Postgres; nothing else reads it.

A deleted poll leaves a tombstone (`state` deleted, for a day) so that a late publication of
its older self cannot bring it back. Writes are scripts (atomic, safe to repeat) run with WAIT
through core.replicated; an older revision never overwrites a newer one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.client import Redis

from core.polls.poll import OPEN, Poll, PollOption
from core.replicated import Call, LuaScript, WaitPolicy, run_replicated

DEFINITION_PREFIX = "polls:def:"
CHOICES_PREFIX = "choices:"
OPEN_INDEX = "polls:open"
DELETED = "deleted"
# A tombstone outlives any publication still in flight (a sweep takes seconds).
TOMBSTONE_TTL_S = 86_400

_FIELDS = (
    "revision",
    "state",
    "question",
    "owner",
    "created_ms",
    "closes_ms",
    "closed_ms",
    "listed",
)

# KEYS: the definition, the open index. ARGV: revision, force (1/0), id, index score ('' when
# not open), then the definition's field/value pairs.
PUBLISH = LuaScript("""
local stored = redis.call('HMGET', KEYS[1], 'revision', 'state')
if ARGV[2] ~= '1' then
  if stored[2] == 'deleted' then return 0 end
  if stored[1] and tonumber(stored[1]) >= tonumber(ARGV[1]) then return 0 end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'revision', ARGV[1], unpack(ARGV, 5))
if ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
else
  redis.call('ZREM', KEYS[2], ARGV[3])
end
return 1
""")

# KEYS: the definition, the open index. ARGV: id, tombstone TTL.
UNPUBLISH = LuaScript("""
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'state', 'deleted')
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
""")

# Take ids off the open index unless their definition says open, listed and not yet past its
# closing time (on Redis' clock). KEYS: the open index, then each id's definition. ARGV: ids.
PRUNE = LuaScript("""
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local removed = 0
for i, poll_id in ipairs(ARGV) do
  local def = redis.call('HMGET', KEYS[i + 1], 'state', 'closes_ms', 'listed')
  local expired = def[2] and def[2] ~= '' and now_ms >= tonumber(def[2])
  if def[1] ~= 'open' or expired or def[3] == '0' then
    removed = removed + redis.call('ZREM', KEYS[1], poll_id)
  end
end
return removed
""")

# The vote path's check and write in one atomic step. KEYS: the poll's definition, the vote
# stream, the voter's choices. ARGV: the option's key, the poll id, the vote id, how long the
# choices are kept (s), then the stream entry's field/value pairs. Nothing enters the stream
# for a poll that is unknown, closed (by its owner or by its closing time, on Redis' clock) or
# lacks the option; so once a close is published, no vote can follow it. An accepted vote
# becomes the voter's choice in the poll (scripts run one at a time, so the last entry added
# is the last choice written: last vote wins, as in the worker).
# Reply: {1, entry id, option label} or {0, reason}.
CAST = LuaScript("""
local def = redis.call('HMGET', KEYS[1], 'state', 'closes_ms', 'opt:' .. ARGV[1])
if def[1] ~= 'open' then
  if def[1] == 'closed' then return {0, 'closed'} end
  return {0, 'unknown_poll'}
end
if def[2] and def[2] ~= '' then
  local now = redis.call('TIME')
  if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) >= tonumber(def[2]) then
    return {0, 'closed'}
  end
end
if not def[3] then return {0, 'unknown_option'} end
local entry = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 5))
redis.call('HSET', KEYS[3], ARGV[2], entry .. ' ' .. ARGV[3] .. ' ' .. ARGV[1])
redis.call('EXPIRE', KEYS[3], ARGV[4])
return {1, entry, def[3]}
""")


def definition_key(poll_id: str) -> str:
    return DEFINITION_PREFIX + poll_id


def choices_key(voter: str) -> str:
    return CHOICES_PREFIX + voter


def _ms(when: datetime | None) -> str:
    return "" if when is None else str(int(when.timestamp() * 1000))


def _time(raw: bytes | str | None) -> datetime | None:
    if not raw:
        return None
    return datetime.fromtimestamp(int(raw) / 1000, UTC)


def _text(raw: bytes | str | None) -> str:
    return raw.decode() if isinstance(raw, bytes) else (raw or "")


def fields_of(poll: Poll) -> dict[str, str]:
    """The definition hash of `poll` (without its revision, which the script writes)."""
    fields = {
        "state": poll.state,
        "question": poll.question,
        "owner": "" if poll.owner_id is None else str(poll.owner_id),
        "created_ms": _ms(poll.created_at),
        "closes_ms": _ms(poll.closes_at),
        "closed_ms": _ms(poll.closed_at),
        "listed": "1" if poll.listed else "0",
        "options": json.dumps([[o.key, o.label] for o in poll.options], ensure_ascii=False),
    }
    fields.update({f"opt:{o.key}": o.label for o in poll.options})
    return fields


def poll_from(poll_id: str, values: Sequence[bytes | str | None]) -> Poll | None:
    """The Poll behind HMGET of _FIELDS + options, or None if absent or deleted."""
    revision, state, question, owner, created, closes, closed, listed, options = map(_text, values)
    if state not in ("open", "closed"):
        return None
    return Poll(
        id=poll_id,
        question=question,
        options=tuple(PollOption(key, label) for key, label in json.loads(options or "[]")),
        state=state,
        created_at=_time(created) or datetime.fromtimestamp(0, UTC),
        owner_id=int(owner) if owner else None,
        closed_at=_time(closed),
        closes_at=_time(closes),
        revision=int(revision or 0),
        listed=listed != "0",
    )


def publish_call(poll: Poll, *, force: bool = False) -> Call:
    """The PUBLISH script call for `poll` (on the home page's index while open and listed)."""
    score = _ms(poll.created_at) if poll.state == OPEN and poll.listed else ""
    args = [str(poll.revision), "1" if force else "0", poll.id, score]
    for name, value in fields_of(poll).items():
        args += [name, value]
    return PUBLISH, [definition_key(poll.id), OPEN_INDEX], args


def unpublish_call(poll_id: str) -> Call:
    """The UNPUBLISH script call: a tombstone instead of the definition, off the index."""
    return UNPUBLISH, [definition_key(poll_id), OPEN_INDEX], [poll_id, str(TOMBSTONE_TTL_S)]


def prune_call(poll_ids: Sequence[str]) -> Call:
    """The PRUNE script call for these listed ids."""
    return PRUNE, [OPEN_INDEX, *map(definition_key, poll_ids)], list(poll_ids)


def publish(client: Redis, poll: Poll, policy: WaitPolicy, *, force: bool = False) -> bool:
    """Publish `poll` (replicated); False when Redis already holds this revision or a newer
    one, or the poll's tombstone. `force` overwrites both (after a database restore)."""
    return run_replicated(client, *publish_call(poll, force=force), policy) == 1


def unpublish(client: Redis, poll_id: str, policy: WaitPolicy) -> None:
    """Replace the poll's definition by a tombstone and take it off the index (replicated)."""
    run_replicated(client, *unpublish_call(poll_id), policy)


def read_poll(client: Redis, poll_id: str) -> Poll | None:
    """The published poll, or None when Redis has none (unknown, deleted or not yet published)."""
    values = client.hmget(definition_key(poll_id), [*_FIELDS, "options"])
    return poll_from(poll_id, values)


@dataclass(frozen=True)
class OpenPolls:
    """One page of the open polls, newest first, and how many are listed in all."""

    polls: list[Poll]
    total: int


def list_open(client: Redis, offset: int, count: int, now: datetime) -> OpenPolls:
    """A page of open polls, newest first (two round trips: the ids, then their definitions).

    A poll whose closing time has passed stays in the index until the next sweep
    (core.polls.sync) removes it; it is left out here, so a page may hold a few fewer.
    """
    with client.pipeline(transaction=False) as pipe:
        pipe.zcard(OPEN_INDEX)
        pipe.zrevrange(OPEN_INDEX, offset, offset + count - 1)
        total, raw_ids = pipe.execute()
    ids = [_text(i) for i in raw_ids]
    if not ids:
        return OpenPolls([], int(total))
    with client.pipeline(transaction=False) as pipe:
        for poll_id in ids:
            pipe.hmget(definition_key(poll_id), [*_FIELDS, "options"])
        found = [poll_from(i, v) for i, v in zip(ids, pipe.execute(), strict=True)]
    return OpenPolls([p for p in found if p is not None and p.is_open(now)], int(total))


def open_ids(client: Redis) -> list[str]:
    """Every id in the open index (for the sweep)."""
    return [_text(i) for i in client.zrange(OPEN_INDEX, 0, -1)]
