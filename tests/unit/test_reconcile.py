"""The drill's reconciliation: what counts as lost, ambiguous or counted twice, and its figures."""

from __future__ import annotations

import pytest

from ops.drill.load import Attempt
from ops.drill.reconcile import (
    Row,
    Snapshot,
    failures,
    latency,
    longest_ack_gap,
    percentile,
    reconcile,
)

V1, V2 = "anon:" + "1" * 32, "anon:" + "2" * 32


P = "first"


def ack(
    voter: int, option: str, at: float, vote_id: str, server: str = V1, poll: str = P
) -> Attempt:
    return Attempt(voter, option, at, at + 0.01, 202, vote_id, server, poll=poll)


def fail(voter: int, option: str, at: float, status: int | None = 503) -> Attempt:
    error = None if status else "ConnectionError"
    return Attempt(voter, option, at, at + 0.5, status, None, None, error)


def snapshot(rows: dict, tallies: dict[str, int] | None = None) -> Snapshot:
    """Rows by voter (in the poll P) or by (poll, voter); tallies by option of P."""
    rows = {(k if isinstance(k, tuple) else (P, k)): row for k, row in rows.items()}
    counts: dict[tuple[str, str], int] = {}
    for (poll, _), row in rows.items():
        counts[(poll, row.option)] = counts.get((poll, row.option), 0) + 1
    keyed = counts if tallies is None else {(P, o): n for o, n in tallies.items()}
    return Snapshot(rows, keyed, counts)


def test_the_last_acknowledged_vote_in_postgres_is_exact():
    attempts = [ack(0, "cats", 1, "a"), ack(0, "dogs", 2, "b")]

    result = reconcile(attempts, snapshot({V1: Row("dogs", "b")}))

    assert (result.exact, result.lost, result.ok) == (1, [], True)


def test_a_missing_row_is_a_lost_vote():
    result = reconcile([ack(0, "cats", 1, "a")], snapshot({}))

    assert len(result.lost) == 1 and not result.ok
    assert result.lost[0]["acknowledged"]["vote_id"] == "a"


def test_an_older_vote_in_place_of_the_last_acknowledged_one_is_lost():
    attempts = [ack(0, "cats", 1, "a"), ack(0, "dogs", 2, "b"), fail(0, "cats", 3)]

    # Same option as the later failed attempt, but it is the *earlier* acknowledged vote.
    result = reconcile(attempts, snapshot({V1: Row("cats", "a")}))

    assert len(result.lost) == 1


def test_a_later_failed_attempt_may_have_been_applied():
    attempts = [ack(0, "cats", 1, "a"), fail(0, "dogs", 2), fail(0, "cats", 3, status=None)]

    result = reconcile(attempts, snapshot({V1: Row("dogs", "x")}))

    assert (result.ambiguous, result.lost) == (1, [])


def test_a_refused_request_cannot_have_been_applied():
    attempts = [ack(0, "cats", 1, "a"), fail(0, "dogs", 2, status=400)]

    result = reconcile(attempts, snapshot({V1: Row("dogs", "x")}))

    assert len(result.lost) == 1


def test_a_new_session_is_reported_and_both_voter_ids_are_checked():
    attempts = [ack(0, "cats", 1, "a", V1), ack(0, "dogs", 2, "b", V2)]

    result = reconcile(attempts, snapshot({V1: Row("cats", "a"), V2: Row("dogs", "b")}))

    assert (result.voters, result.exact, result.identity_changes) == (2, 2, 1)


def test_a_tally_above_its_rows_counts_votes_twice():
    rows = {V1: Row("cats", "a")}

    result = reconcile([ack(0, "cats", 1, "a")], snapshot(rows, {"cats": 2, "dogs": 0}))

    assert result.double_counted == 1
    assert result.tally_mismatches == [{"poll": P, "option": "cats", "tally": 2, "rows": 1}]
    assert not result.ok


def test_a_tally_below_its_rows_is_a_mismatch_but_not_double():
    result = reconcile([], snapshot({V1: Row("cats", "a")}, {"cats": 0}))

    assert (result.double_counted, len(result.tally_mismatches)) == (0, 1)


def test_each_poll_is_reconciled_on_its_own():
    attempts = [
        ack(0, "cats", 1, "a", poll="p1"),
        ack(0, "tea", 2, "b", poll="p2"),
        ack(0, "dogs", 3, "c", poll="p1"),
    ]
    # p2's vote is there, p1's last one is not: the row holds the earlier vote.
    rows = {("p1", V1): Row("cats", "a"), ("p2", V1): Row("tea", "b")}

    result = reconcile(attempts, snapshot(rows))

    assert (result.polls, result.voters, result.exact) == (2, 2, 1)
    assert [(lost["poll"], lost["acknowledged"]["vote_id"]) for lost in result.lost] == [
        ("p1", "c")
    ]
    assert result.identity_changes == 0


def test_the_longest_gap_between_acknowledgements_in_the_window():
    attempts = [ack(0, "cats", t, f"v{t}") for t in (0.0, 0.5, 1.0, 3.5, 4.0)]

    gap = longest_ack_gap(attempts, start=0.2, end=5.0)

    assert gap["seconds"] == pytest.approx(2.5)
    assert gap["from"] == pytest.approx(1.01)


def test_no_acknowledgement_after_the_start_is_a_gap_to_the_end():
    gap = longest_ack_gap([ack(0, "cats", 0.0, "a")], start=1.0, end=4.0)

    assert gap["seconds"] == pytest.approx(3.99)


def test_latency_percentiles_and_failures_by_outcome():
    attempts = [ack(0, "cats", t, f"v{t}") for t in range(10)] + [fail(1, "dogs", 20, None)]

    window = latency(attempts, 0, 100)

    assert window["count"] == 11
    assert window["p50"] == pytest.approx(0.01)
    assert window["max"] == pytest.approx(0.5)
    assert failures(attempts) == {"ConnectionError": 1}
    assert percentile([3, 1, 2, 4], 50) == 2
    assert percentile([], 99) is None
