"""votectl's life cycle on a stack of its own: up twice, clean down, clear one-line errors."""

from __future__ import annotations

import signal
import socket
import subprocess

import psutil
import pytest

from ops.local.layout import PATRONI_MEMBERS, Layout
from ops.local.supervisor import Supervisor
from tests.conftest import STACK_BASE_PORT, VOTECTL, make_state_dir

pytestmark = [pytest.mark.stack, pytest.mark.slow]

# Beside the session's stack (which takes STACK_BASE_PORT .. +1000), never on it: a suite run
# with VOTE_TEST_BASE_PORT=22000 used to collide with a fixed 22000 here.
BASE_PORT = STACK_BASE_PORT + 1000


def run(layout: Layout, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            VOTECTL,
            "--state-dir",
            str(layout.state_dir),
            "--base-port",
            str(layout.base_port),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def stack_pids(layout: Layout) -> set[int]:
    """supervisord, every program, their children, and the postmasters (Patroni detaches them)."""
    supervisor = Supervisor(layout)
    roots = [int(layout.path("run", "supervisord.pid").read_text())]
    roots += [info["pid"] for info in supervisor.processes().values() if info["pid"]]
    for member in PATRONI_MEMBERS:
        pid_file = layout.pg_data(member) / "postmaster.pid"
        if pid_file.exists():
            roots.append(int(pid_file.read_text().split()[0]))
    pids = set()
    for pid in roots:
        proc = psutil.Process(pid)
        pids |= {pid, *(c.pid for c in proc.children(recursive=True))}
    return pids


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_up_twice_then_down_leaves_nothing_behind():
    layout = Layout(make_state_dir("vote-life-"), BASE_PORT)
    try:
        first = run(layout, "up", "--no-apps")
        assert first.returncode == 0, first.stdout + first.stderr
        pids = stack_pids(layout)
        assert len(pids) >= 30  # supervisord, 11 programs, postmasters and their children
        second = run(layout, "up", "--no-apps")
        assert second.returncode == 0, second.stdout + second.stderr
        assert "already running" in second.stdout
        assert all(psutil.pid_exists(p) for p in pids)  # nothing was restarted
        down = run(layout, "down")
        assert down.returncode == 0, down.stdout + down.stderr
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
        assert alive == []
        assert [p for p in layout.all_ports() if listening(p)] == []
    finally:
        run(layout, "down", "--purge")
    assert not layout.state_dir.exists()


def test_port_in_use_is_a_one_line_error_naming_it():
    layout = Layout(make_state_dir("vote-busy-"), BASE_PORT + 1000)
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", layout.port("pg-rw")))
    blocker.listen()
    try:
        result = run(layout, "up", "--no-apps", timeout=60)
    finally:
        blocker.close()
        run(layout, "down", "--purge")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(layout.port("pg-rw")) in lines[0] and "in use" in lines[0]


@pytest.mark.parametrize(
    "args", [["up", "--bogus"], ["--base-port", "40000", "status"], ["stop"], ["frobnicate"]]
)
def test_bad_usage_is_a_one_line_error(args):
    result = subprocess.run([VOTECTL, *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("votectl: error:"), result.stderr
    assert "Traceback" not in result.stderr


def test_stop_of_unknown_member_names_the_members(stack):
    result = stack.votectl("stop", "redis-9", check=False)
    assert result.returncode == 1
    assert "unknown member 'redis-9'" in result.stderr and "redis-1" in result.stderr


def test_foreground_stays_attached_and_ctrl_c_stops_everything():
    layout = Layout(make_state_dir("vote-fg-"), BASE_PORT)
    proc = subprocess.Popen(
        [
            VOTECTL,
            "--state-dir",
            str(layout.state_dir),
            "--base-port",
            str(layout.base_port),
            "up",
            "--foreground",
            "--no-apps",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for line in proc.stdout:
            if "Attached" in line:
                break
        assert proc.poll() is None, "votectl up --foreground returned instead of staying attached"
        pids = stack_pids(layout)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
        assert proc.returncode == 0
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
        assert alive == []
        assert [p for p in layout.all_ports() if listening(p)] == []
    finally:
        if proc.poll() is None:
            proc.kill()
        run(layout, "down", "--purge")
