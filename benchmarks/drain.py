"""Worker drain rate into Postgres beside a raw batched upsert of the same rows, in one run.

On the HA stack (synchronous replication through HAProxy's leader port):

    eval "$(votectl env)"
    python benchmarks/drain.py                     # 200,000 votes, 2 worker processes
    python benchmarks/drain.py --state-dir /tmp/bench-stack --base-port 24000 --rounds 3

The ceiling is the same stream's rows, cut into batches of the same size and reduced to each
voter's newest vote as the worker does, upserted with one statement and one COMMIT per batch
into `votes_bench_raw` (LIKE votes INCLUDING ALL: same columns, same primary key) through the
same HAProxy port, with as many connections as there are workers: the cost of writing those
rows at all, without Redis, decoding, the stream-order check, tallies or acknowledgements.

Against throwaway single servers (the fast test tier's: fsync off, so both figures are optimistic):

    python benchmarks/drain.py --throwaway-servers --votes 50000 --voters 25000

The benchmark uses its own stream (votes:bench), so the stack's workers never see its entries,
but it writes the real `votes` and `tallies` tables, as the worker does. Its voters are named
anon:bench-<n> and vote in polls of its own (--polls, each voter always in the same one); the
polls are removed with their votes and tallies before and after the run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import random
import secrets
import signal
import threading
import time
from collections.abc import Iterator

import click
from redis import Redis
from sqlalchemy import Engine, text
from stackenv import (  # also puts the checkout on sys.path
    CpuMeter,
    forget_bench_polls,
    load_config,
    make_bench_polls,
    make_engine,
    stack_options,
)

from core.config import Config
from core.polls import Poll
from core.redis_client import make_sentinel, master_client
from core.stream import GROUP, Vote, split_id
from worker.daemon import VoteWorker

BENCH_STREAM = "votes:bench"
BENCH_DEAD_LETTER = "votes:bench:dead"
VOTER_PREFIX = "anon:bench-"
RAW_TABLE = "votes_bench_raw"
CLASSIC_VOTES_PER_S = 10
# Give up when the workers have not moved for this long (the run stays bounded).
STALL_S = 60

BENCH_NAME = "drain"
OPTIONS = ["Red", "Green", "Blue"]

# Tallies are exact when every (poll, option)'s count equals its number of rows.
TALLY_MISMATCHES = text("""
SELECT coalesce(t.poll_id, r.poll_id), coalesce(t.option, r.option), coalesce(t.count, 0),
       coalesce(r.n, 0)
FROM tallies t
FULL JOIN (SELECT poll_id, option, count(*) AS n FROM votes GROUP BY poll_id, option) r
  ON (r.poll_id, r.option) = (t.poll_id, t.option)
WHERE coalesce(t.count, 0) <> coalesce(r.n, 0)
""")


@dataclasses.dataclass(frozen=True)
class Timing:
    count: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else float("inf")


def make_votes(n: int, voters: int, polls: list[Poll], seed: int) -> list[Vote]:
    """n votes; voter k votes again every `voters` votes, always in poll k % len(polls), so
    most votes replace an earlier one."""
    rng = random.Random(seed)
    keys = [[o.key for o in poll.options] for poll in polls]
    made = []
    for i in range(n):
        voter = i % voters
        poll = voter % len(polls)
        made.append(Vote.new(polls[poll].id, f"{VOTER_PREFIX}{voter}", rng.choice(keys[poll])))
    return made


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


def progress(client: Redis) -> tuple[bool, tuple]:
    """(every entry read and acknowledged, a token that changes whenever the workers move)."""
    group = next(g for g in client.xinfo_groups(BENCH_STREAM) if g["name"] == GROUP.encode())
    last = client.xinfo_stream(BENCH_STREAM)["last-generated-id"]
    done = group["pending"] == 0 and group["last-delivered-id"] == last
    return done, (group["pending"], group["last-delivered-id"])


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
        done, seen = progress(client)
        moved = time.monotonic()
        while not done:
            if not any(runner.is_alive() for runner in runners):
                raise click.ClickException("the workers exited before the stream was drained")
            if time.monotonic() - moved > STALL_S:
                raise click.ClickException(f"the workers made no progress for {STALL_S} s")
            time.sleep(0.05)
            done, token = progress(client)
            if token != seen:
                seen, moved = token, time.monotonic()
        elapsed = time.perf_counter() - started
    finally:
        for stop in stoppers:
            stop()
        for runner in runners:
            runner.join(30)
    return Timing(count, elapsed)


# The ceiling: the same rows, written the same way (one multi-row upsert per batch, rows in
# voter order, one COMMIT), into a table shaped like `votes`, without the stream-order check,
# the RETURNING, the tallies, Redis or any decoding.
RAW_UPSERT = f"""
INSERT INTO {RAW_TABLE} AS v (poll_id, voter_id, option, stream_ms, stream_seq, vote_id, voted_at)
SELECT b.poll_id, b.voter_id, b.option, b.stream_ms, b.stream_seq, b.vote_id,
       to_timestamp(b.ts_ms / 1000.0)
FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::text[],
            %s::bigint[])
     AS b(poll_id, voter_id, option, stream_ms, stream_seq, vote_id, ts_ms)
ORDER BY b.poll_id, b.voter_id
ON CONFLICT (poll_id, voter_id) DO UPDATE SET
    option = EXCLUDED.option, stream_ms = EXCLUDED.stream_ms, stream_seq = EXCLUDED.stream_seq,
    vote_id = EXCLUDED.vote_id, voted_at = EXCLUDED.voted_at
"""


def raw_batches(votes: list[Vote], ids: list, batch: int) -> list[tuple[list, ...]]:
    """The stream cut into batches of `batch` entries, each reduced to every voter's newest
    vote per poll (later in the stream wins, as in the worker) and sorted by (poll, voter), as
    column arrays."""
    batches = []
    for start in range(0, len(votes), batch):
        newest: dict[tuple[str, str], tuple] = {}
        chunk = zip(votes[start : start + batch], ids[start : start + batch], strict=True)
        for v, entry_id in chunk:
            ms, seq = split_id(entry_id)
            newest[(v.poll, v.voter)] = (v.poll, v.voter, v.option, ms, seq, v.vote_id, v.ts_ms)
        rows = [newest[ballot] for ballot in sorted(newest)]
        batches.append(tuple(list(column) for column in zip(*rows, strict=True)))
    return batches


def _upsert_rows(conn, statements: list[bytes], errors: list[BaseException]) -> None:
    try:
        cursor = conn.cursor()
        for statement in statements:
            cursor.execute(statement)
            conn.commit()
    except BaseException as exc:  # reported by the caller, whatever it is
        errors.append(exc)


def raw_upsert(
    engine: Engine,
    votes: list[Vote],
    ids: list,
    batch: int,
    writers: int,
    meter: CpuMeter | None = None,
) -> tuple[Timing, dict[str, float]]:
    """Upsert the same rows into a copy of `votes` (same columns, same primary key), one
    statement and one COMMIT per batch of `batch` entries, `writers` connections at once.

    Connections are opened and statements rendered before the clock starts, so this times
    only the database: the cost of writing and committing these rows at all (synchronous
    replication included), and, with a `meter`, the CPU spent meanwhile.
    """
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {RAW_TABLE}"))
        conn.execute(text(f"CREATE TABLE {RAW_TABLE} (LIKE votes INCLUDING ALL)"))
    conns = [engine.raw_connection() for _ in range(writers)]
    errors: list[BaseException] = []
    try:
        cursor = conns[0].cursor()
        statements = [cursor.mogrify(RAW_UPSERT, b) for b in raw_batches(votes, ids, batch)]
        threads = [
            threading.Thread(target=_upsert_rows, args=(conn, statements[k::writers], errors))
            for k, conn in enumerate(conns)
        ]
        cpu_before = meter.snapshot() if meter else {}
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        cpu = meter.delta(cpu_before, meter.snapshot()) if meter else {}
    finally:
        for conn in conns:
            conn.close()
    with engine.begin() as conn:
        stored = conn.execute(text(f"SELECT count(*) FROM {RAW_TABLE}")).scalar_one()
        conn.execute(text(f"DROP TABLE {RAW_TABLE}"))
    if errors:
        raise click.ClickException(f"raw upsert failed: {errors[0]}")
    if stored != len({(v.poll, v.voter) for v in votes}):
        raise click.ClickException(f"raw upsert stored {stored} rows, expected one per voter")
    return Timing(len(votes), elapsed), cpu


def forget_bench(engine: Engine, client: Redis) -> None:
    """Remove every trace of a (previous) run: stream, dead letters, polls with their votes.

    Then VACUUM: the raw upsert writes into a fresh table, so the worker should not pay for
    the dead rows of earlier rounds either.
    """
    client.delete(BENCH_STREAM, BENCH_DEAD_LETTER)
    forget_bench_polls(engine, BENCH_NAME)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM (ANALYZE) votes, tallies"))


def check_result(engine: Engine, votes: list[Vote]) -> None:
    """Every benchmark voter stored once per poll with their last vote, and every tally exact."""
    newest = {(v.poll, v.voter): v.vote_id for v in votes}
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT poll_id, voter_id, vote_id FROM votes WHERE voter_id LIKE :p"),
            {"p": VOTER_PREFIX + "%"},
        ).all()
        stored = {(poll, voter): vote_id for poll, voter, vote_id in rows}
        wrong_tallies = conn.execute(TALLY_MISMATCHES).all()
    if stored != newest:
        wrong = sum(1 for voter, vote_id in newest.items() if stored.get(voter) != vote_id)
        raise click.ClickException(f"{wrong} of {len(newest)} voters do not hold their last vote")
    if wrong_tallies:
        raise click.ClickException(f"tallies differ from the rows: {wrong_tallies}")


@contextlib.contextmanager
def throwaway_config() -> Iterator[Config]:
    """Start the fast test tier's servers (Redis + replica + Sentinel, Postgres) for this run."""
    from core.migrate import upgrade
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


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@stack_options
@click.option("--votes", default=200_000, show_default=True, help="Entries to put in the stream.")
@click.option("--voters", default=100_000, show_default=True, help="Distinct voters among them.")
@click.option(
    "--workers",
    default=2,
    show_default=True,
    help="Worker processes (or threads); the raw upsert uses as many connections.",
)
@click.option("--batch", type=int, help="Entries per batch [default: WORKER_BATCH].")
@click.option("--rounds", default=1, show_default=True, help="Repeat fill, drain and raw upsert.")
@click.option("--in-process", is_flag=True, help="Run the workers as threads of this process.")
@click.option(
    "--throwaway-servers",
    is_flag=True,
    help="Start single throwaway servers instead (fast tier; fsync off, no replication).",
)
@click.option(
    "--cpu",
    is_flag=True,
    help="Also print the CPU time each part of the stack spent per 1,000 votes "
    "(needs --state-dir: the local stack's processes).",
)
@click.option("--polls", default=10, show_default=True, help="Polls the votes are spread over.")
@click.option("--keep", is_flag=True, help="Keep the benchmark's polls and votes.")
@click.option("--seed", default=1, show_default=True, help="Seed for the options voted for.")
def main(
    state_dir: str | None,
    base_port: int | None,
    votes: int,
    voters: int,
    workers: int,
    batch: int | None,
    rounds: int,
    in_process: bool,
    throwaway_servers: bool,
    cpu: bool,
    polls: int,
    keep: bool,
    seed: int,
) -> None:
    """Measure how fast the worker drains a pre-filled vote stream into Postgres, beside a
    raw batched upsert of the same rows into a table shaped like `votes` (the ceiling).

    Reads the stack's settings from the environment (eval "$(votectl env)") or, with
    --state-dir/--base-port, from `votectl env`. Bounded: the drain gives up when the workers
    make no progress for 60 s.
    """
    if votes < 1 or not 1 <= voters <= votes or workers < 1 or rounds < 1 or polls < 1:
        raise click.UsageError("need votes >= voters >= 1, workers, rounds and polls >= 1")
    layout = None
    with contextlib.ExitStack() as stack:
        if throwaway_servers:
            config = stack.enter_context(throwaway_config())
            click.echo("throwaway servers: fsync off, no replication; both figures are optimistic")
        else:
            config, layout = load_config(state_dir, base_port)
        if cpu and (throwaway_servers or layout is None):
            raise click.UsageError("--cpu needs --state-dir (a local stack)")
        meter = CpuMeter(layout) if cpu else None
        if batch:
            config = dataclasses.replace(config, worker_batch=batch)
        shape = Shape(votes, voters, polls, workers, in_process)
        results = [run(config, shape, keep, seed + r, r % 2 == 1, meter) for r in range(rounds)]
    if rounds > 1:
        summarize(results)


