"""One drill on any deployment: a voter load, a fault in its middle, and the reckoning.

The local stack (`votectl drill`, ops/drill/run.py) and the Docker tiers (compose faults and
partitions, ops/drill/docker_faults.py) differ only in how they break things and how they
tell that the deployment is whole again; both hand those in as a System and a Fault.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from redis import Redis

from core.stream import drained
from ops.deployment import Deployment
from ops.drill import DrillError
from ops.drill.faults import Fault
from ops.drill.load import Attempt, Load, LoadResult
from ops.drill.polls import close_polls, open_polls
from ops.drill.report import summarise
from ops.drill.switchover import SwitchoverError
from ops.drill.view import read_snapshot
from ops.wait import WaitTimeout, wait_for

# The window around the failure in which every vote is a new voter's only one.
FRESH_BEFORE_S, FRESH_AFTER_S = 2.0, 12.0


@dataclass
class DrillOptions:
    """How hard and how long a drill pushes."""

    rate: float = 100.0
    duration: float = 20.0
    voters: int = 300
    method: str = "safe"
    seed: int | None = None
    whole_timeout: float = 180.0
    # Keep the workers stopped while the load runs: nothing then reads votes off a master
    # that is about to lose them (the worst case of a plain SENTINEL FAILOVER).
    stop_workers: bool = False
    drain_timeout: float = 120.0
    # When the fault strikes (s from the load's start; default: the middle), and how long
    # after it every vote stays a new voter's (default FRESH_AFTER_S).
    fault_at: float | None = None
    fresh_after: float = FRESH_AFTER_S
    # Polls made for the drill (closed at its end); the first poll is voted in too.
    polls: int = 3


@dataclass
class System:
    """What a drill needs of a deployment besides the fault."""

    deployment: Deployment
    web_url: str
    # What keeps the deployment from being whole (every member back in place): [] if whole.
    whole_problems: Callable[[], list[str]]
    # A client of the current Redis master (to see the stream drained).
    master: Callable[[], Redis]
    # Recovery went wrong: try to leave the victim running, as the drill found it.
    restart_quietly: Callable[[str], None] = lambda _victim: None
    # Called around the load (e.g. to stop the workers while it runs).
    before_load: Callable[[], None] = lambda: None
    after_recovery: Callable[[], None] = lambda: None
    extra: dict = field(default_factory=dict)


class _Runner(threading.Thread):
    def __init__(self, load: Load) -> None:
        super().__init__(name="drill-load", daemon=True)
        self.load = load
        self.result: LoadResult | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.load.run()
        except BaseException as exc:  # reported by the drill
            self.error = exc


def execute(
    system: System,
    fault: Fault,
    options: DrillOptions,
    *,
    progress: Callable[[str], None] = lambda _: None,
    before_reconcile: Callable[[list[Attempt]], None] | None = None,
) -> dict:
    """Run the load over the drill's polls, inject `fault` at its `fault_at`, wait until whole
    and drained, reconcile every (poll, voter) and every poll's tallies."""
    wait_for(lambda: not system.whole_problems(), "a whole, healthy deployment first", 60)
    fault_at = options.duration / 2 if options.fault_at is None else options.fault_at
    polls = open_polls(system.deployment, options.polls, system.master)
    load = Load(
        system.web_url,
        polls,
        verify=system.deployment.web_verify,
        rate=options.rate,
        duration=options.duration,
        voters=options.voters,
        # Every vote from shortly before the failure until a while after it is a new voter's
        # last, so the reconciliation sees each of them.
        fresh_windows=[(fault_at - FRESH_BEFORE_S, fault_at + options.fresh_after)],
        seed=options.seed,
    )
    load.prepare()
    runner = _Runner(load)
    progress(
        f"{fault.target}: {options.rate:g} votes/s for {options.duration:g} s in {len(polls)} "
        f"polls; victim {fault.victim}"
    )
    system.before_load()
    runner.start()
    time.sleep(fault_at)
    problems: list[str] = []
    killed = recovered = time.monotonic()
    try:
        fault.inject()
        progress(f"{fault.target}: failure injected ({fault.victim})")
        recovered = fault.recover()
    except (DrillError, SwitchoverError, WaitTimeout) as exc:
        problems.append(str(exc))
        system.restart_quietly(fault.victim)
    if options.stop_workers:
        runner.join()
    system.after_recovery()
    whole_at = _wait_whole(system, options, problems)
    runner.join()
    if runner.error or runner.result is None:
        raise DrillError(f"the load failed: {runner.error!r}")
    try:
        drained_at = wait_for(
            lambda: drained(system.master()) and time.monotonic(),
            "the workers to drain the stream",
            options.drain_timeout,
        )
    except WaitTimeout as exc:
        drained_at = None
        problems.append(str(exc))
    attempts = runner.result.attempts
    if before_reconcile:
        before_reconcile(attempts)
    ballots = sorted({(a.poll, a.server_voter) for a in attempts if a.server_voter})
    snapshot = read_snapshot(system.deployment, ballots)
    close_polls(system.deployment, list(polls), system.master)
    report = summarise(
        fault.target,
        fault,
        runner.result,
        snapshot,
        rate=options.rate,
        duration=options.duration,
        quiet_expected=fault.target != "haproxy",
        killed=killed,
        recovered=recovered,
        whole_at=whole_at,
        drained_at=drained_at,
    )
    report["problems"] = problems
    report["ok"] = report["ok"] and not problems
    progress(f"{fault.target}: {'OK' if report['ok'] else 'FAILED'}")
    return report


def _wait_whole(system: System, options: DrillOptions, problems: list[str]) -> float | None:
    # Under the load still running: how long the stack takes to heal must not depend on it.
    try:
        return wait_for(
            lambda: not system.whole_problems() and time.monotonic(),
            "the deployment to be whole again",
            options.whole_timeout,
            interval=0.5,
        )
    except WaitTimeout as exc:
        problems.append(f"{exc}: {system.whole_problems()}")
        return None
