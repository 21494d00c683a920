"""A drill's report: its figures as JSON, and a table for people."""

from __future__ import annotations

from ops.drill.faults import Fault
from ops.drill.load import LoadResult
from ops.drill.reconcile import Snapshot, failures, latency, longest_ack_gap, reconcile


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def summarise(
    target: str,
    fault: Fault,
    result: LoadResult,
    snapshot: Snapshot,
    *,
    rate: float,
    duration: float,
    quiet_expected: bool,
    killed: float,
    recovered: float,
    whole_at: float | None,
    drained_at: float | None,
) -> dict:
    """The drill's figures as a JSON-able dict."""
    attempts = result.attempts
    rec = reconcile(attempts, snapshot)
    gap = longest_ack_gap(attempts, killed - 1, result.ended)
    window = latency(attempts, killed - 1, recovered + 1)
    before = latency(attempts, result.started, killed - 1)
    failed = failures(attempts)
    report = {
        "target": target,
        "victim": fault.victim,
        "rate": rate,
        "duration": duration,
        "attempts": len(attempts),
        "acked": sum(a.acked for a in attempts),
        "failed": sum(failed.values()),
        "failures": failed,
        "skipped_ticks": result.skipped,
        "polls": rec.polls,
        "voters": rec.voters,
        "lost": len(rec.lost),
        "lost_examples": rec.lost[:10],
        "ambiguous": rec.ambiguous,
        "double_counted": rec.double_counted,
        "tally_mismatches": rec.tally_mismatches,
        "identity_changes": rec.identity_changes,
        "unavailable_s": _round(gap["seconds"]),
        "unavailable_from_kill_s": _round(gap["from"] - killed),
        "latency_window": {k: _round(v) for k, v in window.items()},
        "latency_before": {k: _round(v) for k, v in before.items()},
        "recovered_after_s": _round(recovered - killed),
        "time_to_whole_s": _round(whole_at - killed) if whole_at else None,
        "drained_after_s": _round(drained_at - killed) if drained_at else None,
        "ok": rec.ok and whole_at is not None and drained_at is not None,
        "quiet_expected": quiet_expected,
    }
    if getattr(fault, "info", None):
        report["switchover"] = fault.info
    return report


def strict_ok(report: dict) -> bool:
    """Nothing lost, and no voter saw a failure where none is expected."""
    return report["ok"] and (report["failed"] == 0 or not report["quiet_expected"])


# --- output -----------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render_table(reports: list[dict]) -> str:
    """One line per drill, then what went wrong."""
    head = (
        f"{'target':<20} {'victim':<11} {'polls':>5} {'acked':>6} {'lost':>4} {'2x':>3} "
        f"{'tally':>5} {'failed':>6} {'unavail s':>9} {'p50 ms':>6} {'p99 ms':>6} {'max ms':>6} "
        f"{'back s':>6} {'whole s':>7}  result"
    )
    lines = [head, "-" * len(head)]
    for r in reports:
        w = r["latency_window"]
        lines.append(
            f"{r['target']:<20} {r['victim']:<11} {r.get('polls', 1):>5} {r['acked']:>6} "
            f"{r['lost']:>4} "
            f"{r['double_counted']:>3} {len(r['tally_mismatches']):>5} {r['failed']:>6} "
            f"{_s(r['unavailable_s']):>9} {_ms(w['p50']):>6} {_ms(w['p99']):>6} "
            f"{_ms(w['max']):>6} {_s(r['recovered_after_s']):>6} {_s(r['time_to_whole_s']):>7}"
            f"  {'OK' if strict_ok(r) else ('ok*' if r['ok'] else 'FAILED')}"
        )
    notes = []
    for r in reports:
        if r["failures"]:
            detail = ", ".join(f"{k}: {v}" for k, v in sorted(r["failures"].items()))
            notes.append(f"{r['target']}: failed requests seen by voters: {detail}")
        for lost in r["lost_examples"][:3]:
            notes.append(f"{r['target']}: LOST {lost}")
        for mismatch in r["tally_mismatches"]:
            notes.append(f"{r['target']}: tally mismatch {mismatch}")
        if r.get("switchover"):
            notes.append(f"{r['target']}: {r['switchover']}")
        notes.extend(f"{r['target']}: {p}" for p in r["problems"])
    legend = (
        "polls: polls voted in; acked: votes acknowledged; lost: acknowledged votes missing from "
        "Postgres; 2x: votes counted twice; tally: (poll, option)s whose tally differs from its "
        "rows (every poll); unavail: longest gap "
        "between acknowledgements from 1 s before the kill; p50/p99/max: request latency from "
        "1 s before the kill to 1 s after recovery; back: kill -> service back; whole: kill -> "
        "every member back in place; ok*: nothing lost but voters saw failures"
    )
    return "\n".join([*lines, "", *notes, *([""] if notes else []), legend])
