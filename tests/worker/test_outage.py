"""Backoff stays within its cap; an outage logs once when it starts and once when it ends."""

import logging

from worker.outage import Backoff, Outage


def test_backoff_doubles_up_to_the_cap_with_jitter_and_resets():
    low = Backoff(base=0.1, cap=2.0, rng=lambda: 0.0)
    high = Backoff(base=0.1, cap=2.0, rng=lambda: 1.0)
    assert [round(high.next(), 2) for _ in range(7)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert [round(low.next(), 2) for _ in range(3)] == [0.05, 0.1, 0.2]
    high.reset()
    assert high.next() == 0.1


def test_an_outage_logs_one_line_each_way_and_counts_once(caplog):
    now = [100.0]
    started = []
    outage = Outage("postgres", on_start=lambda: started.append(1), clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="worker.outage")
    for _ in range(5):
        outage.failed("connection refused")
    now[0] += 4.2
    outage.recovered()
    outage.recovered()
    assert [r.getMessage() for r in caplog.records] == [
        "postgres unavailable: connection refused; retrying",
        "postgres back after 4.2 s",
    ]
    assert started == [1]
    assert not outage.active
