"""Failover drills on the session's stack: no acknowledged vote lost, voters notice nothing."""

from __future__ import annotations

import json
import os

import pytest

from ops.drill.load import Attempt
from ops.drill.run import DrillOptions, run_drill
from ops.drill.view import StackContext, whole_problems
from ops.local.layout import APP_DB

pytestmark = [
    pytest.mark.stack,
    pytest.mark.slow,
    pytest.mark.skipif(bool(os.environ.get("VOTE_TEST_NO_APPS")), reason="drills need the apps"),
]

# A few seconds of load each; the failure lands in the middle.
SHORT = DrillOptions(rate=50, duration=6, voters=60)
QUIET_KILLS = [
    "redis-master",
    "redis-replica",
    "sentinel",
    "worker",
    "app-instance",
    "patroni-replica",
]


def drill(stack, target: str, options: DrillOptions = SHORT, **kwargs) -> dict:
    report = run_drill(stack.layout, target, options, **kwargs)
    assert report["problems"] == []
    assert report["time_to_whole_s"] is not None, "the stack did not heal"
    assert whole_problems(StackContext(stack.layout)) == []
    return report


def assert_nothing_lost(report: dict) -> None:
    assert report["acked"] > 0.5 * report["rate"] * report["duration"]
    assert report["polls"] >= 3  # the drill's own polls and the first one
    assert report["lost"] == 0, report["lost_examples"]
    assert report["double_counted"] == 0
    assert report["tally_mismatches"] == []
    assert report["ok"]


def test_a_baseline_drill_through_the_cli(stack):
    result = stack.votectl(
        "drill", "none", "--rate", "40", "--duration", "4", "--voters", "40", "--json"
    )

    [report] = json.loads(result.stdout)
    assert_nothing_lost(report)
    assert report["failed"] == 0
    assert report["latency_window"]["p99"] < 1


@pytest.mark.parametrize("target", QUIET_KILLS)
def test_a_killed_member_costs_no_vote_and_no_voter_notices(stack, target):
    report = drill(stack, target)

    assert_nothing_lost(report)
    assert report["failures"] == {}
    if target == "redis-master":
        assert report["unavailable_s"] < 3


def test_a_killed_patroni_leader_fails_over_without_voters_noticing(stack):
    report = drill(stack, "patroni-leader", DrillOptions(rate=50, duration=8, voters=60))

    assert_nothing_lost(report)
    assert report["failures"] == {}
    assert report["victim"] != stack.status()["postgres"]["leader"]


def test_a_killed_haproxy_loses_no_acknowledged_vote(stack):
    report = drill(stack, "haproxy")

    # Voters do see the front door closed for a moment; nothing they were told is lost.
    assert_nothing_lost(report)


@pytest.mark.parametrize("target", ["switchover-redis", "switchover-postgres"])
def test_a_planned_switchover_loses_nothing(stack, target):
    report = drill(stack, target)

    assert_nothing_lost(report)
    assert report["failures"] == {}
    assert report["switchover"]["switch_s"] < 10


def test_a_plain_sentinel_failover_loses_votes_nothing_rescues_and_the_drill_says_so(stack):
    # The old master stays writable and a not-yet-reconfigured replica acknowledges WAIT:
    # with no worker reading them off the old master, those votes vanish (GUARANTEES.md).
    result = stack.votectl(
        "drill",
        "switchover-redis",
        "--method",
        "sentinel-failover",
        "--stop-workers",
        "--rate",
        "50",
        "--duration",
        "8",
        "--voters",
        "40",
        "--json",
        check=False,
    )

    assert result.returncode == 1, result.stderr
    [report] = json.loads(result.stdout)
    assert report["lost"] > 0
    assert report["double_counted"] == 0 and report["tally_mismatches"] == []
    assert whole_problems(StackContext(stack.layout)) == []


class RowThief:
    """Deletes one acknowledged vote (and its count) before the drill reconciles."""

    COLUMNS = (
        "poll_id, voter_id, option, stream_ms, stream_seq, vote_id, voted_at, prev_option,"
        " updated_at"
    )
    COUNT = "UPDATE tallies SET count = count {} 1 WHERE poll_id = %s AND option = %s"

    def __init__(self, stack) -> None:
        self.stack = stack
        self.stolen: tuple | None = None

    def sql(self, statement: str, *params):
        return self.stack.sql(statement, *params, database=APP_DB)

    def __call__(self, _ctx: StackContext, attempts: list[Attempt]) -> None:
        last = next(a for a in reversed(attempts) if a.acked)
        [self.stolen] = self.sql(
            f"DELETE FROM votes WHERE poll_id = %s AND voter_id = %s RETURNING {self.COLUMNS}",
            last.poll,
            last.server_voter,
        )
        self.sql(self.COUNT.format("-"), self.stolen[0], self.stolen[2])

    def give_back(self) -> None:
        self.sql(
            f"INSERT INTO votes ({self.COLUMNS}) VALUES ({', '.join(['%s'] * 9)})", *self.stolen
        )
        self.sql(self.COUNT.format("+"), self.stolen[0], self.stolen[2])


def test_a_vote_deleted_behind_the_drills_back_fails_the_drill(stack):
    thief = RowThief(stack)
    try:
        report = run_drill(
            stack.layout,
            "none",
            DrillOptions(rate=40, duration=4, voters=40),
            before_reconcile=thief,
        )
    finally:
        if thief.stolen:
            thief.give_back()

    assert report["lost"] == 1
    assert report["lost_examples"][0]["row"] is None
    assert report["tally_mismatches"] == []  # the count went too: only the loss shows
    assert not report["ok"]
