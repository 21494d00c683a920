"""A poll's results with 1,000,000 votes stored, in one poll and over 1,000 polls, beside the
naive COUNT(*) GROUP BY, in one run.

Our results endpoints read the poll's per-option `tallies` rows (kept exact by the worker in
the same transaction as the votes) with its definition, in one query, so they should cost the
same with 1M votes as with none, in one poll or spread over many. Measured, in this order:
- GET /api/results (the first poll) before, then with the 1M votes in the first poll (the
  shape before polls were data), beside the naive `SELECT option, count(*) FROM votes WHERE
  poll_id = 'first' GROUP BY option` timed straight against the same replica port;
- GET /api/polls/<id>/results of one poll when the 1M votes are spread over 1,000 polls
  (--polls), beside the same naive query for that poll.

    python benchmarks/results_1m.py --state-dir /tmp/bench-stack --base-port 24000
    eval "$(votectl env)"; python benchmarks/results_1m.py --votes 1000000 --polls 1000

The votes (and the polls) are generated inside Postgres (INSERT ... SELECT FROM
generate_series, one transaction with the matching tallies) as voters anon:r1m-<n> in the
first poll, then in polls "Benchmark results_1m: poll <n>?", and removed after each phase
(--keep keeps the last). The endpoint is loaded with wrk when it is installed (Debian's
/usr/bin/wrk), else with a Python loop.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import re
import shutil
import ssl
import subprocess
import threading
import time
from urllib.parse import urlsplit

import click
from sqlalchemy import Engine, text
from stackenv import (
    BENCH_QUESTION,
    forget_bench_polls,
    load_config,
    make_engine,
    stack_options,
    web_url,
    web_verify,
)

from core.polls import FIRST_POLL_ID
from ops.figures import percentile
from ops.voter import poll_options

BENCH_NAME = "results_1m"
VOTER_PREFIX = "anon:r1m-"
NAIVE = "SELECT option, count(*) FROM votes WHERE poll_id = '{poll}' GROUP BY option"
OPTIONS = ["red", "green", "blue", "yellow"]

# The polls: ids r1m-0001..., each with OPTIONS (as the login app would have stored them).
INSERT_POLLS = text("""
WITH made AS (
    INSERT INTO polls (id, question, state)
    SELECT 'r1m-' || lpad(CAST(p AS text), 5, '0'), replace(:question, '{n}', CAST(p AS text)),
           'open'
    FROM generate_series(1, :count) AS p
    RETURNING id
)
INSERT INTO poll_options (poll_id, key, label, position)
SELECT made.id, o.key, initcap(o.key), o.position
FROM made, unnest(CAST(:options AS text[])) WITH ORDINALITY AS o(key, position)
""")
# One transaction: the rows and their counts, as the worker would have left them; vote g goes
# to poll g % len(polls) (round robin, so every poll gets its share).
INSERT_VOTES = text("""
WITH added AS (
    INSERT INTO votes (poll_id, voter_id, option, stream_ms, stream_seq, vote_id, voted_at)
    SELECT (CAST(:polls AS text[]))[1 + g % :n_polls], :prefix || g,
           (CAST(:options AS text[]))[1 + (g / :n_polls) % :n_options], 1, g,
           md5(:prefix || g), now()
    FROM generate_series(1, :count) AS g
    RETURNING poll_id, option
), per_option AS (SELECT poll_id, option, count(*) AS n FROM added GROUP BY poll_id, option)
INSERT INTO tallies AS t (poll_id, option, count)
SELECT poll_id, option, n FROM per_option ORDER BY poll_id, option
ON CONFLICT (poll_id, option) DO UPDATE SET count = t.count + EXCLUDED.count
""")
FORGET_VOTES = text("""
WITH gone AS (DELETE FROM votes WHERE voter_id LIKE :pattern RETURNING poll_id, option),
     per_option AS (SELECT poll_id, option, count(*) AS n FROM gone GROUP BY poll_id, option)
