"""Vote POST throughput through HAProxy (sessions, CSRF, XADD + WAIT 1) beside the classic vote app.

One run measures, with the same wrk settings:
- ours, the first poll: POST /vote (its page's form at its old URL; or /api/votes with
  --endpoint api) through HAProxy, each request from one of N voters made beforehand (its own
  session cookie and CSRF token from GET /p/first), alternating between the first two options
  so every vote replaces the last;
- ours, a poll page: the same against a poll made for the run, POST /p/<id>/vote (or
  /api/polls/<id>/votes), the path a poll people make takes (the same script checks it);
- the classic example-voting-app vote service (benchmarks/baseline_vote_app: a Redis client
  per request, RPUSH, no session, no CSRF, no WAIT) twice, each on a free local port writing to
  a separate list on the stack's Redis master:
  - "classic (upstream)": as its upstream image runs it: gunicorn, 4 sync workers,
    keep-alive 0, access log to stdout (here a file);
  - "classic (4w x 4t)": the same-resources baseline, gunicorn gthread 4 workers x 4 threads,
    keep-alive on, no access log.

    .venv/bin/python benchmarks/vote_post.py                      # default local stack (17000)
    .venv/bin/python benchmarks/vote_post.py --state-dir /tmp/s --base-port 25000 --duration 10

Afterwards the benchmark's voters are taken out of the results again (once the workers have
drained the stream), its poll, sessions and list are deleted; --keep-votes leaves them.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import click
import msgspec
import psutil
import requests
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis
from sqlalchemy import create_engine, text
from stackenv import CpuMeter, forget_bench_polls, make_bench_polls, web_verify

from app.sessions import COOKIE_NAME, KEY_PREFIX
from core.config import Config
from core.polls.published import choices_key
from core.redis_client import master_client
from core.stream import drained
from ops.deployment import local_stack_settings
from ops.local.deployment import app_env
from ops.local.layout import APP_INSTANCES, HOST, Layout
from ops.voter import Voter, VoterError
from ops.voter import poll_options as first_poll_options
from ops.wait import WaitTimeout, wait_for

BIN = Path(sys.executable).parent
BASELINE_DIR = Path(__file__).resolve().parent / "baseline_vote_app"
BASELINE_KEY = "bench:baseline:votes"
BENCH_NAME = "vote_post"
# What each target is called in the report and the JSON, in the order they run.
FIRST, POLL, UPSTREAM, SAME = "first poll", "poll page", "classic (upstream)", "classic (4w x 4t)"
CLASSIC = (UPSTREAM, SAME)
# How gunicorn runs the classic app for each of its targets.
GUNICORN_ARGS = {
    # example-voting-app's vote/Dockerfile: gunicorn app:app -b 0.0.0.0:80 --log-file -
    # --access-logfile - --workers 4 --keep-alive 0
    UPSTREAM: ["--workers", "4", "--keep-alive", "0", "--access-logfile", "-", "--log-file", "-"],
    # The resources the stack's vote tier had under gunicorn (2 instances x 2 workers x 4
    # threads), with keep-alive and no access log.
    SAME: ["--workers", "4", "-k", "gthread", "--threads", "4", "--error-logfile", "-"],
}

# Requests are formatted once per wrk thread; each thread starts at its own place in the list.
LUA = """
entries = __ENTRIES__
position = 0
statuses = {}
local threads = {}

