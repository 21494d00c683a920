"""docker-compose.yml and docker-stack.yml: accepted by docker-compose, built as the design asks."""

from __future__ import annotations

import os
import re
import subprocess
from typing import Any

import pytest

from tests.config.conftest import COMPOSE_FILES, REPO, interpolate, load_compose, require_tool

STATEFUL = [f"{kind}{i}" for kind in ("etcd", "patroni", "redis", "sentinel") for i in (1, 2, 3)]


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_docker_compose_accepts_the_file(name: str) -> None:
    compose = require_tool("docker-compose", "docker-compose")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    result = subprocess.run(
        [compose, "-f", name, "config", "-q"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def _services(name: str) -> dict[str, dict[str, Any]]:
    return load_compose(name)["services"]


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_every_stateful_member_has_a_healthcheck_and_a_volume(name: str) -> None:
    services = _services(name)
    for service in STATEFUL:
        assert "test" in services[service].get("healthcheck", {}), service
        assert any(str(v).startswith(f"{service}-data:") for v in services[service]["volumes"])


def test_compose_waits_for_health_only_where_a_healthcheck_exists() -> None:
    services = _services("docker-compose.yml")
    for name, service in services.items():
        for dep, cond in (service.get("depends_on") or {}).items():
            if cond.get("condition") == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}'s health"


def test_compose_apps_start_after_the_migration() -> None:
    services = _services("docker-compose.yml")
    for name in ("vote1", "vote2", "result1", "result2", "login1", "login2", "worker1", "worker2"):
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name


@pytest.mark.parametrize("name", [*COMPOSE_FILES, "docker-stack.extras.yml"])
def test_no_password_is_written_in_a_compose_file(name: str) -> None:
    # Secrets are files (/run/secrets): settings name them with NAME_FILE, never a value,
    # and a database URL carries no password (DATABASE_PASSWORD_FILE holds it).
    assert "dev-only" not in (REPO / name).read_text()
    for service_name, service in load_compose(name)["services"].items():
        for key, value in (service.get("environment") or {}).items():
            where = f"{name}: {service_name}: {key}"
            if re.search(r"PASSWORD|SECRET_KEY|_PASS$", key):
                assert key.endswith("_FILE"), f"{where} is not a file"
            if "://" in str(value) and "@" in str(value):
                assert ":" not in str(value).split("://")[1].split("@")[0], where


def test_env_example_documents_every_compose_variable() -> None:
    used = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", (REPO / "docker-compose.yml").read_text()))
    documented = set(
        re.findall(r"^([A-Z_][A-Z0-9_]*)=", (REPO / ".env.example").read_text(), re.MULTILINE)
    )
    assert used <= documented, f"not in .env.example: {sorted(used - documented)}"


def test_stack_is_deployable_without_building_or_plain_passwords() -> None:
    stack = load_compose("docker-stack.yml")
    for name, service in stack["services"].items():
        assert "build" not in service, name
        for key in service.get("environment") or {}:
            if re.search(r"PASSWORD|SECRET", key) and not key.endswith("_SECRETS_DIR"):
                assert key.endswith("_FILE"), f"{name}: {key} must come from a secret"
    for service in STATEFUL:
        deploy = stack["services"][service]["deploy"]
        assert deploy["replicas"] == 1
        assert deploy["endpoint_mode"] == "dnsrr"
        member = service[-1]
        (constraint,) = deploy["placement"]["constraints"]
        assert interpolate(constraint, {}) == f"node.labels.ha-vote-node == {member}"
