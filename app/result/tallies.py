"""Reading the results: per-option counts from `tallies`, O(options) however many votes exist."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select

from core.config import Config
from core.models import tallies


def read_counts(engine: Engine, keys: list[str]) -> dict[str, int]:
    """Counts of the given options; an option nobody voted for yet has no row and counts 0."""
    query = select(tallies.c.option, tallies.c.count).where(tallies.c.option.in_(keys))
    with engine.connect() as conn:
        found = {option: int(count) for option, count in conn.execute(query)}
    return {key: found.get(key, 0) for key in keys}


def read_results(engine: Engine, config: Config) -> dict[str, Any]:
    """The results document served by /api/results and rendered by /result."""
    counts = read_counts(engine, [o.key for o in config.options])
    total = sum(counts.values())
    return {
        "question": config.question,
        "options": [
            {
                "key": option.key,
                "label": option.label,
                "count": counts[option.key],
                "share": round(counts[option.key] / total, 4) if total else 0.0,
            }
            for option in config.options
        ],
        "total": total,
        "updated_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }
