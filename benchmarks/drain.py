"""Worker drain rate into Postgres beside a raw batched COPY of the same rows, in one run.

On the HA stack (synchronous replication through HAProxy's leader port):

    eval "$(votectl env)"
    python benchmarks/drain.py                     # 200,000 votes, 2 worker processes

Against throwaway single servers (the fast test tier's: fsync off, so both figures are optimistic):

    python benchmarks/drain.py --throwaway-servers --votes 50000 --voters 25000

The benchmark uses its own stream (votes:bench), so the stack's workers never see its entries,
but it writes the real `votes` and `tallies` tables, as the worker does. Its voters are named
anon:bench-<n>; their rows are removed (and the tallies corrected) before and after the run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import multiprocessing
import random
import secrets
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import click
from redis import Redis
from sqlalchemy import Engine, text

from app.config import Config, ConfigError, parse_hostports
from app.db import make_engine
from app.redis import make_sentinel, master_client
from app.stream import GROUP, Vote, split_id
from worker.daemon import VoteWorker

BENCH_STREAM = "votes:bench"
BENCH_DEAD_LETTER = "votes:bench:dead"
VOTER_PREFIX = "anon:bench-"
RAW_TABLE = "votes_bench_raw"
CLASSIC_VOTES_PER_S = 10

# Remove the benchmark's voters and take their votes back out of the tallies, atomically.
FORGET_BENCH_VOTERS = text("""
WITH gone AS (DELETE FROM votes WHERE voter_id LIKE :prefix RETURNING option),
     per_option AS (SELECT option, count(*) AS n FROM gone GROUP BY option)
UPDATE tallies SET count = tallies.count - per_option.n
FROM per_option WHERE tallies.option = per_option.option
""")


@dataclasses.dataclass(frozen=True)
class Timing:
    count: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else float("inf")


def make_votes(n: int, voters: int, options: list[str], seed: int) -> list[Vote]:
    """n votes; voter k votes again every `voters` votes, so most votes replace an earlier one."""
    rng = random.Random(seed)
    return [Vote.new(f"{VOTER_PREFIX}{i % voters}", rng.choice(options)) for i in range(n)]


def fill_stream(client: Redis, votes: list[Vote], chunk: int = 5000) -> tuple[Timing, list]:
    """Pipelined XADDs, as many vote app processes would produce them; returns the ids too."""
    ids: list[bytes] = []
    started = time.perf_counter()
    for start in range(0, len(votes), chunk):
        with client.pipeline(transaction=False) as pipe:
            for vote in votes[start : start + chunk]:
                pipe.xadd(BENCH_STREAM, vote.fields())
            ids += pipe.execute()
    return Timing(len(votes), time.perf_counter() - started), ids


def drained(client: Redis) -> bool:
    group = next(g for g in client.xinfo_groups(BENCH_STREAM) if g["name"] == GROUP.encode())
    last = client.xinfo_stream(BENCH_STREAM)["last-generated-id"]
    return group["pending"] == 0 and group["last-delivered-id"] == last


def _run_worker(config: Config) -> None:
    """A worker process: the real daemon on the benchmark's stream, stopped by SIGTERM."""
    worker = VoteWorker.from_config(config, stream=BENCH_STREAM, dead_letter=BENCH_DEAD_LETTER)
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    worker.run()


def drain(config: Config, client: Redis, count: int, workers: int, in_process: bool) -> Timing:
    """Start the workers, wait until every entry is acknowledged, stop them."""
    configs = [dataclasses.replace(config, worker_name=f"bench-{i + 1}") for i in range(workers)]
    started = time.perf_counter()
    if in_process:
        daemons = [
            VoteWorker.from_config(c, stream=BENCH_STREAM, dead_letter=BENCH_DEAD_LETTER)
            for c in configs
        ]
        runners = [threading.Thread(target=d.run, daemon=True) for d in daemons]
        stoppers = [d.stop for d in daemons]
    else:
        runners = [
            multiprocessing.get_context("fork").Process(target=_run_worker, args=(c,))
            for c in configs
        ]
        stoppers = [r.terminate for r in runners]
    for runner in runners:
        runner.start()
    try:
        while not drained(client):
            if not any(runner.is_alive() for runner in runners):
                raise click.ClickException("the workers exited before the stream was drained")
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    finally:
        for stop in stoppers:
            stop()
        for runner in runners:
            runner.join(30)
    return Timing(count, elapsed)


def _copy_rows(engine: Engine, chunks: list[str]) -> None:
    conn = engine.raw_connection()
    try:
        cursor = conn.cursor()
        for chunk in chunks:
            cursor.copy_expert(
                f"COPY {RAW_TABLE} (voter_id, option, stream_ms, stream_seq, vote_id, voted_at)"
                " FROM STDIN",
                io.StringIO(chunk),
            )
            conn.commit()
    finally:
        conn.close()


def raw_copy(engine: Engine, votes: list[Vote], ids: list, batch: int, writers: int) -> Timing:
    """COPY the same rows into a plain copy of `votes`, one commit per batch, `writers` at once.

    A regular (logged, replicated) table with the same columns but no primary key: the cost of
    writing and committing these rows at all, with nothing to look up.
    """
    lines = []
    for vote, entry_id in zip(votes, ids, strict=True):
        ms, seq = split_id(entry_id)
        at = datetime.fromtimestamp(vote.ts_ms / 1000, UTC).isoformat()
        lines.append(f"{vote.voter}\t{vote.option}\t{ms}\t{seq}\t{vote.vote_id}\t{at}\n")
    chunks = ["".join(lines[i : i + batch]) for i in range(0, len(lines), batch)]
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {RAW_TABLE}"))
        conn.execute(text(f"CREATE TABLE {RAW_TABLE} (LIKE votes INCLUDING DEFAULTS)"))
    threads = [
        threading.Thread(target=_copy_rows, args=(engine, chunks[k::writers]))
        for k in range(writers)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    with engine.begin() as conn:
        copied = conn.execute(text(f"SELECT count(*) FROM {RAW_TABLE}")).scalar_one()
        conn.execute(text(f"DROP TABLE {RAW_TABLE}"))
    if copied != len(votes):
        raise click.ClickException(f"raw COPY stored {copied} rows, expected {len(votes)}")
    return Timing(len(votes), elapsed)


def forget_bench(engine: Engine, client: Redis) -> None:
    """Remove every trace of a (previous) run: stream, dead letters, voters and their counts."""
    client.delete(BENCH_STREAM, BENCH_DEAD_LETTER)
    with engine.begin() as conn:
        conn.execute(FORGET_BENCH_VOTERS, {"prefix": VOTER_PREFIX + "%"})


def check_result(engine: Engine, votes: list[Vote]) -> None:
    """Every benchmark voter stored once, with their last vote."""
    newest = {v.voter: v.vote_id for v in votes}
    with engine.connect() as conn:
        stored = dict(
            conn.execute(
                text("SELECT voter_id, vote_id FROM votes WHERE voter_id LIKE :p"),
                {"p": VOTER_PREFIX + "%"},
            ).all()
        )
    if stored != newest:
        wrong = sum(1 for voter, vote_id in newest.items() if stored.get(voter) != vote_id)
        raise click.ClickException(f"{wrong} of {len(newest)} voters do not hold their last vote")


@contextlib.contextmanager
def throwaway_config() -> Iterator[Config]:
    """Start the fast test tier's servers (Redis + replica + Sentinel, Postgres) for this run."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from app.migrate import upgrade
    from ops.db import ensure_role_and_database
    from tests.servers import postgres_server, redis_cluster

    with redis_cluster() as cluster, postgres_server() as pg:
        password = secrets.token_hex(12)
        ensure_role_and_database(pg.url(), "vote", password, "votes")
        url = pg.url("votes", user="vote", password=password)
        upgrade(url)
        yield Config.from_env(
            {
                "SECRET_KEY": secrets.token_hex(16),
                "REDIS_SENTINELS": f"127.0.0.1:{cluster.sentinel_port}",
                "REDIS_MASTER_NAME": cluster.master_name,
                "REDIS_PASSWORD": cluster.password,
                "SENTINEL_PASSWORD": cluster.password,
                "DATABASE_URL": url,
            }
        )


def environment_config(database_url: str | None, sentinels: str | None) -> Config:
    try:
        config = Config.from_env()
        if database_url:
            config = dataclasses.replace(config, database_url=database_url)
        if sentinels:
            config = dataclasses.replace(
                config, sentinels=parse_hostports(sentinels, "--sentinels")
            )
    except ConfigError as exc:
        raise click.UsageError(f"{exc} (or use --throwaway-servers)") from None
    return config


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--votes", default=200_000, show_default=True, help="Entries to put in the stream.")
@click.option("--voters", default=100_000, show_default=True, help="Distinct voters among them.")
@click.option("--workers", default=2, show_default=True, help="Worker processes (or threads).")
@click.option("--batch", type=int, help="Entries per batch [default: WORKER_BATCH, 500].")
@click.option("--in-process", is_flag=True, help="Run the workers as threads of this process.")
@click.option("--database-url", help="Override DATABASE_URL (HAProxy's leader port).")
@click.option("--sentinels", help="Override REDIS_SENTINELS (host:port,...).")
@click.option(
    "--throwaway-servers",
    is_flag=True,
    help="Start single throwaway servers instead (fast tier; fsync off).",
)
@click.option("--keep", is_flag=True, help="Keep the benchmark's voters in votes/tallies.")
@click.option("--seed", default=1, show_default=True, help="Seed for the options voted for.")
def main(
    votes: int,
    voters: int,
    workers: int,
    batch: int | None,
    in_process: bool,
    database_url: str | None,
    sentinels: str | None,
    throwaway_servers: bool,
    keep: bool,
    seed: int,
) -> None:
    """Measure how fast the worker drains the vote stream into Postgres, beside raw COPY."""
    if votes < 1 or not 1 <= voters <= votes or workers < 1:
        raise click.UsageError("need votes >= voters >= 1 and workers >= 1")
    with contextlib.ExitStack() as stack:
        if throwaway_servers:
            config = stack.enter_context(throwaway_config())
        else:
            config = environment_config(database_url, sentinels)
        if batch:
            config = dataclasses.replace(config, worker_batch=batch)
        run(config, votes, voters, workers, in_process, keep, seed, throwaway_servers)


def run(
    config: Config,
    n: int,
    voters: int,
    workers: int,
    in_process: bool,
    keep: bool,
    seed: int,
    throwaway: bool,
) -> None:
    client = master_client(config, make_sentinel(config), socket_timeout=10)
    engine = make_engine(config.database_url, pool_size=workers)
    kind = "threads" if in_process else "processes"
    click.echo(
        f"drain benchmark: {n:,} votes from {voters:,} voters, "
        f"batch {config.worker_batch}, {workers} worker {kind}"
    )
    click.echo(
        f"  postgres: {engine.url.render_as_string(hide_password=True)}"
        + ("  (throwaway server: fsync off, no replication)" if throwaway else "")
    )
    forget_bench(engine, client)
    try:
        votes = make_votes(n, voters, [o.key for o in config.options], seed)
        client.xgroup_create(BENCH_STREAM, GROUP, id="0", mkstream=True)
        filled, ids = fill_stream(client, votes)
        line("stream fill (pipelined XADD)", filled, "entries/s")
        engine.dispose()  # worker processes are forked: they must not inherit pooled sockets
        drained_in = drain(config, client, n, workers, in_process)
        check_result(engine, votes)
        line("worker drain into votes+tallies", drained_in, "votes/s")
        raw = raw_copy(engine, votes, ids, config.worker_batch, workers)
        line(f"raw COPY, {config.worker_batch} rows/commit", raw, "rows/s")
        click.echo(f"  {'worker / raw COPY':34} {drained_in.rate / raw.rate:10.2f}")
        classic = f"~{CLASSIC_VOTES_PER_S}"
        click.echo(
            f"  {'classic example-voting-app worker':34} {classic:>10} votes/s"
            "  (reference figure, not measured here)"
        )
        click.echo(f"  {'worker / classic':34} {drained_in.rate / CLASSIC_VOTES_PER_S:10.0f}x")
    finally:
        if not keep:
            forget_bench(engine, client)
        engine.dispose()


def line(label: str, timing: Timing, unit: str) -> None:
    click.echo(
        f"  {label:34} {timing.rate:10,.0f} {unit}  ({timing.count:,} in {timing.seconds:.2f} s)"
    )


if __name__ == "__main__":
    main()
