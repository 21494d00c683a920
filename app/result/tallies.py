"""Reading a poll's results: its definition and per-option counts from `tallies`, in one query
that costs O(options) however many votes and polls exist."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, select

from app.polls import poll_document
from core.models import poll_options, polls, tallies
from core.polls import PollOption
from core.polls.store import poll_from_row

# The poll's row, each option in order, and the option's tally (none yet: 0).
_RESULTS = (
    select(
        polls,
        poll_options.c.key,
        poll_options.c.label,
        tallies.c.count,
    )
    .join(poll_options, poll_options.c.poll_id == polls.c.id)
    .outerjoin(
        tallies,
        and_(tallies.c.poll_id == poll_options.c.poll_id, tallies.c.option == poll_options.c.key),
    )
    .order_by(poll_options.c.position)
)


def read_results(engine: Engine, poll_id: str, now: datetime) -> dict[str, Any] | None:
    """The results document served by /api/polls/<id>/results, or None for an unknown poll."""
    with engine.connect() as conn:
        rows = list(conn.execute(_RESULTS.where(polls.c.id == poll_id)))
    if not rows:
        return None
    poll = poll_from_row(rows[0], [PollOption(r.key, r.label) for r in rows])
    counts = {r.key: int(r.count or 0) for r in rows}
    total = sum(counts.values())
    document = poll_document(poll, now)
    document["options"] = [
        {
            "key": option.key,
            "label": option.label,
            "count": counts[option.key],
            "share": round(counts[option.key] / total, 4) if total else 0.0,
        }
        for option in poll.options
    ]
    document["total"] = total
    document["updated_at"] = now.isoformat(timespec="milliseconds")
    return document
