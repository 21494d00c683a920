"""Figures of a load: percentiles (nearest rank), the one definition drills and benchmarks use."""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], pct: float) -> float | None:
    """The pct-th percentile (0-100, nearest rank) of values, or None when there are none."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(0, min(len(ordered) - 1, math.ceil(pct / 100 * len(ordered)) - 1))
    return ordered[rank]
