"""Vote-to-result latency at a steady vote rate, beside the same measurement at a low rate.

Each vote is a real browser-like request: POST /api/votes through HAProxy with the voter's
own session cookie and X-CSRFToken (from GET /api/csrf). The clock starts when the 202 arrives
and stops when the vote's row is visible in Postgres (polled by vote_id, by default through
HAProxy's replica port, which is what /api/results reads; by primary key when the vote API
answers the voter id). The sender is open-loop: vote i is due at start + i / rate whatever
happened to earlier ones, so a slow system shows up as latency and as a lower achieved rate,
not as a politely slower client.

    python benchmarks/latency.py --state-dir /tmp/bench-stack --base-port 24000
    eval "$(votectl env)"; python benchmarks/latency.py --rate 500 --duration 30

A voter does not vote again until its previous vote has been seen (a newer vote would
replace the row before the older one could be observed), so --voters must exceed
rate x latency. The benchmark's votes are removed from votes/tallies at the end (--keep
keeps them); their sessions expire as usual.
"""

from __future__ import annotations

import dataclasses
import itertools
import queue
import random
import threading
import time

import click
import requests
from sqlalchemy import Engine, text
from stackenv import load_config, make_engine, stack_options, web_url, web_verify

from ops.figures import percentile
from ops.voter import Voter, poll_options, shared_http

# Remove the benchmark's rows (found by their last vote_id) and their counts, atomically.
FORGET_VOTES = text("""
WITH gone AS (DELETE FROM votes WHERE vote_id = ANY(:ids) RETURNING poll_id, option),
     per_option AS (SELECT poll_id, option, count(*) AS n FROM gone GROUP BY poll_id, option)
UPDATE tallies SET count = tallies.count - per_option.n
FROM per_option
WHERE (tallies.poll_id, tallies.option) = (per_option.poll_id, per_option.option)
""")
# By primary key when the vote API names the voter (it does since 072d1aa), else a scan. The
# votes go to the first poll (POST /api/votes).
SEEN_BY_VOTER = (
    "SELECT vote_id FROM votes WHERE poll_id = 'first' AND voter_id = ANY(%s) AND vote_id = ANY(%s)"
)
SEEN_BY_VOTE_ID = "SELECT vote_id FROM votes WHERE vote_id = ANY(%s)"
# A vote not visible after this long counts as unseen (and its voter may vote again).
GIVE_UP_S = 30.0


@dataclasses.dataclass
class Phase:
    """What one phase measured."""

    name: str
    rate: float
    sent: int = 0
    accepted: int = 0
    errors: dict = dataclasses.field(default_factory=dict)
    latencies: list[float] = dataclasses.field(default_factory=list)
    post_times: list[float] = dataclasses.field(default_factory=list)
    late: list[float] = dataclasses.field(default_factory=list)
    unseen: int = 0
    window_s: float = 0.0
    vote_ids: list[str] = dataclasses.field(default_factory=list)

    @property
    def achieved(self) -> float:
        return self.accepted / self.window_s if self.window_s else 0.0


class Observer(threading.Thread):
    """Polls Postgres for the vote_ids accepted but not yet seen; records each one's latency."""

    def __init__(self, engine: Engine, interval: float, idle: queue.SimpleQueue) -> None:
        super().__init__(daemon=True)
        self.engine, self.interval, self.idle = engine, interval, idle
        self.lock = threading.Lock()
        self.pending: dict[str, tuple[float, Voter, bool, str | None]] = {}
        self.seen: list[tuple[float, bool]] = []  # (latency, counted)
        self.unseen = 0
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def add(self, answer: dict, accepted_at: float, voter: Voter, counted: bool) -> None:
        with self.lock:
            self.pending[answer["vote_id"]] = (accepted_at, voter, counted, answer.get("voter"))

    def outstanding(self) -> int:
        with self.lock:
            return len(self.pending)

    def run(self) -> None:
        raw = self.engine.raw_connection()
        try:
            raw.driver_connection.autocommit = True
            cursor = raw.cursor()
            while not self.stopping.is_set():
                self._poll(cursor)
                time.sleep(self.interval)
        except BaseException as exc:  # reported by the main thread
            self.error = exc
        finally:
            raw.close()

    def _poll(self, cursor) -> None:
        with self.lock:
            ids = list(self.pending)
            voter_ids = [entry[3] for entry in self.pending.values()]
        if not ids:
            return
        asked = time.perf_counter()
        if all(voter_ids):
            cursor.execute(SEEN_BY_VOTER, (voter_ids, ids))
        else:
            cursor.execute(SEEN_BY_VOTE_ID, (ids,))
        found = {row[0] for row in cursor.fetchall()}
        with self.lock:
            for vote_id in found:
                accepted_at, voter, counted, _ = self.pending.pop(vote_id)
                # The row was visible at the snapshot taken just after `asked`.
                self.seen.append((max(asked - accepted_at, 0.0), counted))
                self.idle.put(voter)
            for vote_id, (accepted_at, voter, _, _) in list(self.pending.items()):
                if asked - accepted_at > GIVE_UP_S:
                    del self.pending[vote_id]
                    self.unseen += 1
                    self.idle.put(voter)


