"""haproxy/haproxy.cfg is valid with the environments of compose, the stack and a loopback run."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from ops import secrets
from tests.config.conftest import REPO, require_tool, service_env

CFG = REPO / "haproxy" / "haproxy.cfg"


def referenced_vars() -> set[str]:
    """Every "${VAR}" the config reads (comments left out)."""
    code = "\n".join(line.split("#", 1)[0] for line in CFG.read_text().splitlines())
    return set(re.findall(r"\$\{([A-Z0-9_]+)\}", code))


def haproxy_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    haproxy = require_tool("haproxy", "haproxy")
    return subprocess.run(
        [haproxy, "-c", "-f", str(CFG)],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def tls_pem(tmp_path: Path) -> Path:
    """A self-signed certificate and key, as `votectl secrets init` makes them."""
    folder = tmp_path / "secrets"
    secrets.ensure(folder)
    return folder / secrets.TLS_PEM


def loopback_env(tmp_path: Path) -> dict[str, str]:
    """Addresses like the local stack's: everything on 127.0.0.1, one port per member."""
    env = {
        "HAPROXY_ADMIN_SOCKET": str(tmp_path / "haproxy.sock"),
        "HAPROXY_WEB_BIND": "127.0.0.1:17080",
        "HAPROXY_HTTPS_BIND": "127.0.0.1:17443",
        "HAPROXY_HTTPS_PORT": "17443",
        "HAPROXY_TLS_CERT": str(tls_pem(tmp_path)),
        "HAPROXY_METRICS_BIND": "127.0.0.1:17405",
        "HAPROXY_LIMITS_EXEMPT": "127.0.0.1/32",
        "HAPROXY_STATS_BIND": "127.0.0.1:17404",
        "HAPROXY_PG_RW_BIND": "127.0.0.1:17500",
        "HAPROXY_PG_RO_BIND": "127.0.0.1:17501",
        "HAPROXY_STATS_USER": "admin",
        "HAPROXY_STATS_PASSWORD": "a-password",
    }
    for offset, app in ((600, "VOTE"), (610, "RESULT"), (620, "LOGIN")):
        for i in (1, 2):
            env[f"{app}{i}_ADDR"] = f"127.0.0.1:{17000 + offset + i}"
    for i in (1, 2, 3):
        env[f"PG{i}_ADDR"] = f"127.0.0.1:{17510 + i}"
        env[f"PG{i}_API_PORT"] = str(17520 + i)
    return env


def test_compose_sets_every_variable_the_config_reads() -> None:
    assert referenced_vars() <= set(service_env("docker-compose.yml", "haproxy"))


def test_stack_sets_every_variable_the_config_reads() -> None:
    assert referenced_vars() <= set(service_env("docker-stack.yml", "haproxy"))


def test_valid_with_the_compose_environment(tmp_path: Path) -> None:
    env = service_env("docker-compose.yml", "haproxy")
    # The certificate is a Docker secret there; any valid one will do for the check.
    env["HAPROXY_TLS_CERT"] = str(tls_pem(tmp_path))
    result = haproxy_check(env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_valid_with_a_loopback_environment(tmp_path: Path) -> None:
    env = loopback_env(tmp_path)
    assert referenced_vars() <= set(env), "the loopback environment here is out of date"
    result = haproxy_check(env)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("missing", ["PG2_ADDR", "HAPROXY_WEB_BIND"])
def test_rejected_when_an_address_is_missing(tmp_path: Path, missing: str) -> None:
    env = loopback_env(tmp_path)
    del env[missing]
    assert haproxy_check(env).returncode != 0
