"""Kills and partitions under a voter load on the compose project: what voters saw, what was lost.

The same load, reconciliation and report as `votectl drill` (ops/drill/execute.py), aimed at
containers (ops/drill/docker_faults.py). They run one after the other on the tier's project,
each on a whole project, and leave it whole.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ops.drill import docker_faults
from ops.drill.execute import DrillOptions, System, execute
from ops.drill.faults import Fault

RATE = 30.0
LEAD_S, TAIL_S = 8.0, 14.0
# Long Redis/Patroni cuts outlast every failover timeout; shorter ones for the rest.
LONG_CUT_S, SHORT_CUT_S = 30.0, 20.0


def _drill(compose, figures: dict, make: Callable[[], Fault], window: float) -> dict:
    """Run one fault under load; record and return the report (with what the fault saw)."""
    view = compose.view
    system = System(
        deployment=view.deployment(),
        web_url=compose.web,
        whole_problems=compose.whole_problems,
        master=view.master_client,
    )
    options = DrillOptions(
        rate=RATE,
        duration=LEAD_S + window + TAIL_S,
        voters=100,
        fault_at=LEAD_S,
        fresh_after=window + 6,
        whole_timeout=180,
        seed=7,
    )
    fault = make()
    report = execute(system, fault, options)
    report["observed"] = docker_faults.observed(fault)
    keep = (
        "victim",
        "attempts",
        "acked",
        "failed",
        "failures",
        "lost",
        "ambiguous",
        "double_counted",
        "tally_mismatches",
        "unavailable_s",
        "recovered_after_s",
        "time_to_whole_s",
        "drained_after_s",
        "problems",
        "observed",
    )
    figures.setdefault("faults", {})[report["target"]] = {k: report[k] for k in keep}
    # A 429 would mean the test's own voters hit HAProxy's per-client limit, not a fault.
    assert "429" not in report["failures"], report["failures"]
    assert report["lost"] == 0, report["lost_examples"]
    assert report["double_counted"] == 0 and not report["tally_mismatches"], report
    assert report["ok"], report["problems"]
    return report


def test_docker_kill_of_the_redis_master(compose, figures):
    view = compose.view
    report = _drill(compose, figures, lambda: docker_faults.kill_redis_master(view), 10)
    assert view.redis_master() != report["victim"]


def test_docker_kill_of_the_patroni_leader(compose, figures):
    view = compose.view
    report = _drill(compose, figures, lambda: docker_faults.kill_patroni_leader(view), 25)
    assert view.patroni_role("leader") != report["victim"]


def test_redis_master_cut_off_fails_over_and_rejoins_as_a_replica(compose, figures):
    view = compose.view
    report = _drill(
        compose,
        figures,
        lambda: docker_faults.partition_redis_master(view, LONG_CUT_S),
        LONG_CUT_S,
    )
    # The isolated master never took a write: its stream's newest entry stayed the same.
    states = [state.split() for _, _, state in report["observed"]["isolated_side"]]
    assert all(len(s) == 2 and s[0] in ("master", "slave") for s in states), states
    assert len({stream_id for _, stream_id in states}) == 1, states
    with view.deployment().node_client(report["victim"], 6379) as node:
        assert node.info("replication")["role"] == "slave"


def test_patroni_leader_cut_off_demotes_itself_before_another_leads(compose, figures):
    view = compose.view
    report = _drill(
        compose,
        figures,
        lambda: docker_faults.partition_patroni_leader(view, LONG_CUT_S),
        LONG_CUT_S,
    )
    observed = report["observed"]
    primary_until = max(
        (last for _, last, role in observed["isolated_side"] if role in ("primary", "master")),
        default=0.0,
    )
    assert view.patroni_role("leader") != report["victim"]
    # Never two leaders: it steps down (DCS unreachable for retry_timeout) before the lease
    # it can no longer renew ends and another is promoted.
    assert primary_until < observed["failover_after_s"], observed


@pytest.mark.parametrize("which", ["sentinel", "app"])
def test_a_sentinel_or_an_app_instance_cut_off_costs_no_vote(compose, figures, which):
    view = compose.view
    make = {"sentinel": docker_faults.partition_sentinel, "app": docker_faults.partition_app}
    _drill(compose, figures, lambda: make[which](view, SHORT_CUT_S), SHORT_CUT_S)
