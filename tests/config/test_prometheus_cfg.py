"""monitoring/prometheus.yml, its alert rules and the compose target files pass promtool."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.config.conftest import REPO, load_compose, require_tool
from tests.config.dashboards import DASHBOARDS, queries

MONITORING = REPO / "monitoring"
RULE_TESTS = Path(__file__).parent / "rules"
MULTI_TARGET_JOBS = {"redis", "sentinel"}


def promtool(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    tool = require_tool("promtool", "prometheus")
    return subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def jobs() -> dict[str, dict]:
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    return {job["job_name"]: job for job in config["scrape_configs"]}


@pytest.fixture
def deployed(tmp_path: Path) -> Path:
    """prometheus.yml + rules/ + targets/ laid out the way compose mounts them."""
    shutil.copy(MONITORING / "prometheus.yml", tmp_path)
    shutil.copytree(MONITORING / "rules", tmp_path / "rules")
    shutil.copytree(MONITORING / "targets-compose", tmp_path / "targets")
    return tmp_path / "prometheus.yml"


def test_config_is_valid_with_the_compose_targets(deployed: Path) -> None:
    # Run from elsewhere: rule and target paths must be relative to the config file.
    result = promtool("check", "config", str(deployed), cwd=Path("/"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(list((MONITORING / 'rules').glob('*.yml')))} rule files found" in result.stdout


def test_a_broken_target_file_is_reported(deployed: Path) -> None:
    (deployed.parent / "targets" / "vote.json").write_text('[{"targets": ["vote1:8000"],')
    assert promtool("check", "config", str(deployed), cwd=Path("/")).returncode != 0


def test_rules_are_valid() -> None:
    result = promtool("check", "rules", *map(str, sorted((MONITORING / "rules").glob("*.yml"))))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_fire_when_they_should() -> None:
    result = promtool("test", "rules", "alerts.test.yml", cwd=RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_job_reads_its_own_relative_target_file() -> None:
    for name, job in jobs().items():
        files = [f for sd in job["file_sd_configs"] for f in sd["files"]]
        assert files == [f"targets/{name}.json"], name
        assert (MONITORING / "targets-compose" / f"{name}.json").exists(), name
    assert {p.stem for p in (MONITORING / "targets-compose").glob("*.json")} == set(jobs())


def test_compose_targets_name_compose_services() -> None:
    services = set(load_compose()["services"]) | {"localhost"}
    for path in (MONITORING / "targets-compose").glob("*.json"):
        for group in json.loads(path.read_text()):
            addresses = list(group["targets"])
            if path.stem in MULTI_TARGET_JOBS:
                addresses.append(group["labels"]["__exporter_address__"])
            for address in addresses:
                assert address.rsplit(":", 1)[0] in services, f"{path.name}: {address}"


# Values of the second source label of a drop rule (datname, db) to try with each name.
LABEL_VALUES = ("", "votes", "postgres", "template0", "db0", "db1")


def used_names() -> set[str]:
    """Every identifier in the rules' expressions, the dashboards' queries and the rule tests'
    series: a superset of the metric names something reads (labels and functions too)."""
    texts = [
        rule["expr"]
        for path in sorted((MONITORING / "rules").glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]
    texts += [expr for path in DASHBOARDS for _, expr in queries(path)]
    texts.append((RULE_TESTS / "alerts.test.yml").read_text())
    return {name for text in texts for name in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text)}


def test_no_metric_in_use_is_dropped() -> None:
    # metric_relabel_configs drop series nothing reads; a rule or panel must not lose its own.
    names = used_names()
    assert {"pg_settings_max_connections", "redis_commands_processed_total"} <= names
    for job_name, job in jobs().items():
        for rule in job.get("metric_relabel_configs", []):
            assert rule["action"] == "drop", job_name
            assert rule["source_labels"][0] == "__name__", job_name
            pattern = re.compile(rule["regex"])  # Prometheus anchors it: fullmatch
            if len(rule["source_labels"]) == 1:
                dropped = {n for n in names if pattern.fullmatch(n)}
            else:
                dropped = {n for n in names for v in LABEL_VALUES if pattern.fullmatch(f"{n};{v}")}
            assert not dropped, f"job {job_name} drops metrics in use: {sorted(dropped)}"
