"""Every Grafana panel query runs against the local stack's live Prometheus.

Key panels must also show data: they are what an operator looks at during a failover.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from tests.config.dashboards import DASHBOARDS, queries

pytestmark = pytest.mark.stack

# Panels that have data as soon as the stack is up (no traffic needed).
KEY_PANELS = {
    "ha-vote-overview.json": {
        "Redis masters",
        "Replicas of the master",
        "Redis nodes up",
        "Sentinels up",
        "Sentinel quorum",
        "Patroni leader",
        "Members up",
        "Servers up per backend",
        "Scrape targets up per job",
        "etcd has a leader",
        "Vote queue",
    },
}
# Prometheus scrapes every 5 s; give discovery and the first scrapes time to happen.
DATA_TIMEOUT_S = 90


def run(prometheus: str, expr: str) -> dict:
    answer = requests.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    return answer.json()


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_panel_query_succeeds(stack, path: Path) -> None:
    prometheus = stack.urls["prometheus"]
    failures = []
    for title, expr in queries(path):
        body = run(prometheus, expr)
        if body.get("status") != "success":
            failures.append(f"{title}: {body.get('error')} ({expr})")
    assert not failures


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_key_panels_show_data(stack, path: Path) -> None:
    prometheus = stack.urls["prometheus"]
    wanted = KEY_PANELS.get(path.name, set())
    titles = {title for title, _ in queries(path)}
    assert wanted <= titles, f"key panels missing from {path.name}: {wanted - titles}"
    pending = [(title, expr) for title, expr in queries(path) if title in wanted]
    deadline = time.monotonic() + DATA_TIMEOUT_S
    while pending and time.monotonic() < deadline:
        pending = [(t, e) for t, e in pending if not run(prometheus, e)["data"]["result"]]
        if pending:
            time.sleep(2)
    assert not pending, "no data for: " + "; ".join(f"{t} ({e})" for t, e in pending)
