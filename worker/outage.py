"""Backoff with jitter and a cap, and one log line per outage instead of one per retry."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


class Backoff:
    """Exponential delays base, 2*base, ... up to cap, each drawn from [delay/2, delay]."""

    def __init__(
        self, base: float = 0.1, cap: float = 2.0, rng: Callable[[], float] = random.random
    ) -> None:
        self._base = base
        self._cap = cap
        self._rng = rng
        self._attempt = 0

    def next(self) -> float:
        """The next delay in seconds; jitter keeps several workers from retrying in step."""
        delay = min(self._cap, self._base * 2**self._attempt)
        self._attempt = min(self._attempt + 1, 32)
        return delay / 2 + self._rng() * delay / 2

    def reset(self) -> None:
        self._attempt = 0


class Outage:
    """Tracks whether a dependency is down: logs its start and end once, counts outages."""

    def __init__(
        self,
        name: str,
        backoff: Backoff | None = None,
        on_start: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._backoff = backoff or Backoff()
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
        return self._backoff.next()

    def recovered(self) -> None:
        """Record a success; logs the outage's length if one was going on."""
        if self._since is not None:
            logger.warning("%s back after %.1f s", self.name, self._clock() - self._since)
            self._since = None
        self._backoff.reset()