@dataclasses.dataclass(frozen=True)
class Shape:
    """What one round drains, and with what."""

    votes: int
    voters: int
    polls: int
    workers: int
    in_process: bool


def run(
    config: Config,
    shape: Shape,
    keep: bool,
    seed: int,
    raw_first: bool,
    meter: CpuMeter | None = None,
) -> tuple[float, float]:
    """One round: fill, drain, check, raw upsert; print and return (drain, raw) rates."""
    client = master_client(config, make_sentinel(config), socket_timeout=10)
    n, workers, in_process = shape.votes, shape.workers, shape.in_process
    engine = make_engine(config.database_url, pool_size=workers)
    kind = "threads" if in_process else "processes"
    click.echo(
        f"drain benchmark: {n:,} votes from {shape.voters:,} voters in {shape.polls} polls, "
        f"batch {config.worker_batch}, {workers} worker {kind}"
    )
    click.echo(f"  postgres: {engine.url.render_as_string(hide_password=True)}")
    forget_bench(engine, client)
    try:
        polls = make_bench_polls(engine, BENCH_NAME, shape.polls, OPTIONS)
        votes = make_votes(n, shape.voters, polls, seed)
        client.xgroup_create(BENCH_STREAM, GROUP, id="0", mkstream=True)
        filled, ids = fill_stream(client, votes)
        line("stream fill (pipelined XADD)", filled, "entries/s")
        cpu: dict[str, dict[str, float]] = {}
        if raw_first:  # rounds alternate the order, so that load drifts hit both alike
            raw, cpu["raw"] = raw_upsert(engine, votes, ids, config.worker_batch, workers, meter)
        engine.dispose()  # worker processes are forked: they must not inherit pooled sockets
        before = meter.snapshot() if meter else {}
        drained_in = drain(config, client, n, workers, in_process)
        cpu["drain"] = meter.delta(before, meter.snapshot()) if meter else {}
        check_result(engine, votes)
        if not raw_first:
            raw, cpu["raw"] = raw_upsert(engine, votes, ids, config.worker_batch, workers, meter)
        line("worker drain into votes+tallies", drained_in, "votes/s")
        line(f"raw upsert, {config.worker_batch}/commit (ceiling)", raw, "votes/s")
        click.echo(f"  {'worker / raw upsert':36} {drained_in.rate / raw.rate:10.2f}")
        classic = f"~{CLASSIC_VOTES_PER_S}"
        click.echo(
            f"  {'classic example-voting-app worker':36} {classic:>10} votes/s"
            "  (reference figure, not measured here)"
        )
        click.echo(f"  {'worker / classic':36} {drained_in.rate / CLASSIC_VOTES_PER_S:10.0f}x")
        if meter:
            print_cpu(cpu, n)
    finally:
        if not keep:
            forget_bench(engine, client)
        engine.dispose()
        client.close()
    return drained_in.rate, raw.rate


