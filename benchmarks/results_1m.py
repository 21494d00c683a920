"""/api/results with 1,000,000 votes stored, beside the naive COUNT(*) GROUP BY, in one run.

Our results endpoint reads the per-option `tallies` rows (kept exact by the worker in the same
transaction as the votes), so it should cost the same with 1M votes as with none. The
baseline is what a naive endpoint would run, `SELECT option, count(*) FROM votes GROUP BY
option`, timed directly against the same replica port, with no HTTP around it.

    python benchmarks/results_1m.py --state-dir /tmp/bench-stack --base-port 24000
    eval "$(votectl env)"; python benchmarks/results_1m.py --votes 1000000

The votes are generated inside Postgres (INSERT ... SELECT FROM generate_series, one
transaction with the matching tallies) as voters anon:r1m-<n>, and removed at the end
(--keep keeps them). The endpoint is loaded with wrk when it is installed (Debian's
/usr/bin/wrk), else with a Python loop.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import re
import shutil
import subprocess
import threading
import time
from urllib.parse import urlsplit

import click
from sqlalchemy import Engine, text
from stackenv import load_config, stack_options, web_url

from core.db import make_engine
from ops.figures import percentile

VOTER_PREFIX = "anon:r1m-"
NAIVE = "SELECT option, count(*) FROM votes GROUP BY option"

# One transaction: the rows and their counts, as the worker would have left them.
INSERT_VOTES = text("""
WITH added AS (
    INSERT INTO votes (voter_id, option, stream_ms, stream_seq, vote_id, voted_at)
    SELECT :prefix || g, (CAST(:options AS text[]))[1 + g % :n_options], 1, g,
           md5(:prefix || g), now()
    FROM generate_series(1, :count) AS g
    RETURNING option
), per_option AS (SELECT option, count(*) AS n FROM added GROUP BY option)
INSERT INTO tallies AS t (option, count) SELECT option, n FROM per_option ORDER BY option
ON CONFLICT (option) DO UPDATE SET count = t.count + EXCLUDED.count
""")
FORGET_VOTES = text("""
WITH gone AS (DELETE FROM votes WHERE voter_id LIKE :pattern RETURNING option),
     per_option AS (SELECT option, count(*) AS n FROM gone GROUP BY option)
UPDATE tallies SET count = tallies.count - per_option.n
FROM per_option WHERE tallies.option = per_option.option
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


