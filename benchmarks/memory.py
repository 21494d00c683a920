"""Memory of the whole local stack: PSS summed over every one of its processes.

Every process supervisord runs and their children, supervisord itself, and each Patroni
member's postmaster with its backends (Patroni detaches the postmaster from supervisord's
tree). PSS counts a page shared by N processes as 1/N in each, so the sum is what the stack
really occupies; RSS would count shared pages (a forked worker's code) many times.

    .venv/bin/python benchmarks/memory.py                       # the default local stack
    .venv/bin/python benchmarks/memory.py --state-dir /tmp/s --base-port 21000 --settle 30
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
from stackenv import stack_options  # also puts the checkout on sys.path

from ops.deployment import local_stack_settings
from ops.local.layout import Layout
from ops.local.processes import Usage, memory_by_program

GROUPS = (
    # First: "redis-exporter" must not count as a Redis node.
    ("exporters", ("redis-exporter", "postgres-exporter")),
    ("postgres (patroni + postmasters + backends)", "patroni"),
    ("web apps (granian)", ("vote", "result", "login")),
    ("workers", "worker"),
    ("backup scheduler", "backup"),
    ("redis nodes", "redis-"),
    ("sentinels", "sentinel-"),
    ("etcd", "etcd"),
    ("haproxy", "haproxy"),
    ("prometheus", "prometheus"),
    ("supervisord", "supervisord"),
)


def group_of(program: str) -> str:
    for label, prefixes in GROUPS:
        if program.startswith(prefixes):
            return label
    return "other"


def measure(layout: Layout) -> dict:
    """PSS and RSS (MiB) by group, the process count, and the totals."""
    groups: dict[str, Usage] = {}
    for program, usage in memory_by_program(layout).items():
        label = group_of(program)
        old = groups.get(label, Usage(0.0, 0.0, 0))
        groups[label] = Usage(old.rss + usage.rss, old.pss + usage.pss, old.procs + usage.procs)
    return {
        "groups": {k: vars(v) for k, v in sorted(groups.items(), key=lambda kv: -kv[1].pss)},
        "pss_mib": sum(u.pss for u in groups.values()),
        "rss_mib": sum(u.rss for u in groups.values()),
        "processes": sum(u.procs for u in groups.values()),
    }


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@stack_options
@click.option("--settle", default=0.0, show_default=True, help="Seconds to wait first (idle).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def main(state_dir: str | None, base_port: int | None, settle: float, as_json: bool) -> None:
    """Print the idle stack's memory (PSS) by component and in total."""
    default_dir, default_port = local_stack_settings()
    layout = Layout(
        Path(state_dir).resolve() if state_dir else default_dir,
        base_port if base_port is not None else default_port,
    )
    time.sleep(settle)
    figures = measure(layout)
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    click.echo(f"{'component':46} {'PSS MiB':>8} {'RSS MiB':>8} {'procs':>6}")
    for label, usage in figures["groups"].items():
        click.echo(f"{label:46} {usage['pss']:8.0f} {usage['rss']:8.0f} {usage['procs']:6}")
    click.echo(
        f"{'whole stack':46} {figures['pss_mib']:8.0f} {figures['rss_mib']:8.0f}"
        f" {figures['processes']:6}"
    )


if __name__ == "__main__":
    main()
