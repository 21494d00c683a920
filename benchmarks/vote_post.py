"""Vote POST throughput through HAProxy (sessions, CSRF, XADD + WAIT 1) beside the classic vote app.

One run measures, with the same wrk settings:
- ours: POST /vote (the page's form; or /api/votes with --endpoint api) through HAProxy, each
  request from one of N voters made beforehand (its own session cookie and CSRF token from
  GET /), alternating between the first two options so every vote replaces the last;
- the baseline: the classic example-voting-app vote service (benchmarks/baseline_vote_app:
  a Redis client per request, RPUSH, no session, no CSRF, no WAIT) under gunicorn with as many
  workers and threads as the stack's vote instances have together, on a free local port,
  writing to a separate list on the stack's Redis master.

    .venv/bin/python benchmarks/vote_post.py                      # default local stack (17000)
    .venv/bin/python benchmarks/vote_post.py --state-dir /tmp/s --base-port 25000 --duration 10

Afterwards the benchmark's voters are taken out of the results again (once the workers have
drained the stream) and its sessions and list are deleted; --keep-votes leaves them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
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

from app.sessions import COOKIE_NAME, KEY_PREFIX
from core.config import Config
from core.redis_client import master_client
from core.stream import drained
from ops.deployment import local_stack_settings
from ops.local.deployment import app_env
from ops.local.layout import APP_INSTANCES, HOST, Layout
from ops.voter import Voter, VoterError
from ops.wait import WaitTimeout, wait_for

BIN = Path(sys.executable).parent
BASELINE_DIR = Path(__file__).resolve().parent / "baseline_vote_app"
BASELINE_KEY = "bench:baseline:votes"
# The stack runs each vote instance with GUNICORN_WORKERS=2 (ops/local/programs.py) and gthread with
# 4 threads (app/gunicorn_conf.py); the baseline gets all of them in one gunicorn.
OUR_WORKERS_PER_INSTANCE = 2
OUR_THREADS = 4
OPTION = re.compile(r'<button type="submit" name="option" value="([a-z0-9_-]+)"')

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
        """CPU milliseconds the web tier's gunicorn processes spent per request."""
        return self.deltas.get("web_cpu_s", float("nan")) * 1000 / max(self.requests, 1)


@dataclass
class Stack:
    """The stack under test: its web URL, vote instances and the apps' environment."""

    web: str
    vote_instances: list[str]
    env: dict[str, str]
    redis_master: tuple[str, int]


