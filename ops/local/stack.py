"""The local stack's life cycle: up, down, and stopping/starting single members."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from core.migrate import upgrade
from ops import etcd_auth
from ops.db import grant, provision
from ops.deployment import REPO
from ops.local import health, monitoring
from ops.local.deployment import local_deployment, stack_secrets, superuser_url
from ops.local.host import chown_tree, run_user
from ops.local.layout import (
    APP_DB,
    PATRONI_MEMBERS,
    REDIS_NODES,
    SENTINELS,
    WORKERS,
    Layout,
    venv_bin,
)
from ops.local.programs import Program, programs, write_exporter_passwords
from ops.local.supervisor import Supervisor, SupervisorError, supervisord_conf
from ops.secrets import IDENTITIES

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


def prepare_dirs(layout: Layout) -> None:
    """Create the state tree (made private by make_private once everything is written)."""
    layout.state_dir.mkdir(parents=True, exist_ok=True)
    for sub in ("logs", "run", "etcd", "prometheus", "pg"):
        layout.path(sub).mkdir(exist_ok=True)
    for node in REDIS_NODES:
        layout.path("redis", node).mkdir(parents=True, exist_ok=True)
    for sentinel in SENTINELS:
        layout.path("sentinel", sentinel).mkdir(parents=True, exist_ok=True)
    monitoring.prepare(layout)
    # supervisord opens its own log before it applies its umask: make it private first.
    layout.log("supervisord").touch()


def make_private(layout: Layout) -> None:
    """Everything under the state dir belongs to the user the stack runs as, and to nobody
    else: directories 0700, files 0600 (passwords, data files with session ids, sockets)."""
    for root, _dirs, files in os.walk(layout.state_dir):
        os.chmod(root, 0o700)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, 0o600)
    user = run_user()
    if user:
        chown_tree(layout.state_dir, user)
        _check_run_user(layout, user.pw_name)


def _check_run_user(layout: Layout, user: str) -> None:
    """The run user starts Patroni and the apps from our venv: make sure it can."""
    probe = [
        venv_bin("python"),
        "-c",
        "import sys, patroni, app; open(sys.argv[1]).close(); import os; "
        "assert os.access(sys.argv[2], os.W_OK)",
        str(REPO / "patroni" / "patroni.yml"),
        str(layout.path("pg")),
    ]
    result = subprocess.run(["runuser", "-u", user, "--", *probe], capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(
            f"the user {user} cannot run the stack from {Path(venv_bin('python')).parent} or "
            f"write {layout.state_dir} (a parent directory such as /root is private): clone "
            "the project and set VOTECTL_STATE_DIR somewhere world-traversable, e.g. /opt or /srv"
        )


def write_config(layout: Layout, creds: dict[str, str]) -> list[Program]:
    progs = programs(layout, creds)
    write_exporter_passwords(layout, creds)
    user = run_user()
    fd = os.open(layout.supervisor_conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(supervisord_conf(layout, progs, user.pw_name if user else None))
    return progs


def role_passwords(creds: dict[str, str]) -> dict[str, str]:
    """Each Postgres role's password, from the stack's secrets."""
    return {who.pg_role: creds[who.pg_secret] for who in IDENTITIES.values()}


def provision_database(layout: Layout, creds: dict[str, str]) -> None:
    """Roles and database (superuser), schema migrations and grants (the owner)."""
    provision(superuser_url(layout, creds), role_passwords(creds), APP_DB)
    owner = local_deployment(layout, creds).database_url
    upgrade(owner)
    grant(owner)


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
    creds = stack_secrets(layout)
    supervisor = Supervisor(layout)
    proc = None
    if supervisor.is_running():
        progress(f"stack already running in {layout.state_dir}; starting anything stopped")
    else:
        check_ports_free(layout)
        prepare_dirs(layout)
        write_config(layout, creds)
        make_private(layout)
        progress(f"starting supervisord ({layout.supervisor_conf})")
        proc = supervisor.launch(foreground=foreground)
    target = local_deployment(layout, creds)
    etcd, *infra = health.infra_checks(layout, target)
    health.wait_healthy(layout, [etcd], timeout, progress)
    endpoint = f"http://{layout.addr(layout.port('etcd-client'))}"
    if etcd_auth.enable(endpoint, creds["etcd-root"], creds["etcd-patroni"]):
        progress("etcd authentication enabled (user patroni: /service/ only)")
    for name, info in supervisor.processes().items():
        if info["statename"] != "RUNNING" and name not in app_program_names(layout):
            supervisor.start(name, wait=False)
    health.wait_healthy(layout, infra, timeout, progress)
    if apps:
        provision_database(layout, creds)
        progress("schema migrated; roles granted")
        for name in app_program_names(layout):
            supervisor.start(name, wait=False)
        health.wait_healthy(
            layout, health.app_checks(layout, supervisor, target), timeout, progress
        )
    return proc


def _stop_order(layout: Layout) -> list[list[str]]:
    """Groups of programs stopped together: the reverse of their start order (supervisord's
    priorities), so dependants stop before what they depend on."""
    creds = stack_secrets(layout)
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