def run_phase(
    observer: Observer,
    phase: Phase,
    duration: float,
    warmup: float,
    threads: int,
    options: list[str],
) -> Phase:
    """Send rate x duration votes open-loop from `threads` threads; wait until all are seen."""
    total = int(phase.rate * duration)
    counter = itertools.count()
    lock = threading.Lock()
    started = time.perf_counter() + 0.2
    first_seen = len(observer.seen)
    unseen_before = observer.unseen
    last_send = [started]

    def sender() -> None:
        rng = random.Random()
        http = shared_http()  # one keep-alive pool per thread, shared by its voters
        while (i := next(counter)) < total:
            due = started + i / phase.rate
            if (wait := due - time.perf_counter()) > 0:
                time.sleep(wait)
            try:
                voter = observer.idle.get(timeout=5)
            except queue.Empty:
                with lock:
                    phase.errors["no idle voter"] = phase.errors.get("no idle voter", 0) + 1
                continue
            sent = time.perf_counter()
            voter.http = http
            try:
                reply = voter.vote(rng.choice(options))
                status = reply.status_code
                answer = reply.json() if status == 202 else None
            except (requests.RequestException, ValueError) as exc:
                status, answer = type(exc).__name__, None
            done = time.perf_counter()
            with lock:
                phase.sent += 1
                phase.late.append(sent - due)
                last_send[0] = max(last_send[0], sent)
                if answer is None:
                    phase.errors[status] = phase.errors.get(status, 0) + 1
                else:
                    phase.accepted += 1
                    phase.post_times.append(done - sent)
                    phase.vote_ids.append(answer["vote_id"])
            if answer is None:
                observer.idle.put(voter)
            else:
                observer.add(answer, done, voter, counted=due - started >= warmup)

    workers = [threading.Thread(target=sender, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(duration + GIVE_UP_S + 60)
    phase.window_s = last_send[0] - started
    deadline = time.perf_counter() + GIVE_UP_S + 1
    while observer.outstanding() and time.perf_counter() < deadline and observer.is_alive():
        time.sleep(0.05)
    if observer.error:
        raise click.ClickException(f"polling Postgres failed: {observer.error}")
    with observer.lock:
        phase.latencies = sorted(lat for lat, counted in observer.seen[first_seen:] if counted)
        phase.unseen = observer.unseen - unseen_before + len(observer.pending)
    return phase


def make_voters(base: str, count: int, verify: bool | str = True, parallel: int = 8) -> list[Voter]:
    """`count` fresh sessions, each with its CSRF token."""
    voters: list[Voter] = []
    lock = threading.Lock()
    counter = itertools.count()

    def make() -> None:
        http = shared_http()
        while next(counter) < count:
            voter = Voter(base, http, verify=verify)
            try:
                voter.fetch_token()
            except (requests.RequestException, ValueError, KeyError) as exc:
                raise click.ClickException(f"GET /api/csrf failed: {exc}") from None
            with lock:
                voters.append(voter)

    threads = [threading.Thread(target=make) for _ in range(parallel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if len(voters) != count:
        raise click.ClickException(f"made {len(voters)} of {count} sessions")
    return voters


def ms(seconds: float | None) -> str:
    return f"{seconds * 1000:7.0f} ms" if seconds is not None else "      - ms"


def report(phase: Phase) -> None:
    lat, post = phase.latencies, sorted(phase.post_times)
    late = sorted(phase.late)
    click.echo(
        f"  {phase.name:6} {phase.rate:6.0f}/s {phase.achieved:8.1f}/s {phase.accepted:7,}"
        f" {len(lat):7,} {ms(percentile(lat, 50))} {ms(percentile(lat, 99))}"
        f" {ms(lat[-1] if lat else None)}   {ms(percentile(post, 50))}"
        f" {ms(percentile(post, 99))} {ms(percentile(late, 99))}"
    )
    if phase.errors or phase.unseen:
        click.echo(
            f"         errors: {phase.errors or 'none'}; unseen after {GIVE_UP_S:.0f} s:"
            f" {phase.unseen}"
        )


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@stack_options
@click.option("--url", help="The web front (HAProxy) [default: the local stack's web port].")
@click.option("--rate", default=500.0, show_default=True, help="Votes per second under load.")
@click.option("--duration", default=30.0, show_default=True, help="Seconds of load.")
@click.option("--floor-rate", default=20.0, show_default=True, help="The baseline's low rate.")
@click.option("--floor-duration", default=15.0, show_default=True, help="Seconds of baseline.")
@click.option("--warmup", default=2.0, show_default=True, help="Seconds not counted, per phase.")
@click.option("--voters", default=3000, show_default=True, help="Sessions (browsers) to vote.")
@click.option("--threads", default=128, show_default=True, help="Sender threads.")
@click.option("--poll-ms", default=10.0, show_default=True, help="Postgres poll interval.")
@click.option(
    "--via",
    type=click.Choice(["ro", "rw"]),
    default="ro",
    show_default=True,
    help="Poll through HAProxy's replica port (what /api/results reads) or the leader's.",
)
@click.option("--keep", is_flag=True, help="Keep the benchmark's votes in votes/tallies.")
def main(
    state_dir: str | None,
    base_port: int | None,
    url: str | None,
    rate: float,
    duration: float,
    floor_rate: float,
    floor_duration: float,
    warmup: float,
    voters: int,
    threads: int,
    poll_ms: float,
    via: str,
    keep: bool,
) -> None:
    """Measure vote-to-result latency (p50/p99/max) at a steady vote rate, beside the same
    measurement at a low rate in the same run (the floor: no queueing anywhere).

    Bounded: each phase lasts its duration plus at most 30 s of waiting for stragglers.
    """
    if min(rate, duration, floor_rate, floor_duration, voters, threads, poll_ms) <= 0:
        raise click.UsageError("rates, durations, --voters, --threads and --poll-ms must be > 0")
    config, layout = load_config(state_dir, base_port)
    base = web_url(url, layout)
    poll_url = config.database_ro_url if via == "ro" else config.database_url
    engine = make_engine(poll_url, pool_size=1)
    rw = make_engine(config.database_url, pool_size=1)
    verify = web_verify(layout)
    options = poll_options(base, verify)
    click.echo(f"vote-to-result latency: POST {base}/api/votes (202) until the row")
    click.echo(f"  is visible through {engine.url.render_as_string(hide_password=True)}")
    click.echo(f"  polled every {poll_ms:g} ms (so figures are upper bounds within that)")
    started = time.perf_counter()
    people = make_voters(base, voters, verify)
    click.echo(f"  {voters:,} sessions made in {time.perf_counter() - started:.1f} s")
    idle: queue.SimpleQueue = queue.SimpleQueue()
    for voter in people:
        idle.put(voter)
    observer = Observer(engine, poll_ms / 1000, idle)
    observer.start()
    phases = [Phase("floor", floor_rate), Phase("load", rate)]
    try:
        for phase, seconds in zip(phases, (floor_duration, duration), strict=True):
            run_phase(observer, phase, seconds, warmup, threads, options)
    finally:
        observer.stopping.set()
        observer.join(5)
        if not keep:
            last = {vote_id for phase in phases for vote_id in phase.vote_ids}
            with rw.begin() as conn:
                conn.execute(FORGET_VOTES, {"ids": sorted(last)})
        engine.dispose()
        rw.dispose()
    click.echo(
        f"  {'phase':6} {'target':>8} {'achieved':>10} {'votes':>7} {'timed':>7}"
        f" {'p50':>10} {'p99':>10} {'max':>10}   {'POST p50':>10} {'POST p99':>10}"
        f" {'late p99':>10}"
    )
    for phase in phases:
        report(phase)
    click.echo("  (timed: votes after the warm-up; late: how far sends fell behind schedule)")


if __name__ == "__main__":
    main()
