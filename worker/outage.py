"""Backoff with jitter and a cap, and one log line per outage instead of one per retry."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from redis.backoff import AbstractBackoff, EqualJitterBackoff

logger = logging.getLogger(__name__)

# 0.1 s, 0.2 s, ... up to 2 s, each drawn from [delay/2, delay]: jitter keeps several workers
# from retrying in step.
DEFAULT_BACKOFF = EqualJitterBackoff(cap=2.0, base=0.1)


class Outage:
    """Tracks whether a dependency is down: logs its start and end once, counts outages."""

    def __init__(
        self,
        name: str,
        backoff: AbstractBackoff = DEFAULT_BACKOFF,
        on_start: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._backoff = backoff
        self._failures = 0
        self._on_start = on_start
        self._clock = clock
        self._since: float | None = None

    @property
    def active(self) -> bool:
        return self._since is not None

    def failed(self, reason: object) -> float:
        """Record a failure; return how long to wait before the next attempt."""
        if self._since is None:
            self._since = self._clock()
            logger.warning("%s unavailable: %s; retrying", self.name, reason)
            if self._on_start:
                self._on_start()
        delay = self._backoff.compute(self._failures)
        self._failures = min(self._failures + 1, 32)
        return delay

    def recovered(self) -> None:
        """Record a success; logs the outage's length if one was going on."""
        if self._since is not None:
            logger.warning("%s back after %.1f s", self.name, self._clock() - self._since)
            self._since = None
        self._failures = 0
