"""Reading a poll's results: its definition and per-option counts from `tallies`, in one query
that costs O(options) however many votes and polls exist."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.polls import poll_document
from core.db import Database
from core.polls import PollOption
from core.polls.store import POLL_COLUMNS, poll_from_row

# The poll's row, each option in order, and the option's tally (none yet: 0).
_RESULTS = f"""
SELECT {POLL_COLUMNS}, o.key, o.label, t.count AS tally
FROM polls AS p
JOIN poll_options AS o ON o.poll_id = p.id
LEFT JOIN tallies AS t ON t.poll_id = o.poll_id AND t.option = o.key
WHERE p.id = %s
ORDER BY o.position
"""


def read_results(database: Database, poll_id: str, now: datetime) -> dict[str, Any] | None:
    """The results document served by /api/polls/<id>/results, or None for an unknown poll."""
    with database.connect() as cursor:
        cursor.execute(_RESULTS, (poll_id,))
        rows = cursor.fetchall()
    if not rows:
        return None
    poll = poll_from_row(rows[0], [PollOption(r.key, r.label) for r in rows])
    counts = {r.key: int(r.tally or 0) for r in rows}
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
