"""The local stack's life cycle: up, down, and stopping/starting single members."""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from core.migrate import upgrade
from ops.db import ensure_role_and_database
from ops.deployment import REPO
from ops.local import credentials, health, monitoring
from ops.local.deployment import app_env, local_deployment, superuser_url
from ops.local.host import PG_USER, runs_as_root
from ops.local.layout import (
    APP_DB,
    APP_ROLE,
    PATRONI_MEMBERS,
    REDIS_NODES,
    SENTINELS,
    WORKERS,
    Layout,
    venv_bin,
)
from ops.local.programs import Program, programs
from ops.local.supervisor import Supervisor, SupervisorError, supervisord_conf

logger = logging.getLogger(__name__)


class StackError(Exception):
    """The stack cannot do what was asked; the message says why and what to do."""


def _port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def check_ports_free(layout: Layout) -> None:
    """Fail naming the first stack port another program already holds."""
    for port, owner in sorted(layout.all_ports().items()):
        if _port_in_use(port):
            raise StackError(
                f"port {port} (for {owner}) is already in use; stop what holds it "
                f"or choose another base port (--base-port / VOTECTL_BASE_PORT)"
            )


def _pg_owner() -> tuple[int, int] | None:
    if not runs_as_root():
        return None
    try:
        entry = pwd.getpwnam(PG_USER)
    except KeyError:
        raise StackError(
            "running as root needs a 'postgres' user to run PostgreSQL "
            "(install postgresql-15: ./dev bootstrap)"
        ) from None
    return entry.pw_uid, entry.pw_gid


def prepare_dirs(layout: Layout) -> None:
    """Create the state tree; Postgres's part belongs to the postgres user when we are root."""
    layout.state_dir.mkdir(parents=True, exist_ok=True)
    # Others may traverse (the postgres user must reach pg/), but every file with a secret
    # in it is 0600.
    layout.state_dir.chmod(0o755)
    for sub in ("logs", "run", "etcd", "prometheus"):
        layout.path(sub).mkdir(exist_ok=True)
    for node in REDIS_NODES:
        layout.path("redis", node).mkdir(parents=True, exist_ok=True)
    for sentinel in SENTINELS:
        layout.path("sentinel", sentinel).mkdir(parents=True, exist_ok=True)
    prom = layout.path("run", "prom")
    shutil.rmtree(prom, ignore_errors=True)  # stale multiprocess metric files mislead
    for program, _, _ in layout.app_instances:
        (prom / program).mkdir(parents=True)
    monitoring.prepare(layout)
    pg = layout.path("pg")
    pg.mkdir(exist_ok=True)
    pg.chmod(0o700)
    owner = _pg_owner()
    if owner:
        for path in [pg, *pg.iterdir()]:
            os.chown(path, *owner)
        _check_postgres_can_run(layout)