def get_loop(url: str, stop_at: float, limit: int) -> list[float]:
    """GET `url` on one keep-alive connection until `stop_at` or `limit` requests."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=10)
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


def query_loop(engine: Engine, stop_at: float, limit: int) -> list[float]:
    """The naive query on one connection until `stop_at` or `limit` runs (after a warm-up)."""
    times: list[float] = []
    with engine.connect() as conn:
        conn.exec_driver_sql(NAIVE).all()  # a warm cache: the baseline's best case
        while len(times) < limit and (started := time.perf_counter()) < stop_at:
            conn.exec_driver_sql(NAIVE).all()
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


def measure_naive(engine: Engine, seconds: int, connections: int, runs: int) -> list[Figures]:
    """The same two shapes for the naive query, straight to Postgres."""
    times, took = in_threads(lambda stop: query_loop(engine, stop, runs), 1, seconds)
    one = _figures(times, took)
    times, took = in_threads(lambda stop: query_loop(engine, stop, 10**9), connections, seconds)
    return [one, _figures(times, took)]


def results_total(url: str) -> int:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=10)
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


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@stack_options
@click.option("--url", help="The web front (HAProxy) [default: the local stack's web port].")
@click.option("--votes", default=1_000_000, show_default=True, help="Votes to store.")
@click.option("--seconds", default=10, show_default=True, help="Load duration per measurement.")
@click.option("--connections", default=16, show_default=True, help="Concurrent HTTP clients.")
@click.option(
    "--runs",
    default=20,
    show_default=True,
    help="Naive queries one after another (and 10x as many single-client GETs).",
)
@click.option("--keep", is_flag=True, help="Keep the inserted votes.")
def main(
    state_dir: str | None,
    base_port: int | None,
    url: str | None,
    votes: int,
    seconds: int,
    connections: int,
    runs: int,
    keep: bool,
) -> None:
    """Measure GET /api/results (p50/p99, req/s) with 1M votes stored, beside the naive
    COUNT(*) GROUP BY query timed directly in the same run, each by one client in a loop and
    by --connections clients at once; and both before the votes are stored.

    Bounded: every measurement stops after --seconds (or --runs), and the replicas get at
    most 2 minutes to replay the inserted rows.
    """
    if min(votes, seconds, connections, runs) < 1:
        raise click.UsageError("--votes, --seconds, --connections and --runs must be >= 1")
    config, layout = load_config(state_dir, base_port)
    results_url = web_url(url, layout) + "/api/results"
    rw = make_engine(config.database_url, pool_size=1)
    ro = make_engine(config.database_ro_url, pool_size=connections)
    options = [o.key for o in config.options]
    click.echo(f"/api/results with {votes:,} votes stored: {results_url}")
    click.echo(f"  baseline, straight to {ro.url.render_as_string(hide_password=True)}: {NAIVE}")
    rows = []
    try:
        total = results_total(results_url)
        rows.append(
            (
                f"GET /api/results, {total:,} votes",
                measure_endpoint(results_url, seconds, connections, runs * 10),
            )
        )
        rows.append(
            (f"naive COUNT(*), {total:,} votes", measure_naive(ro, seconds, connections, runs))
        )
        started = time.perf_counter()
        store(rw, votes, options)
        wait_for_replicas(results_url, total + votes)
        click.echo(f"  stored {votes:,} votes in {time.perf_counter() - started:.1f} s")
        total = results_total(results_url)
        rows.append(
            (
                f"GET /api/results, {total:,} votes",
                measure_endpoint(results_url, seconds, connections, runs * 10),
            )
        )
        rows.append(
            (
                f"naive COUNT(*), {total:,} votes (baseline)",
                measure_naive(ro, seconds, connections, runs),
            )
        )
    finally:
        if not keep:
            forget(rw)
        rw.dispose()
        ro.dispose()
    click.echo(
        f"  {'':42} {'one client: p50, p99, rate':>31}   {connections} clients: p50, p99, rate"
    )
    for label, (one, many) in rows:
        click.echo(f"  {label:42} {one.cell()}   {many.cell()} {many.note}")
    (ours_small, _), (_, _), (ours, ours_many), (naive, naive_many) = (r for _, r in rows)
    click.echo(
        f"  one client: /api/results p50 {naive.p50 / ours.p50:,.0f}x lower than the naive"
        f" query's with {total:,} votes, and {ours.p50 / ours_small.p50:.2f}x its own p50"
        " before they were stored"
    )
    click.echo(
        f"  {connections} clients: /api/results serves {ours_many.per_s / naive_many.per_s:,.0f}x"
        " as many requests per second as the naive query alone"
    )


def store(rw: Engine, votes: int, options: list[str]) -> None:
    """Insert the votes with their tallies, then VACUUM ANALYZE (the baseline's best case)."""
    with rw.begin() as conn:
        conn.execute(
            INSERT_VOTES,
            {
                "prefix": VOTER_PREFIX,
                "options": "{" + ",".join(f'"{o}"' for o in options) + "}",
                "n_options": len(options),
                "count": votes,
            },
        )
    with rw.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM (ANALYZE) votes"))


def forget(rw: Engine) -> None:
    """Remove the inserted votes and their counts."""
    with rw.begin() as conn:
        conn.execute(FORGET_VOTES, {"pattern": VOTER_PREFIX + "%"})
    with rw.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM votes"))


if __name__ == "__main__":
    main()
