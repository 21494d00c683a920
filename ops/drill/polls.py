"""The polls a drill votes in: made at its start, closed at its end, on any deployment.

They are written as the login app would (Postgres, then the published definition with WAIT),
but directly, as the deployment's superuser: a drill needs no account, and the login app's
rate limits do not count it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

from redis import Redis

from core.db import Database
from core.polls import CLOSED, FIRST_POLL_ID, make_draft, store
from core.polls.published import publish, read_poll
from core.replicated import WaitPolicy
from ops.deployment import Deployment
from ops.local.layout import APP_DB

# Option sets the drill's polls cycle through: 2 to 5 options.
OPTION_SETS = (
    ("Red", "Green", "Blue"),
    ("Yes", "No"),
    ("North", "East", "South", "West", "Centre"),
    ("Tea", "Coffee", "Water", "Juice"),
)


def _database(target: Deployment) -> Database:
    if not target.superuser_url:
        raise ValueError("PG_SUPERUSER_URL is not set (a drill makes its polls as superuser)")
    url = urlsplit(target.superuser_url)
    return Database(urlunsplit(url._replace(path=f"/{APP_DB}")), size=1)


def open_polls(
    target: Deployment, count: int, master: Callable[[], Redis] | None = None
) -> dict[str, list[str]]:
    """`count` new open polls plus the first poll: poll id -> its option keys. `master` gives
    a client of the Redis master (default: through the deployment's Sentinels, which only
    works where their names resolve)."""
    database = _database(target)
    client = (master or target.redis)()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    polls: dict[str, list[str]] = {}
    try:
        first = read_poll(client, FIRST_POLL_ID)
        if first is not None and first.is_open(datetime.now(UTC)):
            polls[first.id] = [o.key for o in first.options]
        for number in range(1, count + 1):
            labels = list(OPTION_SETS[(number - 1) % len(OPTION_SETS)])
            question = f"Drill {stamp}, poll {number} of {count}?"
            draft = make_draft(question, labels, None, now=datetime.now(UTC))
            poll = store.create(database, draft, None)
            publish(client, poll, WaitPolicy())
            polls[poll.id] = [o.key for o in poll.options]
    finally:
        database.dispose()
        client.close()
    return polls


def close_polls(
    target: Deployment, poll_ids: list[str], master: Callable[[], Redis] | None = None
) -> None:
    """Close the drill's own polls (not the first poll), so they leave the home page."""
    database = _database(target)
    client = (master or target.redis)()
    try:
        for poll_id in poll_ids:
            if poll_id != FIRST_POLL_ID:
                poll = store.set_state(database, poll_id, None, CLOSED, datetime.now(UTC))
                publish(client, poll, WaitPolicy())
    finally:
        database.dispose()
        client.close()