def print_cpu(cpu: dict[str, dict[str, float]], votes: int) -> None:
    """CPU ms per 1,000 votes by component, for the drain and the raw upsert."""
    click.echo(f"  CPU ms per 1,000 votes {'drain':>19} {'raw upsert':>12}")
    kinds = sorted(set(cpu["drain"]) | set(cpu["raw"]), key=lambda k: -cpu["drain"].get(k, 0))
    for kind in [*kinds, "total"]:
        if kind == "total":
            drain_s, raw_s = sum(cpu["drain"].values()), sum(cpu["raw"].values())
        else:
            drain_s, raw_s = cpu["drain"].get(kind, 0.0), cpu["raw"].get(kind, 0.0)
        if max(drain_s, raw_s) / votes * 1e6 >= 1:
            click.echo(f"    {kind:38} {drain_s / votes * 1e6:7.0f} {raw_s / votes * 1e6:12.0f}")


def summarize(results: list[tuple[float, float]]) -> None:
    """Ranges over the rounds: the machine is shared, so one figure alone means little."""
    drains, raws = [d for d, _ in results], [r for _, r in results]
    ratios = [d / r for d, r in results]
    click.echo(f"over {len(results)} rounds:")
    click.echo(f"  {'worker drain':36} {min(drains):10,.0f} .. {max(drains):,.0f} votes/s")
    click.echo(f"  {'raw upsert':36} {min(raws):10,.0f} .. {max(raws):,.0f} votes/s")
    click.echo(f"  {'worker / raw upsert':36} {min(ratios):10.2f} .. {max(ratios):.2f}")


def line(label: str, timing: Timing, unit: str) -> None:
    click.echo(
        f"  {label:36} {timing.rate:10,.0f} {unit}  ({timing.count:,} in {timing.seconds:.2f} s)"
    )


if __name__ == "__main__":
    main()