def votectl(layout: Layout, *args: str) -> str:
    cmd = [str(BIN / "votectl"), "--state-dir", str(layout.state_dir)]
    cmd += ["--base-port", str(layout.base_port), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise click.ClickException(f"votectl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def read_stack(layout: Layout, url: str | None) -> Stack:
    """The stack's environment (as `votectl env` prints it) and its Redis master."""
    env = app_env(layout)
    master = json.loads(votectl(layout, "status", "--json"))["redis"]["master"]
    if not master:
        raise click.ClickException("the stack has no Redis master: is it up? (votectl status)")
    host, port = master.rsplit(":", 1)
    vote_instances = [
        f"http://{HOST}:{layout.app_port('vote', i)}" for i in range(1, APP_INSTANCES + 1)
    ]
    web = (url or layout.urls()["web"]).rstrip("/")
    return Stack(web, vote_instances, env, (host, int(port)))


def make_voter(web: str) -> tuple[str, str]:
    """A new anonymous voter: (session cookie, CSRF token), from GET / like a browser."""
    voter = Voter(web)
    try:
        voter.open_page("/")
    except (requests.RequestException, VoterError) as exc:
        raise click.ClickException(f"GET {web}/: {exc}") from None
    if not voter.session_id or not voter.token:
        raise click.ClickException(f"GET {web}/ gave no session cookie or CSRF token")
    return voter.session_id, voter.token


def poll_options(web: str) -> list[str]:
    options = OPTION.findall(requests.get(f"{web}/", timeout=10).text)
    if len(options) < 2:
        raise click.ClickException(f"expected at least two options on {web}/, got {options}")
    return options[:2]


def our_entries(voters: list[tuple[str, str]], options: list[str], endpoint: str) -> list[Entry]:
    """Every voter votes for the first option, then every voter for the second, and so on."""
    entries = []
    for option in options:
        for cookie, token in voters:
            headers = {"Cookie": f"{COOKIE_NAME}={cookie}"}
            if endpoint == "api":
                headers |= {"Content-Type": "application/json", "X-CSRFToken": token}
                entries.append(Entry("/api/votes", f'{{"option":"{option}"}}', headers))
            else:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
                body = urlencode({"option": option, "csrf_token": token})
                entries.append(Entry("/vote", body, headers))
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


def measure(
    url: str,
    entries: list[Entry],
    settings: Mapping,
    probes: Mapping[str, Callable[[], float]],
) -> Figures:
    """A warm-up run (discarded), then the measured one with the same script.

    Each probe is read just before and after the measured run; `Figures.deltas` has the change.
    """
    duration, warmup = settings["duration"], settings["warmup"]
    connections, threads = settings["connections"], settings["threads"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="vote-post-") as script:
        script.write(lua_script(entries, threads))
        script.flush()
        if warmup > 0:
            run_wrk(url, Path(script.name), warmup, connections, threads)
        before = {name: probe() for name, probe in probes.items()}
        figures = run_wrk(url, Path(script.name), duration, connections, threads)
        figures.deltas = {name: probe() - before[name] for name, probe in probes.items()}
        return figures


def gunicorn_processes(port: int) -> list[psutil.Process]:
    """The gunicorn master listening on `port` and its workers (empty if none is found)."""
    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            proc = psutil.Process(conn.pid)
            parent = proc.parent()
            if parent is not None and "gunicorn" in " ".join(parent.cmdline()):
                proc = parent
            return [proc, *proc.children(recursive=True)]
    return []


def cpu_seconds(ports: list[int]) -> Callable[[], float]:
    """A probe: user + system CPU seconds of the gunicorns on `ports` so far."""
    procs = [proc for port in ports for proc in gunicorn_processes(port)]

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
def baseline_server(stack: Stack, port: int, workers: int, log: Path) -> Iterator[str]:
    """The classic vote app under gunicorn on `port`, pointed at the stack's Redis master."""
    env = {
        **os.environ,
        "REDIS_HOST": stack.redis_master[0],
        "REDIS_PORT": str(stack.redis_master[1]),
        "REDIS_PASSWORD": stack.env["REDIS_PASSWORD"],
        "VOTES_KEY": BASELINE_KEY,
    }
    cmd = [str(BIN / "gunicorn"), "--chdir", str(BASELINE_DIR), "app:app"]
    cmd += [
        "-b",
        f"{HOST}:{port}",
        "-w",
        str(workers),
        "-k",
        "gthread",
        "--threads",
        str(OUR_THREADS),
    ]
    cmd += ["--worker-tmp-dir", "/dev/shm", "--access-logfile", "-", "--error-logfile", "-"]
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
WITH gone AS (DELETE FROM votes WHERE voter_id = ANY(:voters) RETURNING option),
     per_option AS (SELECT option, count(*) AS n FROM gone GROUP BY option)
UPDATE tallies SET count = tallies.count - per_option.n
FROM per_option WHERE tallies.option = per_option.option
""")


def forget(stack: Stack, client: Redis, cookies: list[str]) -> str:
    """Take the benchmark's voters out of votes/tallies; delete their sessions and the list."""
    keys = [KEY_PREFIX + cookie for cookie in cookies]
    voters = []
    for raw in client.mget(keys):
        session = msgspec.msgpack.decode(raw) if raw else {}
        if isinstance(session.get("anon_voter"), str):
            voters.append(session["anon_voter"])
    client.delete(BASELINE_KEY, *keys)
    try:
        wait_for(lambda: drained(client), "the workers to drain the stream", 120, 0.5)
    except WaitTimeout:
        return "the stream was not drained within 120 s: the benchmark's votes were kept"
    engine = create_engine(stack.env["DATABASE_URL"])
    try:
        with engine.begin() as conn:
            conn.execute(FORGET_VOTERS, {"voters": voters})
    finally:
        engine.dispose()
    return f"removed the benchmark's {len(voters)} voters from the results"


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


def report(rounds: list[tuple[Figures, Figures]], settings: Mapping) -> None:
    click.echo(
        f"\nVote POST, {settings['duration']:g} s per target and round after "
        f"{settings['warmup']:g} s warm-up, wrk -t{settings['threads']} "
        f"-c{settings['connections']}, {settings['voters']} voters; {settings['cpus']} CPUs, "
        f"load average {settings['load_average_1m']:.1f} at the start"
    )
    names = (
        f"ours: {settings['endpoint_path']} via HAProxy (session, CSRF, WAIT)",
        f"baseline: classic app ({settings['baseline_workers']}w x {OUR_THREADS}t, RPUSH)",
    )
    click.echo(f"  {'':52}" + "".join(f"{c:>11}" for c in COLUMNS))
    groups = [(f"round {n}", [o], [b]) for n, (o, b) in enumerate(rounds, 1)]
    if len(rounds) > 1:
        groups.append(
            (f"median of {len(rounds)} rounds", [o for o, _ in rounds], [b for _, b in rounds])
        )
    for title, ours, base in groups:
        if len(rounds) > 1:
            click.echo(f"  {title}")
        ours_row, base_row = summary(ours), summary(base)
        for name, row in zip(names, (ours_row, base_row), strict=True):
            click.echo(
                f"  {name:52}"
                + "".join(f"{v:11.{d}f}" for v, d in zip(row, (0, 1, 1, 0, 2), strict=True))
            )
        ratios = [a / b if b else float("nan") for a, b in zip(ours_row, base_row, strict=True)]
        ratios[3] = float("nan")
        click.echo(
            f"  {'ours / baseline':52}"
            + "".join(" " * 11 if n == 3 else f"{r:11.2f}" for n, r in enumerate(ratios))
        )
    click.echo(f"  HTTP statuses (ours, baseline): {[(o.statuses, b.statuses) for o, b in rounds]}")
    accepted = [o.deltas["accepted"] for o, _ in rounds if "accepted" in o.deltas]
    if accepted:
        click.echo(f"  votes our vote apps counted as accepted: {accepted}")
    click.echo(
        "  CPU ms/req: user+system CPU of the web tier's gunicorn processes per request (ours: "
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
    client = master_client(Config.from_env(stack.env))
    options = poll_options(stack.web)
    settings = {
        "duration": duration,
        "warmup": warmup,
        "connections": connections,
        "threads": threads,
        "voters": voters,
        "endpoint_path": "/api/votes" if endpoint == "api" else "/vote",
        "baseline_workers": APP_INSTANCES * OUR_WORKERS_PER_INSTANCE,
        # Other work on the machine shares its CPUs with both targets: worth knowing.
        "cpus": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0],
    }
    ours_probes: dict[str, Callable[[], float]] = {}
    if not url:
        ports = [layout.app_port("vote", i) for i in range(1, APP_INSTANCES + 1)]
        ours_probes["web_cpu_s"] = cpu_seconds(ports)
        ours_probes["accepted"] = lambda: accepted_votes(stack.vote_instances)
    made: list[tuple[str, str]] = []
    try:
        with ThreadPoolExecutor(8) as pool:
            made += pool.map(lambda _: make_voter(stack.web), range(voters))
        log(f"made {len(made)} voters")
        entries = our_entries(made, options, endpoint)
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
    entries: list[Entry],
    settings: Mapping,
    rounds: int,
    ours_probes: Mapping[str, Callable[[], float]],
) -> list[tuple[Figures, Figures]]:
    """Ours, then the baseline (one gunicorn kept up for all rounds), `rounds` times."""
    port = free_port()
    measured = []
    with (
        tempfile.TemporaryDirectory(prefix="vote-post-") as tmp,
        baseline_server(
            stack, port, settings["baseline_workers"], Path(tmp) / "gunicorn.log"
        ) as url,
    ):
        base_probes = {"web_cpu_s": cpu_seconds([port])}
        for number in range(1, rounds + 1):
            log(f"round {number}/{rounds}: ours ({stack.web}) ...")
            ours = measure(stack.web, entries, settings, ours_probes)
            log(f"round {number}/{rounds}: baseline ({url}) ...")
            base = measure(url, baseline_entries(settings["voters"]), settings, base_probes)
            measured.append((ours, base))
    return measured


def as_payload(measured: list[tuple[Figures, Figures]], settings: Mapping) -> dict:
    """The --json output: the settings, every round's figures and the median req/s."""
    return {
        "settings": dict(settings),
        "rounds": [
            {
                name: {**asdict(f), "rps": f.rps, "web_cpu_ms_per_request": f.web_cpu_ms}
                for name, f in (("ours", o), ("baseline", b))
            }
            for o, b in measured
        ],
        "median_rps": {
            "ours": statistics.median([o.rps for o, _ in measured]),
            "baseline": statistics.median([b.rps for _, b in measured]),
        },
    }


if __name__ == "__main__":
    sys.exit(main())
