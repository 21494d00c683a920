"""Every process of one local stack, by program: for memory and CPU accounting.

supervisord's programs and their children, plus each Patroni member's postmaster and its
backends: Patroni detaches the postmaster, so it is not a child of supervisord.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import psutil

from ops.local.layout import Layout
from ops.local.supervisor import Supervisor

MIB = 1 << 20


def _postmaster(layout: Layout, member: str) -> psutil.Process | None:
    try:
        pid = int((layout.pg_data(member) / "postmaster.pid").read_text().split()[0])
        proc = psutil.Process(pid)
    except (OSError, ValueError, IndexError, psutil.Error):
        return None
    return proc if "postgres" in proc.name() else None


def by_program(layout: Layout) -> dict[str, list[psutil.Process]]:
    """Program name -> its processes (a Patroni member's include its Postgres), plus
    supervisord itself."""
    supervisor = Supervisor(layout)
    found: dict[str, list[psutil.Process]] = {}
    pid_file = layout.path("run", "supervisord.pid")
    with contextlib.suppress(OSError, ValueError, psutil.Error):
        found["supervisord"] = [psutil.Process(int(pid_file.read_text()))]
    for name, info in supervisor.processes().items():
        if not info["pid"]:
            continue
        try:
            main = psutil.Process(info["pid"])
            procs = {main, *main.children(recursive=True)}
        except psutil.Error:
            continue
        if name.startswith("patroni") and (postmaster := _postmaster(layout, name)):
            with contextlib.suppress(psutil.Error):
                procs |= {postmaster, *postmaster.children(recursive=True)}
        found[name] = sorted(procs, key=lambda p: p.pid)
    return found


@dataclass(frozen=True)
class Usage:
    """Memory of a group of processes, in MiB."""

    rss: float
    pss: float
    procs: int


def memory(procs: list[psutil.Process]) -> Usage:
    """RSS and PSS (proportional: shared pages split among their users) of `procs`."""
    rss = pss = 0.0
    count = 0
    for proc in procs:
        try:
            info = proc.memory_full_info()
        except psutil.Error:
            continue  # ended meanwhile (a Postgres backend)
        rss += info.rss / MIB
        pss += info.pss / MIB
        count += 1
    return Usage(rss, pss, count)


def memory_by_program(layout: Layout) -> dict[str, Usage]:
    """Memory of every program of the stack (Postgres counted with its Patroni member)."""
    return {name: memory(procs) for name, procs in by_program(layout).items()}
