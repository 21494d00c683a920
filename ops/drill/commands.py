"""The `votectl drill` and `votectl switchover` commands (registered in ops/cli.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from ops.drill import DrillError
from ops.drill.load import Attempt
from ops.drill.report import render_table, strict_ok
from ops.drill.run import ALL, TARGETS, DrillOptions, run_drill
from ops.drill.switchover import (
    METHODS,
    SwitchoverError,
    postgres_switchover,
    redis_switchover,
)
from ops.drill.view import StackContext
from ops.local.layout import Layout
from ops.local.supervisor import SupervisorError
from ops.wait import WaitTimeout


def _layout(ctx: click.Context) -> Layout:
    return ctx.obj["layout"]


def _progress(message: str) -> None:
    click.echo(f"  {message}", err=True)


def _recorder(path: Path, target: str):
    def record(_stack: StackContext, attempts: list[Attempt]) -> None:
        with path.open("a") as out:
            for attempt in attempts:
                out.write(json.dumps({"target": target, **attempt.as_dict()}) + "\n")

    return record


@click.command()
@click.argument("target", type=click.Choice([*TARGETS, "all"]))
@click.option("--rate", type=float, default=100, show_default=True, help="Votes per second.")
@click.option(
    "--duration",
    type=float,
    default=20,
    show_default=True,
    help="Seconds of load; the failure is injected in the middle.",
)
@click.option(
    "--voters",
    type=int,
    default=300,
    show_default=True,
    help="Voters who vote again and again; around the failure each vote is a new voter's.",
)
@click.option(
    "--method",
    type=click.Choice(METHODS),
    default="safe",
    show_default=True,
    help="switchover-redis: our safe procedure, or a plain SENTINEL FAILOVER to measure it.",
)
@click.option(
    "--stop-workers",
    is_flag=True,
    help="Keep the workers stopped during the load (the worst case for a plain SENTINEL "
    "FAILOVER: nothing reads votes off the doomed master).",
)
@click.option(
    "--polls",
    type=click.IntRange(1, 20),
    default=3,
    show_default=True,
    help="Polls made for the drill (closed at its end); voters vote in them and the first poll.",
)
@click.option("--seed", type=int, default=None, help="Seed the voters' choices.")
@click.option(
    "--record",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Append every vote attempt to this file as JSON lines (voter, option, vote_id, "
    "status or exception, start and end).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the reports as JSON.")
@click.option(
    "--strict", is_flag=True, help="Also fail when voters saw errors where none are expected."
)
@click.pass_context
def drill(
    ctx: click.Context,
    target: str,
    rate: float,
    duration: float,
    voters: int,
    method: str,
    stop_workers: bool,
    polls: int,
    seed: int | None,
    record: str | None,
    as_json: bool,
    strict: bool,
) -> None:
    """Kill TARGET under a voter load, restore it, and prove no acknowledged vote was lost.

    Voters vote through HAProxy (POST /api/polls/<id>/votes) in --polls polls made for the
    drill and in the first poll; in the middle TARGET is SIGKILLed (or switched over) and
    brought back. Once the workers drained the stream, every voter's last acknowledged vote
    in each poll is checked against Postgres, and every poll's tallies against its rows.
    Exits non-zero when a vote was lost or a tally is wrong (with --strict also when voters
    saw failures for a target that must be invisible to them).
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    options = DrillOptions(
        rate=rate,
        duration=duration,
        voters=voters,
        method=method,
        seed=seed,
        stop_workers=stop_workers,
        polls=polls,
    )
    reports = []
    try:
        for name in ALL if target == "all" else [target]:
            hook = _recorder(Path(record), name) if record else None
            reports.append(
                run_drill(_layout(ctx), name, options, progress=_progress, before_reconcile=hook)
            )
    except (DrillError, SwitchoverError, SupervisorError, WaitTimeout) as exc:
        if reports:
            click.echo(render_table(reports), err=True)
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(reports, indent=2) if as_json else render_table(reports))
    passed = all(strict_ok(r) if strict else r["ok"] for r in reports)
    if not passed:
        ctx.exit(1)


@click.command()
@click.argument("what", type=click.Choice(["redis", "postgres"]))
@click.option(
    "--method",
    type=click.Choice(METHODS),
    default="safe",
    show_default=True,
    help="redis: pause writes, fail over, demote the old master at once (safe), or a plain "
    "SENTINEL FAILOVER (can lose acknowledged writes).",
)
@click.option("--candidate", default=None, help="postgres: the member to promote.")
@click.pass_context
def switchover(ctx: click.Context, what: str, method: str, candidate: str | None) -> None:
    """Move the Redis master or the Patroni leader to a replica, without losing writes."""
    try:
        stack = StackContext(_layout(ctx))
        if what == "redis":
            result = redis_switchover(stack, method=method, progress=_progress)
            click.echo(f"Redis master: {result['old_master']} -> {result['new_master']}")
        else:
            result = postgres_switchover(stack, candidate, progress=_progress)
            click.echo(f"Patroni leader: {result['old_leader']} -> {result['new_leader']}")
    except (SwitchoverError, SupervisorError, WaitTimeout) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"switched in {result['switch_s']} s")
