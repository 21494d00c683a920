"""sentinel/render.sh renders sentinel.conf completely, and refuses to with a variable missing."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import redis

from ops.wait import wait_for
from tests.config.conftest import REPO, service_env
from tests.servers import free_port

RENDER = REPO / "sentinel" / "render.sh"
TEMPLATE = REPO / "sentinel" / "sentinel.conf"


def render(env: dict[str, str], out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(RENDER), str(TEMPLATE), str(out)],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=10,
    )


def compose_env(tmp_path: Path) -> dict[str, str]:
    env = service_env("docker-compose.yml", "sentinel1")
    env["SENTINEL_DIR"] = str(tmp_path)
    # A password with every character sed treats specially must survive rendering.
    env["REDIS_PASSWORD"] = "p/a|s&s.w*o[r]d^$\\n\\"
    return env


def test_renders_every_variable(tmp_path: Path) -> None:
    env, out = compose_env(tmp_path), tmp_path / "sentinel.conf"
    result = render(env, out)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    directives = [line for line in text.splitlines() if not line.startswith("#")]
    assert not [line for line in directives if "${" in line]
    assert "sentinel monitor mymaster redis1 6379 2" in text
    assert "sentinel auth-pass mymaster " in text
    assert "sentinel announce-ip sentinel1" in text


def test_every_template_variable_is_set_by_compose(tmp_path: Path) -> None:
    code = "\n".join(line.split("#", 1)[0] for line in TEMPLATE.read_text().splitlines())
    wanted = set(re.findall(r"\$\{([A-Z0-9_]+)\}", code))
    assert wanted <= set(compose_env(tmp_path))


def test_fails_naming_a_missing_variable(tmp_path: Path) -> None:
    env, out = compose_env(tmp_path), tmp_path / "sentinel.conf"
    del env["SENTINEL_ANNOUNCE_IP"]
    result = render(env, out)
    assert result.returncode != 0
    assert "SENTINEL_ANNOUNCE_IP" in result.stderr
    assert not out.exists() or out.read_text() == ""


def test_a_password_with_spaces_quotes_and_backslashes_reaches_redis(tmp_path: Path) -> None:
    """A real Sentinel, rendered by render.sh, logs in to a real master with such a password."""
    password = 'a b"c\\d\\'
    master_port, sentinel_port = free_port(), free_port()
    env = compose_env(tmp_path) | {
        "SENTINEL_PORT": str(sentinel_port),
        "SENTINEL_BIND": "127.0.0.1",
        "SENTINEL_ANNOUNCE_IP": "127.0.0.1",
        "REDIS_MASTER_HOST": "127.0.0.1",
        "REDIS_MASTER_PORT": str(master_port),
        "SENTINEL_QUORUM": "1",
        "REDIS_PASSWORD": password,
        "SENTINEL_PASSWORD": password,
        "SENTINEL_DOWN_AFTER_MS": "500",
    }
    master = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(master_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--requirepass",
            password,
        ],
        stdout=subprocess.DEVNULL,
    )
    out = tmp_path / "sentinel.conf"
    sentinel = subprocess.Popen(
        ["sh", str(RENDER), str(TEMPLATE), str(out), "exec"],
        env={"PATH": os.environ["PATH"], **env},
        stdout=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=sentinel_port, password=password, decode_responses=True)
        wait_for(lambda: client.ping(), "Sentinel to answer with the rendered password", 10)
        view = wait_for(
            lambda: (
                (m := client.sentinel_master("mymaster")).get("role-reported") == "master" and m
            ),
            "Sentinel to log in to the master",
            10,
        )
        wait_for(lambda: not client.sentinel_master("mymaster")["is_sdown"], "no s_down", 3)
        assert view["flags"] == "master"
    finally:
        for proc in (sentinel, master):
            proc.terminate()
            proc.wait(10)
