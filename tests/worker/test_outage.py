"""Backoff stays within its cap; an outage logs once when it starts and once when it ends."""

import logging

from worker.outage import Outage

CEILINGS = [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]


def test_backoff_doubles_up_to_the_cap_with_jitter_and_resets():
    outage = Outage("redis")
    for _ in range(20):  # jitter: every draw stays within [ceiling/2, ceiling]
        delays = [outage.failed("down") for _ in CEILINGS]
        assert all(c / 2 <= d <= c for c, d in zip(CEILINGS, delays, strict=True)), delays
        outage.recovered()
        assert 0.05 <= outage.failed("down") <= 0.1
        outage.recovered()


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
