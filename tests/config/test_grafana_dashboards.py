"""Grafana dashboards: provisionable as files, and every query is valid PromQL."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.config.conftest import REPO, require_tool
from tests.config.dashboards import DASHBOARDS, panels, queries
from tests.servers import free_port, wait_for

PROVISIONING = REPO / "monitoring" / "grafana" / "provisioning"


def datasource_uids(node: Any) -> Iterator[str]:
    """Every datasource uid referenced anywhere in a dashboard."""
    if isinstance(node, dict):
        source = node.get("datasource")
        if isinstance(source, dict) and source.get("type") != "grafana":
            yield source.get("uid")
        elif isinstance(source, str):
            yield source
        for value in node.values():
            yield from datasource_uids(value)
    elif isinstance(node, list):
        for value in node:
            yield from datasource_uids(value)


def test_there_is_a_dashboard() -> None:
    assert DASHBOARDS


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_uses_only_the_provisioned_datasource(path: Path) -> None:
    text = path.read_text()
    dashboard = json.loads(text)
    assert "${DS_" not in text and "__inputs" not in dashboard
    assert set(datasource_uids(dashboard)) == {"prometheus"}
    assert dashboard["uid"] and dashboard["title"]
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_provisioning_points_at_that_datasource_and_folder() -> None:
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yaml").read_text())
    [source] = datasources["datasources"]
    assert (source["uid"], source["url"]) == ("prometheus", "http://prometheus:9090")
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "ha-vote.yaml").read_text())
    [provider] = providers["providers"]
    grafana = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    assert mounts[provider["options"]["path"]] == "./monitoring/grafana/dashboards"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway Prometheus with no targets: it parses queries and answers empty."""
    binary = require_tool("prometheus", "prometheus")
    workdir = tmp_path_factory.mktemp("prometheus")
    (workdir / "prometheus.yml").write_text("global: {}\n")
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: requests.get(f"{url}/-/ready", timeout=1).ok, "prometheus", timeout=30)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_query_is_valid_promql(prometheus: str, path: Path) -> None:
    errors = []
    for title, expr in queries(path):
        answer = requests.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
        if answer.json()["status"] != "success":
            errors.append(f"{title}: {answer.json().get('error')}")
    assert not errors