UPDATE tallies SET count = tallies.count - per_option.n
FROM per_option
WHERE (tallies.poll_id, tallies.option) = (per_option.poll_id, per_option.option)
""")
UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


@dataclasses.dataclass
class Figures:
    """Latency percentiles (seconds) and throughput of one measurement."""

    p50: float
    p99: float
    per_s: float
    note: str = ""

    def cell(self) -> str:
        return f"{self.p50 * 1000:8.2f} {self.p99 * 1000:8.2f} ms {self.per_s:8,.0f}/s"


def _seconds(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()
    return float(number) * UNITS[unit]


def _figures(times: list[float], seconds: float, note: str = "") -> Figures:
    nan = float("nan")
    p50, p99 = percentile(times, 50), percentile(times, 99)
    return Figures(
        nan if p50 is None else p50, nan if p99 is None else p99, len(times) / seconds, note
    )


def load_with_wrk(url: str, seconds: int, connections: int) -> Figures:
    """wrk's own latency distribution and Requests/sec."""
    command = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    out = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=seconds + 30
    ).stdout
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if not (p50 and p99 and rate):
        raise click.ClickException(f"could not read wrk's output:\n{out}")
    note = f"{errors.group(1)} non-2xx" if errors else ""
    return Figures(_seconds(p50.group(1)), _seconds(p99.group(1)), float(rate.group(1)), note)


