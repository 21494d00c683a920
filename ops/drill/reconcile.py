"""Reconcile what voters were told with what Postgres holds, and summarise a drill's load."""

from __future__ import annotations

import itertools
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ops.drill.load import Attempt
from ops.figures import percentile


@dataclass(frozen=True)
class Row:
    """A voter's row in the votes table (for one poll)."""

    option: str
    vote_id: str


# A voter in a poll: (poll id, server-side voter id); a tally: (poll id, option key).
Ballot = tuple[str, str]


@dataclass(frozen=True)
class Snapshot:
    """One consistent read of Postgres: the drill voters' rows per poll, and every poll's
    tallies beside its rows per option."""

    rows: Mapping[Ballot, Row]
    tallies: Mapping[tuple[str, str], int]
    counts: Mapping[tuple[str, str], int]


@dataclass
class Reconciliation:
    """How every voter's last acknowledged vote in every poll fared."""

    # Voters are counted once per poll they voted in.
    voters: int = 0
    polls: int = 0
    exact: int = 0
    ambiguous: int = 0
    lost: list[dict] = field(default_factory=list)
    double_counted: int = 0
    tally_mismatches: list[dict] = field(default_factory=list)
    identity_changes: int = 0

    @property
    def ok(self) -> bool:
        return not self.lost and not self.double_counted and not self.tally_mismatches


def _by_server_voter(attempts: Sequence[Attempt]) -> tuple[dict[Ballot, list[Attempt]], int]:
    """Each (poll, server-side voter id) with the attempts that may have been cast under it.

    A simulated voter normally keeps one server voter id; if its session was lost, it gets
    a new one (counted as an identity change), and its unacknowledged attempts may belong
    to either.
    """
    by_sim: dict[tuple[int, str], list[Attempt]] = defaultdict(list)
    for attempt in sorted(attempts, key=lambda a: a.started):
        by_sim[(attempt.voter, attempt.poll)].append(attempt)
    result: dict[Ballot, list[Attempt]] = {}
    identities: dict[int, set[str]] = defaultdict(set)
    for (sim, poll), sequence in by_sim.items():
        ids = list(dict.fromkeys(a.server_voter for a in sequence if a.acked and a.server_voter))
        identities[sim].update(ids)
        for server_voter in ids:
            result[(poll, server_voter)] = sequence
    changes = sum(max(0, len(ids) - 1) for ids in identities.values())
    return result, changes


def _judge(ballot: Ballot, sequence: list[Attempt], row: Row | None) -> tuple[str, dict]:
    """'exact', 'ambiguous' or 'lost' for one voter in one poll, with the evidence."""
    poll, server_voter = ballot
    acked = [a for a in sequence if a.acked and a.server_voter == server_voter]
    last = acked[-1]
    later = [a for a in sequence[sequence.index(last) + 1 :] if not a.acked and not a.rejected]
    evidence = {
        "poll": poll,
        "voter": server_voter,
        "acknowledged": {"option": last.option, "vote_id": last.vote_id, "at": last.ended},
        "row": None if row is None else {"option": row.option, "vote_id": row.vote_id},
    }
    if row is None:
        return "lost", evidence
    if row.vote_id == last.vote_id:
        return "exact", evidence
    earlier_ids = {a.vote_id for a in acked[:-1]}
    # A later request failed after its write may have gone through: its vote may win.
    if row.vote_id not in earlier_ids and row.option in {a.option for a in later}:
        return "ambiguous", evidence
    return "lost", evidence


def reconcile(attempts: Sequence[Attempt], snapshot: Snapshot) -> Reconciliation:
    """Check every voter's last acknowledged vote in every poll against Postgres, and every
    poll's tallies.

    For every voter in a poll the row must hold the last acknowledged vote, or a later
    attempt whose request failed (it may have been written before the failure); anything
    else is lost. Each poll's tallies must equal its number of rows per option; a surplus
    is counted twice.
    """
    result = Reconciliation()
    groups, result.identity_changes = _by_server_voter(attempts)
    result.polls = len({poll for poll, _ in groups})
    for ballot, sequence in groups.items():
        result.voters += 1
        verdict, evidence = _judge(ballot, sequence, snapshot.rows.get(ballot))
        if verdict == "lost":
            result.lost.append(evidence)
        elif verdict == "exact":
            result.exact += 1
        else:
            result.ambiguous += 1
    for poll, option in sorted(set(snapshot.tallies) | set(snapshot.counts)):
        tally = snapshot.tallies.get((poll, option), 0)
        rows = snapshot.counts.get((poll, option), 0)
        if tally != rows:
            result.tally_mismatches.append(
                {"poll": poll, "option": option, "tally": tally, "rows": rows}
            )
            result.double_counted += max(0, tally - rows)
    return result


def latency(attempts: Iterable[Attempt], start: float, end: float) -> dict[str, float | None]:
    """p50, p99 and max duration (s) of the requests that started in [start, end]."""
    values = [a.ended - a.started for a in attempts if start <= a.started <= end]
    return {
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
        "mean": statistics.fmean(values) if values else None,
        "count": len(values),
    }


def longest_ack_gap(attempts: Iterable[Attempt], start: float, end: float) -> dict[str, float]:
    """The longest time in [start, end] during which no vote was acknowledged.

    Acknowledgements are taken at their end time; with none after `start`, the gap runs to
    `end`.
    """
    acks = sorted(a.ended for a in attempts if a.acked)
    before = [t for t in acks if t < start]
    inside = [t for t in acks if start <= t <= end]
    points = ([before[-1]] if before else [start]) + inside
    if not inside:
        points.append(end)
    best = {"seconds": 0.0, "from": start, "to": start}
    for a, b in itertools.pairwise(points):
        if b - a > best["seconds"]:
            best = {"seconds": b - a, "from": a, "to": b}
    return best


def failures(attempts: Iterable[Attempt]) -> dict[str, int]:
    """Failed requests by outcome (HTTP status or exception name)."""
    return dict(Counter(a.outcome for a in attempts if not a.acked))
