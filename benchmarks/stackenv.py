"""The benchmarks' view of a stack: its environment (`votectl env`) and its web address."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import click
import psutil
from redis import Redis
from sqlalchemy import Engine, create_engine, text

REPO = Path(__file__).resolve().parents[1]
# The scripts run as `python benchmarks/x.py`: make `app`, `worker` and `ops` importable.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from core.config import Config, ConfigError  # noqa: E402
from core.db import Database  # noqa: E402
from core.polls import Poll, make_draft, store  # noqa: E402
from core.polls.published import publish, unpublish  # noqa: E402
from core.replicated import WaitPolicy  # noqa: E402
from ops import secrets  # noqa: E402
from ops.deployment import local_stack_settings  # noqa: E402
from ops.local.deployment import app_env  # noqa: E402
from ops.local.layout import Layout, LayoutError  # noqa: E402
from ops.local.processes import by_program  # noqa: E402


def stack_options(func: Callable) -> Callable:
    """--state-dir / --base-port: read a local stack's settings instead of the environment."""
    func = click.option(
        "--base-port",
        type=int,
        help="The local stack's base port (with --state-dir) [default: VOTECTL_BASE_PORT].",
    )(func)
    return click.option(
        "--state-dir",
        type=click.Path(file_okay=False, exists=True),
        help="Read the stack's settings with `votectl --state-dir DIR env` instead of "
        'taking them from the environment (eval "$(votectl env)").',
    )(func)


def load_config(state_dir: str | None, base_port: int | None) -> tuple[Config, Layout | None]:
    """The stack's Config (and Layout when --state-dir is given), or a one-line usage error."""
    layout = None
    env: Mapping[str, str] = os.environ
    try:
        if state_dir:
            port = base_port if base_port is not None else local_stack_settings()[1]
            layout = Layout(Path(state_dir).resolve(), port)
            env = {**os.environ, **app_env(layout)}
        return Config.from_env(env), layout
    except (ConfigError, LayoutError, ValueError) as exc:
        raise click.UsageError(
            f'{exc} (pass --state-dir/--base-port, or eval "$(votectl env)" first)'
        ) from None


def web_url(url: str | None, layout: Layout | None) -> str:
    """The web front's base URL: --url, else the local stack's HAProxy web port."""
    if url:
        return url.rstrip("/")
    layout = layout or Layout(*local_stack_settings())
    return layout.urls()["web"].rstrip("/")


def web_verify(layout: Layout | None) -> bool | str:
    """What HTTPS clients trust for the web front: the local stack's own (self-signed)
    certificate when there is one, else the system's CAs. Pass it on every request: requests
    lets REQUESTS_CA_BUNDLE override a session's own `verify`."""
    layout = layout or Layout(*local_stack_settings())
    cert = layout.secrets_dir / secrets.TLS_CERT
    return str(cert) if cert.exists() else True


def _component(proc: psutil.Process) -> str:
    """What a process of the stack is, for CPU accounting."""
    name = proc.name()
    cmdline = " ".join(proc.cmdline())
    if name.startswith("postgres") or "/postgresql/" in cmdline:
        return "postgres (3 members, all processes)"
    if "redis-server" in name or "redis-server" in cmdline:
        return "redis-sentinel" if "sentinel" in cmdline else "redis-server (3 nodes)"
    if name == "haproxy":
        return "haproxy"
    if "-m worker" in cmdline:
        return "workers"
    if "app.serve" in cmdline or "gunicorn" in cmdline:
        return "web apps"
    if "patroni" in cmdline:
        return "patroni (3)"
    if "exporter" in name or "exporter" in cmdline:
        return "exporters"
    if name == "prometheus":
        return "prometheus"
    return "other stack processes"


class CpuMeter:
    """CPU seconds used by the local stack's processes (and this process's reaped children),
    by component, between two snapshots: a figure that depends far less on other work on the
    machine than wall-clock rates do."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def _processes(self) -> list[psutil.Process]:
        return [proc for procs in by_program(self.layout).values() for proc in procs]

    def snapshot(self) -> dict[str, float]:
        """Component -> CPU seconds so far, reaped children included (Postgres backends that
        ended, a Redis BGSAVE); plus this process and the worker processes it forked."""
        totals: dict[str, float] = {}
        for proc in self._processes():
            try:
                times = proc.cpu_times()
                kind = _component(proc)
            except psutil.Error:
                continue
            used = times.user + times.system + times.children_user + times.children_system
            totals[kind] = totals.get(kind, 0.0) + used
        me = psutil.Process().cpu_times()
        totals["benchmark: workers it forked"] = me.children_user + me.children_system
        totals["benchmark itself"] = me.user + me.system
        return totals

    @staticmethod
    def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {k: after[k] - before.get(k, 0.0) for k in after if after[k] > before.get(k, 0.0)}


# Polls a benchmark makes are named "Benchmark <name>: ..." and removed with their votes after.
BENCH_QUESTION = "Benchmark {name}: poll {number}?"


def make_bench_polls(
    engine: Engine, name: str, count: int, labels: list[str], client: Redis | None = None
) -> list[Poll]:
    """`count` open polls (as the login app makes them; published when given a client)."""
    made = []
    database = Database(engine.url.render_as_string(hide_password=False), size=1)
    try:
        for number in range(1, count + 1):
            question = BENCH_QUESTION.format(name=name, number=number)
            draft = make_draft(question, labels, None, now=datetime.now(UTC))
            poll = store.create(database, draft, None)
            if client is not None:
                publish(client, poll, WaitPolicy())
            made.append(poll)
    finally:
        database.dispose()
    return made


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """A SQLAlchemy engine for a benchmark's own queries (the apps use core/db.py)."""
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=5,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 2, "application_name": "ha-vote-bench"},
    )


def forget_bench_polls(engine: Engine, name: str, client: Redis | None = None) -> int:
    """Delete the benchmark's polls with their votes and tallies (and their Redis copies)."""
    pattern = BENCH_QUESTION.format(name=name, number="%")
    with engine.begin() as conn:
        ids = list(
            conn.execute(
                text("SELECT id FROM polls WHERE question LIKE :p"), {"p": pattern}
            ).scalars()
        )
        for table, column in (("votes", "poll_id"), ("tallies", "poll_id"), ("polls", "id")):
            conn.execute(text(f"DELETE FROM {table} WHERE {column} = ANY(:ids)"), {"ids": ids})
    if client is not None:
        for poll_id in ids:
            unpublish(client, poll_id, WaitPolicy())
    return len(ids)