def in_threads(work, connections: int, seconds: float) -> tuple[list[float], float]:
    """Run `work(stop_at)` (which returns its latencies) in `connections` threads."""
    times: list[float] = []
    lock = threading.Lock()
    started = time.perf_counter()
    stop_at = started + seconds

    def run() -> None:
        mine = work(stop_at)
        with lock:
            times.extend(mine)

    threads = [threading.Thread(target=run) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    return times, time.perf_counter() - started


# What HTTPS connections trust (stackenv.web_verify), set once by main().
TRUST: dict[str, bool | str] = {"verify": True}


def connect(url: str) -> http.client.HTTPConnection:
    """A keep-alive connection to `url`'s host, over TLS for https."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        cafile = TRUST["verify"] if isinstance(TRUST["verify"], str) else None
        context = ssl.create_default_context(cafile=cafile)
        return http.client.HTTPSConnection(
            parts.hostname, parts.port or 443, timeout=10, context=context
        )
    return http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=10)


def get_loop(url: str, stop_at: float, limit: int) -> list[float]:
    """GET `url` on one keep-alive connection until `stop_at` or `limit` requests."""
    parts = urlsplit(url)
    conn = connect(url)
    times: list[float] = []
    try:
        while len(times) < limit and (started := time.perf_counter()) < stop_at:
            conn.request("GET", parts.path)
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise click.ClickException(f"GET {url} answered {resp.status}")
            times.append(time.perf_counter() - started)
    finally:
        conn.close()
    return times


def query_loop(engine: Engine, query: str, stop_at: float, limit: int) -> list[float]:
    """The naive query on one connection until `stop_at` or `limit` runs (after a warm-up)."""
    times: list[float] = []
    with engine.connect() as conn:
        conn.exec_driver_sql(query).all()  # a warm cache: the baseline's best case
        while len(times) < limit and (started := time.perf_counter()) < stop_at:
            conn.exec_driver_sql(query).all()
            times.append(time.perf_counter() - started)
    return times


def measure_endpoint(url: str, seconds: int, connections: int, serial: int) -> list[Figures]:
    """[one client in a loop, `connections` clients for `seconds` (wrk when installed)]."""
    times, took = in_threads(lambda stop: get_loop(url, stop, serial), 1, seconds)
    one = _figures(times, took)
    if shutil.which("wrk"):
        return [one, load_with_wrk(url, seconds, connections)]
    times, took = in_threads(lambda stop: get_loop(url, stop, 10**9), connections, seconds)
    return [one, _figures(times, took, "python clients")]


def measure_naive(
    engine: Engine, poll: str, seconds: int, connections: int, runs: int
) -> list[Figures]:
    """The same two shapes for the naive query of `poll`, straight to Postgres."""
    query = NAIVE.format(poll=poll)
    times, took = in_threads(lambda stop: query_loop(engine, query, stop, runs), 1, seconds)
    one = _figures(times, took)
    times, took = in_threads(
        lambda stop: query_loop(engine, query, stop, 10**9), connections, seconds
    )
    return [one, _figures(times, took)]


def results_total(url: str) -> int:
    parts = urlsplit(url)
    conn = connect(url)
    try:
        conn.request("GET", parts.path)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise click.ClickException(f"GET {url} answered {resp.status}")
    finally:
        conn.close()
    return int(json.loads(body)["total"])


def wait_for_replicas(url: str, total: int, timeout: float = 120) -> None:
    """Until /api/results (which reads a replica) shows the new total several times in a row."""
    deadline = time.monotonic() + timeout
    streak = 0
    while streak < 6:
        if time.monotonic() > deadline:
            raise click.ClickException(f"replicas did not show {total:,} votes in {timeout} s")
        streak = streak + 1 if results_total(url) >= total else 0
        time.sleep(0.25)


@dataclasses.dataclass(frozen=True)
class Plan:
    """How long and how hard each measurement runs."""

    seconds: int
    connections: int
    runs: int


def phase(
    rows: list, label: str, url: str, ro: Engine, poll: str, plan: Plan
) -> tuple[list[Figures], list[Figures]]:
    """The endpoint and the naive query for `poll`, each measured both ways; kept in `rows`."""
    total = results_total(url)
    ours = measure_endpoint(url, plan.seconds, plan.connections, plan.runs * 10)
    naive = measure_naive(ro, poll, plan.seconds, plan.connections, plan.runs)
    rows.append((f"{label}, {total:,} votes in the poll", ours))
    rows.append(("  naive COUNT(*) of that poll (baseline)", naive))
    return ours, naive


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@stack_options
@click.option("--url", help="The web front (HAProxy) [default: the local stack's web port].")
@click.option("--votes", default=1_000_000, show_default=True, help="Votes to store.")
@click.option("--polls", default=1_000, show_default=True, help="Polls to spread them over.")
@click.option("--seconds", default=10, show_default=True, help="Load duration per measurement.")
@click.option("--connections", default=16, show_default=True, help="Concurrent HTTP clients.")
@click.option(
    "--runs",
    default=20,
    show_default=True,
    help="Naive queries one after another (and 10x as many single-client GETs).",
)
@click.option("--keep", is_flag=True, help="Keep the votes (and polls) of the last phase.")
def main(
    state_dir: str | None,
    base_port: int | None,
    url: str | None,
    votes: int,
    polls: int,
    seconds: int,
    connections: int,
    runs: int,
    keep: bool,
) -> None:
    """Measure a poll's results endpoint (p50/p99, req/s) with --votes stored in the first
    poll and then spread over --polls polls, beside the naive COUNT(*) GROUP BY of that poll
    timed directly in the same run, each by one client in a loop and by --connections clients
    at once; and the first poll's before any vote is stored.

    Bounded: every measurement stops after --seconds (or --runs), and the replicas get at
    most 2 minutes to replay the inserted rows.
    """
    if min(votes, polls, seconds, connections, runs) < 1:
        raise click.UsageError("--votes, --polls, --seconds, --connections and --runs >= 1")
    config, layout = load_config(state_dir, base_port)
    web = web_url(url, layout)
    TRUST["verify"] = web_verify(layout)
    first_url = web + "/api/results"
    rw = make_engine(config.database_url, pool_size=1)
    ro = make_engine(config.database_ro_url, pool_size=connections)
    plan = Plan(seconds, connections, runs)
    click.echo(f"results with {votes:,} votes stored, in one poll and over {polls:,} polls")
    click.echo(f"  baseline, straight to {ro.url.render_as_string(hide_password=True)}: {NAIVE}")
    rows: list = []
    try:
        forget(rw)
        before = results_total(first_url)
        ours_empty = measure_endpoint(first_url, seconds, connections, runs * 10)
        rows.append((f"GET /api/results, {before:,} votes in the poll", ours_empty))

        stored = store(rw, votes, [FIRST_POLL_ID], poll_options(web, TRUST["verify"]))
        wait_for_replicas(first_url, before + votes)
        click.echo(f"  stored {votes:,} votes in the first poll in {stored:.1f} s")
        ours_one, naive_one = phase(rows, "GET /api/results", first_url, ro, FIRST_POLL_ID, plan)
        forget(rw)

        ids = make_polls(rw, polls)
        stored = store(rw, votes, ids, OPTIONS)
        probe = ids[len(ids) // 2]
        poll_url = f"{web}/api/polls/{probe}/results"
        wait_for_replicas(f"{web}/api/polls/{ids[-1]}/results", votes // polls)
        wait_for_replicas(poll_url, votes // polls)
        click.echo(f"  stored {votes:,} votes over {polls:,} polls in {stored:.1f} s")
        label = f"GET /api/polls/<id>/results, {polls:,} polls"
        ours_many, naive_many = phase(rows, label, poll_url, ro, probe, plan)
    finally:
        if not keep:
            forget(rw)
        rw.dispose()
        ro.dispose()
    click.echo(
        f"  {'':68} {'one client: p50, p99, rate':>31}   {connections} clients: p50, p99, rate"
    )
    for label, (one, many) in rows:
        click.echo(f"  {label:68} {one.cell()}   {many.cell()} {many.note}")
    one_poll, spread = ours_one[0], ours_many[0]
    click.echo(
        f"  one client, one poll's results: p50 {spread.p50 * 1000:.2f} ms / p99"
        f" {spread.p99 * 1000:.2f} ms with {votes:,} votes over {polls:,} polls, beside"
        f" p50 {one_poll.p50 * 1000:.2f} ms / p99 {one_poll.p99 * 1000:.2f} ms with them all"
        f" in one poll ({ours_empty[0].p50 * 1000:.2f} / {ours_empty[0].p99 * 1000:.2f} ms"
        " before any was stored)"
    )
    click.echo(
        f"  one client: the naive query's p50 is {naive_one[0].p50 / one_poll.p50:,.0f}x ours"
        f" with {votes:,} votes in one poll, {naive_many[0].p50 / spread.p50:,.1f}x with"
        f" {votes // polls:,} in the poll"
    )


def make_polls(rw: Engine, count: int) -> list[str]:
    """`count` polls with OPTIONS, made inside Postgres; their ids."""
    question = BENCH_QUESTION.format(name=BENCH_NAME, number="{n}")
    with rw.begin() as conn:
        conn.execute(
            INSERT_POLLS,
            {"question": question, "count": count, "options": _array(OPTIONS)},
        )
    return [f"r1m-{n:05d}" for n in range(1, count + 1)]


def _array(values: list[str]) -> str:
    return "{" + ",".join(f'"{v}"' for v in values) + "}"


def store(rw: Engine, votes: int, polls: list[str], options: list[str]) -> float:
    """Insert the votes with their tallies, then VACUUM ANALYZE (the baseline's best case);
    the seconds it took."""
    started = time.perf_counter()
    with rw.begin() as conn:
        conn.execute(
            INSERT_VOTES,
            {
                "prefix": VOTER_PREFIX,
                "polls": _array(polls),
                "n_polls": len(polls),
                "options": _array(options),
                "n_options": len(options),
                "count": votes,
            },
        )
    with rw.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM (ANALYZE) votes, tallies"))
    return time.perf_counter() - started


def forget(rw: Engine) -> None:
    """Remove the inserted votes (with their counts) and polls."""
    with rw.begin() as conn:
        conn.execute(FORGET_VOTES, {"pattern": VOTER_PREFIX + "%"})
    forget_bench_polls(rw, BENCH_NAME)
    with rw.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM votes, tallies"))


if __name__ == "__main__":
    main()