def _check_postgres_can_run(layout: Layout) -> None:
    """The postgres user runs Patroni from our venv: make sure it can reach everything."""
    probe = [
        venv_bin("python"),
        "-c",
        "import sys, patroni; open(sys.argv[1]).close(); import os; "
        "assert os.access(sys.argv[2], os.W_OK)",
        str(REPO / "patroni" / "patroni.yml"),
        str(layout.path("pg")),
    ]
    result = subprocess.run(
        ["runuser", "-u", PG_USER, "--", *probe], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise StackError(
            f"the postgres user cannot run Patroni from {Path(venv_bin('python')).parent} or "
            f"write {layout.path('pg')} (a parent directory such as /root is private): clone "
            "the project and set VOTECTL_STATE_DIR somewhere world-traversable, e.g. /opt or /srv"
        )


def write_config(layout: Layout, creds: dict[str, str]) -> list[Program]:
    progs = programs(layout, creds)
    fd = os.open(layout.supervisor_conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(supervisord_conf(layout, progs))
    return progs


def provision_database(layout: Layout, creds: dict[str, str]) -> None:
    """The app role and database (superuser), then the schema migrations (app role)."""
    ensure_role_and_database(
        superuser_url(layout, creds), APP_ROLE, creds["APP_DB_PASSWORD"], APP_DB
    )
    upgrade(app_env(layout, creds)["DATABASE_URL"])


def app_program_names(layout: Layout) -> list[str]:
    return [p for p, _, _ in layout.app_instances] + list(WORKERS) + ["backup"]


def up(
    layout: Layout,
    *,
    apps: bool = True,
    timeout: float = 180,
    foreground: bool = False,
    progress: Callable[[str], None] = print,
) -> subprocess.Popen | None:
    """Bring the stack up (or complete a partly running one) and wait until it is healthy."""
    creds = credentials.load_or_create(layout.secrets_file)
    supervisor = Supervisor(layout)
    proc = None
    if supervisor.is_running():
        progress(f"stack already running in {layout.state_dir}; starting anything stopped")
        for name, info in supervisor.processes().items():
            if info["statename"] != "RUNNING" and (apps or name not in app_program_names(layout)):
                supervisor.start(name)
    else:
        check_ports_free(layout)
        prepare_dirs(layout)
        write_config(layout, creds)
        progress(f"starting supervisord ({layout.supervisor_conf})")
        proc = supervisor.launch(foreground=foreground)
    target = local_deployment(layout, creds)
    health.wait_healthy(layout, health.infra_checks(layout, target), timeout, progress)
    if apps:
        provision_database(layout, creds)
        progress("schema migrated")
        for name in app_program_names(layout):
            supervisor.start(name, wait=False)
        health.wait_healthy(layout, health.app_checks(layout, supervisor), timeout, progress)
    return proc


def _stop_order(layout: Layout) -> list[list[str]]:
    """Groups of programs stopped together: the reverse of their start order (supervisord's
    priorities), so dependants stop before what they depend on."""
    creds = credentials.load_or_create(layout.secrets_file)
    groups: dict[int, list[str]] = {}
    for program in programs(layout, creds):
        groups.setdefault(program.priority, []).append(program.name)
    return [groups[priority] for priority in sorted(groups, reverse=True)]


def down(layout: Layout, *, purge: bool = False, progress: Callable[[str], None] = print) -> None:
    """Stop everything the stack started (supervisord, its programs, orphaned postmasters)."""
    supervisor = Supervisor(layout)
    if supervisor.is_running():
        known = set(supervisor.processes())
        for group in _stop_order(layout):
            names = [n for n in group if n in known]
            try:
                supervisor.stop_many(names, timeout=60)
            except SupervisorError as exc:
                progress(f"warning: {exc}; killing")
                for name in names:
                    _kill_tree(supervisor.info(name).get("pid", 0))
        leftover = sorted(known - {n for g in _stop_order(layout) for n in g})
        supervisor.stop_many(leftover, timeout=30)
        pid_file = layout.path("run", "supervisord.pid")
        pid = int(pid_file.read_text()) if pid_file.exists() else 0
        supervisor.shutdown()
        _wait_gone(pid, 20)
        progress("stopped supervisord and its programs")
    _sweep_postmasters(layout, progress)
    busy = [
        f"{port} ({owner})"
        for port, owner in layout.all_ports().items()
        if _port_in_use(port) and _listening(port)
    ]
    if busy:
        progress("warning: still listening: " + ", ".join(busy))
    if purge and layout.state_dir.exists():
        shutil.rmtree(layout.state_dir)
        progress(f"deleted {layout.state_dir}")


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while pid and psutil.pid_exists(pid) and time.monotonic() < deadline:
        time.sleep(0.1)


def _kill_tree(pid: int) -> None:
    if not pid:
        return
    try:
        proc = psutil.Process(pid)
        for child in [*proc.children(recursive=True), proc]:
            child.kill()
    except psutil.NoSuchProcess:
        return


def _sweep_postmasters(layout: Layout, progress: Callable[[str], None]) -> None:
    """Patroni detaches the postmaster (its parent is PID 1), so a killed Patroni can orphan it."""
    for member in PATRONI_MEMBERS:
        pid_file = layout.pg_data(member) / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        try:
            proc = psutil.Process(pid)
            if "postgres" not in proc.name():
                continue
            proc.send_signal(signal.SIGQUIT)  # immediate shutdown; WAL makes it safe
            proc.wait(15)
            progress(f"stopped an orphaned postmaster of {member} (pid {pid})")
        except (psutil.NoSuchProcess, psutil.TimeoutExpired):
            continue


def member_names(supervisor: Supervisor) -> list[str]:
    return sorted(supervisor.processes())


def require_member(supervisor: Supervisor, name: str) -> None:
    names = member_names(supervisor)
    if name not in names:
        raise StackError(f"unknown member {name!r}; members: {', '.join(names)}")


def running_supervisor(layout: Layout) -> Supervisor:
    supervisor = Supervisor(layout)
    if not supervisor.is_running():
        raise StackError(f"no stack is running in {layout.state_dir} (start it: votectl up)")
    return supervisor