function setup(thread)
  thread:set("position", #threads * __STRIDE__)
  table.insert(threads, thread)
end

function init(args)
  prepared = {}
  for i, e in ipairs(entries) do
    prepared[i] = wrk.format("POST", e[1], e[3], e[2])
  end
end

function request()
  position = position + 1
  return prepared[(position % #prepared) + 1]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    for code, n in pairs(thread:get("statuses")) do
      merged[tostring(code)] = (merged[tostring(code)] or 0) + n
    end
  end
  local parts = {}
  for code, n in pairs(merged) do
    parts[#parts + 1] = string.format('"%s": %d', code, n)
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "non_2xx_3xx": %d, "socket_errors": %d, ' ..
    '"timeouts": %d, "p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, ' ..
    '"statuses": {%s}}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, table.concat(parts, ", ")))
end
"""


@dataclass(frozen=True)
class Entry:
    """One prepared POST: path, body and headers."""

    path: str
    body: str
    headers: dict[str, str]


@dataclass
class Figures:
    """What wrk measured for one target."""

    requests: int
    duration_us: int
    non_2xx_3xx: int
    socket_errors: int
    timeouts: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[str, int]
    # Changes over the measured run of what the probes read (CPU seconds, accepted votes).
    deltas: dict[str, float] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / (self.duration_us / 1e6)

    @property
    def errors(self) -> int:
        return self.non_2xx_3xx + self.socket_errors + self.timeouts

    @property
    def web_cpu_ms(self) -> float:
        """CPU milliseconds the web tier's server processes spent per request."""
        return self.deltas.get("web_cpu_s", float("nan")) * 1000 / max(self.requests, 1)


@dataclass
class Stack:
    """The stack under test: its web URL, vote instances and the apps' environment."""

    web: str
    # Where each vote instance serves its metrics (a port of its own).
    vote_metrics: list[str]
    config: Config
    redis_master: tuple[str, int]
    # What HTTPS requests to `web` trust.
    verify: bool | str


def votectl(layout: Layout, *args: str) -> str:
    cmd = [str(BIN / "votectl"), "--state-dir", str(layout.state_dir)]
    cmd += ["--base-port", str(layout.base_port), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise click.ClickException(f"votectl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def read_stack(layout: Layout, url: str | None) -> Stack:
    """The stack's environment (as `votectl env` prints it) and its Redis master."""
    config = Config.from_env(app_env(layout))
    master = json.loads(votectl(layout, "status", "--json"))["redis"]["master"]
    if not master:
        raise click.ClickException("the stack has no Redis master: is it up? (votectl status)")
    host, port = master.rsplit(":", 1)
    vote_metrics = [
        f"http://{HOST}:{layout.app_metrics_port(program)}"
        for program, name, _ in layout.app_instances
        if name == "vote"
    ]
    web = (url or layout.urls()["web"]).rstrip("/")
    return Stack(web, vote_metrics, config, (host, int(port)), web_verify(layout))


def make_voter(web: str, verify: bool | str) -> tuple[str, str]:
    """A new anonymous voter: (session cookie, CSRF token), from the first poll's page like a
    browser (the same session votes in every poll)."""
    voter = Voter(web, verify=verify)
    try:
        voter.open_page("/p/first")
    except (requests.RequestException, VoterError) as exc:
        raise click.ClickException(f"GET {web}/p/first: {exc}") from None
    if not voter.session_id or not voter.token:
        raise click.ClickException(f"GET {web}/p/first gave no session cookie or CSRF token")
    return voter.session_id, voter.token


def vote_path(endpoint: str, poll: str | None) -> str:
    """Where a vote goes: the first poll's old URLs, or a poll's own."""
    if endpoint == "api":
        return f"/api/polls/{poll}/votes" if poll else "/api/votes"
    return f"/p/{poll}/vote" if poll else "/vote"


def our_entries(
    web: str,
    voters: list[tuple[str, str]],
    options: list[str],
    endpoint: str,
    poll: str | None = None,
) -> list[Entry]:
    """Every voter votes for the first option, then every voter for the second, and so on.

    Like a browser, each request names the page it comes from: over HTTPS the apps' CSRF
    check wants a Referer from their own site."""
    entries = []
    path = vote_path(endpoint, poll)
    for option in options:
        for cookie, token in voters:
            headers = {"Cookie": f"{COOKIE_NAME}={cookie}", "Referer": f"{web}/"}
            if endpoint == "api":
                headers |= {"Content-Type": "application/json", "X-CSRFToken": token}
                entries.append(Entry(path, f'{{"option":"{option}"}}', headers))
            else:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
                body = urlencode({"option": option, "csrf_token": token})
                entries.append(Entry(path, body, headers))
    return entries


def baseline_entries(voters: int) -> list[Entry]:
    """The classic app's form: vote=a or vote=b, with the voter_id cookie it hands out."""
    ids = [os.urandom(8).hex() for _ in range(voters)]
    form = "application/x-www-form-urlencoded"
    return [
        Entry("/", f"vote={vote}", {"Cookie": f"voter_id={voter}", "Content-Type": form})
        for vote in ("a", "b")
        for voter in ids
    ]


def lua_string(value: str) -> str:
    """A double-quoted Lua string literal (printable ASCII: all that cookies and forms need)."""
    if not (value.isascii() and value.isprintable()):
        raise ValueError(f"not printable ASCII: {value!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def lua_script(entries: list[Entry], threads: int) -> str:
    rows = []
    for e in entries:
        headers = ", ".join(f"[{lua_string(k)}] = {lua_string(v)}" for k, v in e.headers.items())
        rows.append(f"  {{{lua_string(e.path)}, {lua_string(e.body)}, {{{headers}}}}},")
    table = "{\n" + "\n".join(rows) + "\n}"
    stride = max(1, len(entries) // threads)
    return LUA.replace("__ENTRIES__", table).replace("__STRIDE__", str(stride))


def run_wrk(url: str, script: Path, duration: float, connections: int, threads: int) -> Figures:
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--latency"]
    cmd += ["--timeout", "10s", "-s", str(script), url]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("WRK_RESULT ")), None)
    if result.returncode != 0 or line is None:
        raise click.ClickException(f"wrk failed ({result.returncode}): {result.stderr.strip()}")
    return Figures(**json.loads(line.removeprefix("WRK_RESULT ")))


# What a probe reads: one number, or several by name.
Probe = Callable[[], float | Mapping[str, float]]


def read_probes(probes: Mapping[str, Probe]) -> dict[str, float]:
    """Every probe's reading now, several-valued ones as "name:key" entries."""
    values: dict[str, float] = {}
    for name, probe in probes.items():
        reading = probe()
        if isinstance(reading, Mapping):
            values.update({f"{name}:{key}": value for key, value in reading.items()})
        else:
            values[name] = reading
    return values


def measure(
    url: str,
    entries: list[Entry],
    settings: Mapping,
    probes: Mapping[str, Probe],
) -> Figures:
    """A warm-up run (discarded), then the measured one with the same script.

    Each probe is read just before and after the measured run; `Figures.deltas` has the change
    (a probe that reads several values, such as CPU by component, gives "name:key" entries).
    """
    duration, warmup = settings["duration"], settings["warmup"]
    connections, threads = settings["connections"], settings["threads"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="vote-post-") as script:
        script.write(lua_script(entries, threads))
        script.flush()
        if warmup > 0:
            run_wrk(url, Path(script.name), warmup, connections, threads)
        before = read_probes(probes)
        figures = run_wrk(url, Path(script.name), duration, connections, threads)
        after = read_probes(probes)
        figures.deltas = {name: value - before.get(name, 0.0) for name, value in after.items()}
        return figures


SERVERS = ("gunicorn", "app.serve")


def server_processes(port: int) -> list[psutil.Process]:
    """The web server listening on `port` (gunicorn or granian's app.serve): its main process
    and its workers (empty if none is found)."""
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            proc = psutil.Process(conn.pid)
            parent = proc.parent()
            while parent is not None and any(s in " ".join(parent.cmdline()) for s in SERVERS):
                proc, parent = parent, parent.parent()
            return [proc, *proc.children(recursive=True)]
    return []


def cpu_seconds(ports: list[int]) -> Callable[[], float]:
    """A probe: user + system CPU seconds of the web servers on `ports` so far."""
    procs = [proc for port in ports for proc in server_processes(port)]

    def read() -> float:
        total = 0.0
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    return read


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def baseline_server(stack: Stack, port: int, args: list[str], log: Path) -> Iterator[str]:
    """The classic vote app under gunicorn `args` on `port`, pointed at the stack's Redis
    master."""
    env = {
        **os.environ,
        "REDIS_HOST": stack.redis_master[0],
        "REDIS_PORT": str(stack.redis_master[1]),
        "REDIS_USERNAME": stack.config.redis_username or "",
        "REDIS_PASSWORD": stack.config.redis_password or "",
        "VOTES_KEY": BASELINE_KEY,
    }
    cmd = [str(BIN / "gunicorn"), "--chdir", str(BASELINE_DIR), "app:app"]
    cmd += ["-b", f"{HOST}:{port}", "--worker-tmp-dir", "/dev/shm", *args]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/", timeout=1).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise click.ClickException(f"the baseline app did not start; see {log}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def accepted_votes(instances: list[str]) -> float:
    """vote_submissions_total{outcome="accepted"} summed over the vote instances."""
    total = 0.0
    for base in instances:
        metrics = requests.get(f"{base}/metrics", timeout=10).text
        for family in text_string_to_metric_families(metrics):
            for sample in family.samples:
                if sample.name == "vote_submissions_total" and sample.labels["outcome"] == (
                    "accepted"
                ):
                    total += sample.value
    return total


FORGET_VOTERS = text("""
WITH gone AS (DELETE FROM votes WHERE voter_id = ANY(:voters) RETURNING poll_id, option),
     per_option AS (SELECT poll_id, option, count(*) AS n FROM gone GROUP BY poll_id, option)
UPDATE tallies SET count = tallies.count - per_option.n
FROM per_option
WHERE (tallies.poll_id, tallies.option) = (per_option.poll_id, per_option.option)
""")


def forget(stack: Stack, client: Redis, cookies: list[str]) -> str:
    """Take the benchmark's voters out of votes/tallies, delete its poll (with its votes),
    their sessions, their choices and the list."""
    keys = [KEY_PREFIX + cookie for cookie in cookies]
    voters = []
    for raw in client.mget(keys):
        session = msgspec.msgpack.decode(raw) if raw else {}
        if isinstance(session.get("anon_voter"), str):
            voters.append(session["anon_voter"])
    client.delete(BASELINE_KEY, *keys, *map(choices_key, voters))
    try:
        wait_for(lambda: drained(client), "the workers to drain the stream", 120, 0.5)
    except WaitTimeout:
        return "the stream was not drained within 120 s: the benchmark's votes were kept"
    engine = create_engine(stack.config.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(FORGET_VOTERS, {"voters": voters})
        forget_bench_polls(engine, BENCH_NAME, client)
    finally:
        engine.dispose()
    return f"removed the benchmark's {len(voters)} voters and its poll from the results"


def log(message: str) -> None:
    click.echo(message, err=True)


COLUMNS = ("req/s", "p50 ms", "p99 ms", "errors", "CPU ms/req")


def summary(figures: list[Figures]) -> list[float]:
    """The report's columns: medians over rounds (errors: the sum)."""

    def med(values: list[float]) -> float:
        return statistics.median(values)

    return [
        med([f.rps for f in figures]),
        med([f.p50_ms for f in figures]),
        med([f.p99_ms for f in figures]),
        sum(f.errors for f in figures),
        med([f.web_cpu_ms for f in figures]),
    ]


Round = dict[str, Figures]


def report(rounds: list[Round], settings: Mapping) -> None:
    click.echo(
        f"\nVote POST, {settings['duration']:g} s per target and round after "
        f"{settings['warmup']:g} s warm-up, wrk -t{settings['threads']} "
        f"-c{settings['connections']}, {settings['voters']} voters; {settings['cpus']} CPUs, "
        f"load average {settings['load_average_1m']:.1f} at the start"
    )
    names = {
        FIRST: f"ours: {settings['paths'][FIRST]} via HAProxy (session, CSRF, WAIT)",
        POLL: f"ours: {settings['paths'][POLL]} (a poll page's)",
        UPSTREAM: "classic app, upstream: gunicorn sync x4, keep-alive 0",
        SAME: "classic app, same resources: gunicorn 4w x 4t",
    }
    click.echo(f"  {'':52}" + "".join(f"{c:>11}" for c in COLUMNS))
    groups = [(f"round {n}", [r]) for n, r in enumerate(rounds, 1)]
    if len(rounds) > 1:
        groups.append((f"median of {len(rounds)} rounds", rounds))
    for title, chosen in groups:
        if len(rounds) > 1:
            click.echo(f"  {title}")
        rows = {target: summary([r[target] for r in chosen]) for target in names}
        for target, row in rows.items():
            click.echo(
                f"  {names[target]:52}"
                + "".join(f"{v:11.{d}f}" for v, d in zip(row, (0, 1, 1, 0, 2), strict=True))
            )
        for mine, other in ((FIRST, UPSTREAM), (FIRST, SAME), (POLL, UPSTREAM), (POLL, FIRST)):
            ratios = [
                a / b if b else float("nan") for a, b in zip(rows[mine], rows[other], strict=True)
            ]
            click.echo(
                f"  {f'{mine} / {other}':52}"
                + "".join(" " * 11 if n == 3 else f"{r:11.2f}" for n, r in enumerate(ratios))
            )
    statuses = [{t: f.statuses for t, f in r.items()} for r in rounds]
    click.echo(f"  HTTP statuses: {statuses}")
    click.echo("  CPU ms per vote by component (ours; median over rounds):")
    components = sorted({k for r in rounds for k in r[FIRST].deltas if k.startswith("cpu_s:")})
    totals = {FIRST: 0.0, POLL: 0.0}
    for key in components:
        row = []
        for target in (FIRST, POLL):
            ms = statistics.median(
                r[target].deltas.get(key, 0.0) * 1000 / max(r[target].requests, 1) for r in rounds
            )
            totals[target] += ms
            row.append(ms)
        click.echo(f"    {key.removeprefix('cpu_s:'):48}" + "".join(f"{v:11.2f}" for v in row))
    if components:
        click.echo(f"    {'whole stack':48}" + "".join(f"{totals[t]:11.2f}" for t in totals))
    accepted = [
        {t: r[t].deltas["accepted"] for t in (FIRST, POLL) if "accepted" in r[t].deltas}
        for r in rounds
    ]
    if any(accepted):
        click.echo(f"  votes our vote apps counted as accepted: {accepted}")
    click.echo(
        "  CPU ms/req: user+system CPU of the web tier's server processes per request (ours: "
        "both vote instances, not HAProxy, Redis or the workers)"
    )


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", help="The web front to load [default: the stack's HAProxy web URL].")
@click.option("--state-dir", type=click.Path(file_okay=False), help="The stack's state dir.")
@click.option("--base-port", type=int, help="The stack's base port.")
@click.option("--duration", default=20.0, show_default=True, help="Seconds measured per target.")
@click.option("--warmup", default=3.0, show_default=True, help="Seconds of discarded warm-up.")
@click.option("--connections", default=32, show_default=True, help="wrk connections.")
@click.option("--threads", default=2, show_default=True, help="wrk threads.")
@click.option(
    "--rounds",
    default=1,
    show_default=True,
    help="Measure ours then the baseline this many times (medians are reported too).",
)
@click.option("--voters", default=500, show_default=True, help="Voters (sessions) to rotate.")
@click.option(
    "--endpoint",
    type=click.Choice(["form", "api"]),
    default="form",
    show_default=True,
    help="POST /vote (form, answers 303) or /api/votes (JSON, answers 202).",
)
@click.option("--keep-votes", is_flag=True, help="Leave the benchmark's votes and sessions.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def main(
    url: str | None,
    state_dir: str | None,
    base_port: int | None,
    duration: float,
    warmup: float,
    connections: int,
    threads: int,
    rounds: int,
    voters: int,
    endpoint: str,
    keep_votes: bool,
    as_json: bool,
) -> None:
    """Vote POST req/s, p50 and p99: ours through HAProxy beside the classic vote app."""
    default_dir, default_port = local_stack_settings()
    layout = Layout(
        Path(state_dir).resolve() if state_dir else default_dir,
        base_port if base_port is not None else default_port,
    )
    stack = read_stack(layout, url)
    client = master_client(stack.config)
    options = first_poll_options(stack.web, stack.verify)[:2]
    engine = create_engine(stack.config.database_url)
    try:
        forget_bench_polls(engine, BENCH_NAME, client)  # a run that was interrupted
        [poll] = make_bench_polls(engine, BENCH_NAME, 1, ["Yes", "No"], client)
    finally:
        engine.dispose()
    settings = {
        "duration": duration,
        "warmup": warmup,
        "connections": connections,
        "threads": threads,
        "voters": voters,
        "paths": {FIRST: vote_path(endpoint, None), POLL: vote_path(endpoint, poll.id)},
        "classic_gunicorn_args": GUNICORN_ARGS,
        # Other work on the machine shares its CPUs with both targets: worth knowing.
        "cpus": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0],
    }
    ours_probes: dict[str, Probe] = {}
    if not url:
        ports = [layout.app_port("vote", i) for i in range(1, APP_INSTANCES + 1)]
        ours_probes["web_cpu_s"] = cpu_seconds(ports)
        ours_probes["accepted"] = lambda: accepted_votes(stack.vote_metrics)
        meter = CpuMeter(layout)
        # One snapshot of every process per reading, by component (not this script's own).
        ours_probes["cpu_s"] = lambda: {
            k: v for k, v in meter.snapshot().items() if not k.startswith("benchmark")
        }
    made: list[tuple[str, str]] = []
    try:
        with ThreadPoolExecutor(8) as pool:
            made += pool.map(lambda _: make_voter(stack.web, stack.verify), range(voters))
        log(f"made {len(made)} voters")
        entries = {
            FIRST: our_entries(stack.web, made, options, endpoint),
            POLL: our_entries(stack.web, made, [o.key for o in poll.options], endpoint, poll.id),
        }
        measured = run_rounds(stack, entries, settings, rounds, ours_probes)
    finally:
        if not keep_votes:
            log(forget(stack, client, [cookie for cookie, _ in made]))
    if as_json:
        click.echo(json.dumps(as_payload(measured, settings), indent=2))
    else:
        report(measured, settings)


def run_rounds(
    stack: Stack,
    entries: Mapping[str, list[Entry]],
    settings: Mapping,
    rounds: int,
    ours_probes: Mapping[str, Probe],
) -> list[Round]:
    """Ours in the first poll, ours in a poll page, then the classic app with its upstream
    settings and with the same resources (each one gunicorn kept up for all rounds), `rounds`
    times."""
    measured = []
    with tempfile.TemporaryDirectory(prefix="vote-post-") as tmp, contextlib.ExitStack() as up:
        classic = {}
        for n, target in enumerate(CLASSIC):
            port = free_port()
            log_file = Path(tmp) / f"gunicorn-{n}.log"
            url = up.enter_context(baseline_server(stack, port, GUNICORN_ARGS[target], log_file))
            classic[target] = (url, {"web_cpu_s": cpu_seconds([port])})
        for number in range(1, rounds + 1):
            figures: Round = {}
            for target in (FIRST, POLL):
                log(f"round {number}/{rounds}: ours, {settings['paths'][target]} ...")
                figures[target] = measure(stack.web, entries[target], settings, ours_probes)
            for target, (url, probes) in classic.items():
                log(f"round {number}/{rounds}: {target} ({url}) ...")
                baseline = baseline_entries(settings["voters"])
                figures[target] = measure(url, baseline, settings, probes)
            measured.append(figures)
    return measured


def as_payload(measured: list[Round], settings: Mapping) -> dict:
    """The --json output: the settings, every round's figures and the median req/s."""
    return {
        "settings": dict(settings),
        "rounds": [
            {
                target: {**asdict(f), "rps": f.rps, "web_cpu_ms_per_request": f.web_cpu_ms}
                for target, f in r.items()
            }
            for r in measured
        ],
        "median_rps": {
            target: statistics.median([r[target].rps for r in measured])
            for target in (FIRST, POLL, *CLASSIC)
        },
    }


if __name__ == "__main__":
    sys.exit(main())
