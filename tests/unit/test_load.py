"""The drill's load: returning voters change their votes; around a failure each vote is new."""

from __future__ import annotations

from ops.drill.load import Attempt, Load


def load(**kwargs) -> Load:
    return Load("http://127.0.0.1:9", {"first": ["cats", "dogs"]}, rate=10, duration=4, **kwargs)


def test_inside_a_fresh_window_every_tick_is_a_new_voters_only_vote():
    plan = load(voters=3, fresh_windows=[(1.0, 2.5)])
    plan._idle.extend(plan.voters[:3])

    voters = [plan._next_voter(tick) for tick in range(plan.ticks)]

    fresh = voters[10:25]
    assert len({v.index for v in fresh}) == 15
    assert all(v.index >= plan.repeat_voters for v in fresh)
    assert all(v.index < plan.repeat_voters for v in voters[:3])
    # Outside the window only the three returning voters exist; they are busy after tick 3.
    assert voters[3:10] == [None] * 7


def test_a_returning_voter_often_changes_its_vote():
    plan = load(voters=1, seed=7)
    voter = plan.voters[0]
    voter.choices["first"] = "cats"

    picks = [plan._pick(voter)[1] for _ in range(200)]

    assert 0.45 < picks.count("dogs") / 200 < 0.75


def test_votes_spread_over_every_poll_each_with_its_own_options():
    plan = Load(
        "http://127.0.0.1:9",
        {"p1": ["a", "b"], "p2": ["x", "y", "z"]},
        rate=10,
        duration=4,
        voters=1,
        seed=3,
    )
    voter = plan.voters[0]

    picks = [plan._pick(voter) for _ in range(300)]

    assert {poll for poll, _ in picks} == {"p1", "p2"}
    assert all(option in plan.polls[poll] for poll, option in picks)
    assert {option for poll, option in picks if poll == "p2"} == {"x", "y", "z"}


def test_outcome_names_the_status_or_the_exception():
    ok = Attempt(0, "cats", 0.0, 0.1, 202, "id", "anon:x")
    refused = Attempt(0, "cats", 0.0, 0.1, 400)
    broken = Attempt(0, "cats", 0.0, 0.1, error="ConnectionError")

    assert (ok.outcome, refused.outcome, broken.outcome) == ("ok", "400", "ConnectionError")
    assert refused.rejected and not broken.rejected and ok.acked
