"""A bounded load of simulated voters through the web front, recording every vote attempt."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import requests

from core.polls import FIRST_POLL_ID
from ops.voter import Voter

logger = logging.getLogger(__name__)

CSRF_ATTEMPTS = 5
# Requests in flight at most; beyond, a vote waits for a thread (its latency starts then).
MAX_THREADS = 2000


@dataclass
class Attempt:
    """One vote request as the voter saw it; times are time.monotonic() seconds."""

    voter: int
    option: str
    started: float
    ended: float = 0.0
    status: int | None = None
    vote_id: str | None = None
    server_voter: str | None = None
    error: str | None = None
    poll: str = FIRST_POLL_ID

    @property
    def acked(self) -> bool:
        return self.status is not None and 200 <= self.status < 300 and self.vote_id is not None

    @property
    def rejected(self) -> bool:
        """Refused before anything was written (a 4xx): it cannot have been counted."""
        return self.status is not None and 400 <= self.status < 500

    @property
    def outcome(self) -> str:
        """'ok', an HTTP status such as '503', or an exception name."""
        if self.acked:
            return "ok"
        return str(self.status) if self.status is not None else (self.error or "unknown")

    def as_dict(self) -> dict:
        return asdict(self)


class SimulatedVoter(Voter):
    """A voter of the load: numbered, and remembering its last acknowledged choice per poll."""

    def __init__(self, index: int, base_url: str, *, verify: bool | str = True) -> None:
        super().__init__(base_url, verify=verify)
        self.index = index
        self.choices: dict[str, str] = {}

    def attempt(self, poll: str, option: str, clock: Callable[[], float]) -> Attempt:
        """Vote once in `poll` through the API and record what the voter saw."""
        attempt = Attempt(self.index, option, clock(), poll=poll)
        try:
            reply = self.vote(option, poll=poll)
            attempt.status = reply.status_code
            if reply.ok:
                body = reply.json()
                attempt.vote_id, attempt.server_voter = body.get("vote_id"), body.get("voter")
            elif reply.status_code == 400 and "CSRF" in reply.text:
                self.token = None  # the session lost its token: fetch a new one next time
        except (requests.RequestException, ValueError) as exc:
            attempt.error = type(exc).__name__
        attempt.ended = clock()
        if attempt.acked:
            self.choices[poll] = option
        return attempt


@dataclass
class LoadResult:
    """Every attempt, plus the ticks that found every voter busy (offered load not sent)."""

    attempts: list[Attempt]
    started: float
    ended: float
    skipped: int


class Load:
    """Open-loop load: `rate` votes/s for `duration` s, spread over `voters` voters and the
    `polls` (poll id -> its option keys; a plain list of option keys means the first poll's).

    Each tick picks an idle voter and a poll; a voter who already voted in that poll changes
    its vote with probability `change`.
    Inside each of `fresh_windows` (seconds from the start, from-to), every tick is instead
    a new voter's first and only vote: only a voter's last vote can be checked against
    Postgres, so around a failure every acknowledged vote must be someone's last, or a lost
    one could hide behind a later one.
    """

    def __init__(
        self,
        base_url: str,
        polls: Mapping[str, Sequence[str]] | Sequence[str],
        *,
        rate: float = 100.0,
        duration: float = 20.0,
        voters: int = 300,
        change: float = 0.6,
        fresh_windows: Sequence[tuple[float, float]] = (),
        seed: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        verify: bool | str = True,
    ) -> None:
        if not isinstance(polls, Mapping):
            polls = {FIRST_POLL_ID: list(polls)}
        if rate <= 0 or duration <= 0 or voters < 1 or not polls:
            raise ValueError("need rate > 0, duration > 0, voters >= 1 and a poll")
        if any(len(options) < 2 for options in polls.values()):
            raise ValueError("every poll needs two options")
        self.base_url = base_url
        self.polls = {poll: list(options) for poll, options in polls.items()}
        self.rate, self.duration, self.change = rate, duration, change
        self.ticks = int(rate * duration)
        self.voters = [SimulatedVoter(i, base_url, verify=verify) for i in range(voters)]
        self.repeat_voters = voters
        # Each window's new voters, and which window a tick belongs to.
        self.windows: list[deque[SimulatedVoter]] = []
        self._window_of: dict[int, int] = {}
        for start, end in fresh_windows:
            ticks = range(max(0, int(rate * start)), min(self.ticks, int(rate * end)))
            fresh = [
                SimulatedVoter(len(self.voters) + i, base_url, verify=verify)
                for i in range(len(ticks))
            ]
            self.voters += fresh
            self._window_of.update(dict.fromkeys(ticks, len(self.windows)))
            self.windows.append(deque(fresh))
        self.random = random.Random(seed)
        self.clock = clock
        self._idle: deque[SimulatedVoter] = deque()
        self._lock = threading.Lock()
        self._attempts: list[Attempt] = []

    def prepare(self, *, windows: bool = True) -> None:
        """Open the voters' sessions and fetch their CSRF tokens (before the clock starts).

        With `windows=False` only the returning voters; prepare_window() then readies each
        window's new voters shortly before it (a long run would otherwise hold thousands).
        """
        self._prepare(self.voters[: self.repeat_voters])
        order = self.voters[: self.repeat_voters]
        self.random.shuffle(order)
        self._idle = deque(order)
        if windows:
            for index in range(len(self.windows)):
                self.prepare_window(index)

    def prepare_window(self, index: int, parallel: int = 32) -> None:
        """Ready the new voters of fresh window `index` (one that is not, fetches on voting);
        lower `parallel` while the load runs, to keep the extra traffic gentle."""
        self._prepare(list(self.windows[index]), parallel)

    def _prepare(self, voters: list[SimulatedVoter], parallel: int = 32) -> None:
        if voters:
            with ThreadPoolExecutor(max_workers=min(parallel, len(voters))) as pool:
                list(pool.map(self._prepare_one, voters))

    def _prepare_one(self, voter: SimulatedVoter) -> None:
        for attempt in range(1, CSRF_ATTEMPTS + 1):
            try:
                voter.fetch_token()
                if voter.index >= self.repeat_voters:
                    voter.http.close()  # keeps the cookie; no idle connection until it votes
                return
            except (requests.RequestException, ValueError, KeyError) as exc:
                if attempt == CSRF_ATTEMPTS:
                    raise RuntimeError(f"cannot open a voter session: {exc}") from exc
                time.sleep(0.2 * attempt)

    def _pick(self, voter: SimulatedVoter) -> tuple[str, str]:
        """A poll, and the voter's option in it."""
        poll = self.random.choice(list(self.polls))
        options, choice = self.polls[poll], voter.choices.get(poll)
        if choice is None:
            return poll, self.random.choice(options)
        if self.random.random() < self.change:
            return poll, self.random.choice([o for o in options if o != choice])
        return poll, choice

    def _run_one(self, voter: SimulatedVoter, poll: str, option: str) -> None:
        attempt = voter.attempt(poll, option, self.clock)
        with self._lock:
            self._attempts.append(attempt)
            if voter.index < self.repeat_voters:  # a new voter votes once
                self._idle.append(voter)

    def _next_voter(self, tick: int) -> SimulatedVoter | None:
        with self._lock:
            window = self._window_of.get(tick)
            if window is not None:
                return self.windows[window].popleft()
            return self._idle.popleft() if self._idle else None

    def run(self) -> LoadResult:
        """Send the load; returns once every request has an answer (or timed out)."""
        if not self._idle:
            self.prepare()
        skipped = 0
        started = self.clock()
        threads = min(len(self.voters), MAX_THREADS)
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="voter") as pool:
            for tick in range(self.ticks):
                delay = started + tick / self.rate - self.clock()
                if delay > 0:
                    time.sleep(delay)
                voter = self._next_voter(tick)
                if voter is None:
                    skipped += 1
                    continue
                pool.submit(self._run_one, voter, *self._pick(voter))
        ended = self.clock()
        if skipped:
            logger.warning("%d of %d ticks found every voter waiting", skipped, self.ticks)
        attempts = sorted(self._attempts, key=lambda a: a.started)
        return LoadResult(attempts, started, ended, skipped)
