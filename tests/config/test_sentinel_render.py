"""sentinel/render.sh renders sentinel.conf completely (ACL users, passwords from secret files),
and refuses to with a variable missing; a real Sentinel then logs in with those passwords."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import redis

from ops import secrets
from ops.wait import wait_for
from tests.config.conftest import REPO
from tests.servers import free_port

RENDER = REPO / "sentinel" / "render.sh"
TEMPLATE = REPO / "sentinel" / "sentinel.conf"


def render(env: dict[str, str], out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(RENDER), str(TEMPLATE), str(out), *extra],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=10,
    )


def sentinel_env(tmp_path: Path) -> dict[str, str]:
    folder = tmp_path / "secrets"
    secrets.ensure(folder)
    return {
        "SENTINEL_PORT": "26379",
        "SENTINEL_BIND": "0.0.0.0",
        "SENTINEL_DIR": str(tmp_path),
        "SENTINEL_ANNOUNCE_IP": "sentinel1",
        "SENTINEL_SECRETS_DIR": str(folder),
        "REDIS_MASTER_NAME": "mymaster",
        "REDIS_MASTER_HOST": "redis1",
        "REDIS_MASTER_PORT": "6379",
        "SENTINEL_QUORUM": "2",
        "SENTINEL_DOWN_AFTER_MS": "5000",
        "SENTINEL_FAILOVER_TIMEOUT_MS": "60000",
    }


def test_renders_every_variable_and_stores_only_hashes_of_user_passwords(tmp_path: Path) -> None:
    env, out = sentinel_env(tmp_path), tmp_path / "sentinel.conf"
    result = render(env, out)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    directives = [line for line in text.splitlines() if not line.startswith("#")]
    assert not [line for line in directives if "${" in line]
    assert "sentinel monitor mymaster redis1 6379 2" in text
    assert "user default off" in text
    app = (tmp_path / "secrets" / "sentinel-app").read_text()
    assert f"user app on #{hashlib.sha256(app.encode()).hexdigest()} " in text
    assert app not in text
    assert oct(out.stat().st_mode & 0o777) == "0o600"


def test_fails_naming_a_missing_variable(tmp_path: Path) -> None:
    env, out = sentinel_env(tmp_path), tmp_path / "sentinel.conf"
    del env["SENTINEL_ANNOUNCE_IP"]
    result = render(env, out)
    assert result.returncode != 0
    assert "SENTINEL_ANNOUNCE_IP" in result.stderr
    assert not out.exists() or out.read_text() == ""


def test_passwords_with_spaces_quotes_and_backslashes_reach_redis(tmp_path: Path) -> None:
    """A real Sentinel, rendered by render.sh, logs in to a real master with such a password,
    and its app user can ask for the master but not reconfigure it."""
    env = sentinel_env(tmp_path)
    folder = Path(env["SENTINEL_SECRETS_DIR"])
    weird = 'a b"c\\d\\'
    for name in ("redis-sentinel", "sentinel-app"):
        (folder / name).write_text(weird)
    master_port, sentinel_port = free_port(), free_port()
    env |= {
        "SENTINEL_PORT": str(sentinel_port),
        "SENTINEL_BIND": "127.0.0.1",
        "SENTINEL_ANNOUNCE_IP": "127.0.0.1",
        "REDIS_MASTER_HOST": "127.0.0.1",
        "REDIS_MASTER_PORT": str(master_port),
        "SENTINEL_QUORUM": "1",
        "SENTINEL_DOWN_AFTER_MS": "500",
    }
    acl = tmp_path / "master.acl"
    acl.write_text(
        "user default off\n"
        f"user sentinel on #{hashlib.sha256(weird.encode()).hexdigest()} allchannels +@all\n"
    )
    master = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(master_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--aclfile",
            str(acl),
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
        app = redis.Redis(port=sentinel_port, username="app", password=weird, decode_responses=True)
        wait_for(lambda: app.ping(), "Sentinel to answer the app user", 10)
        view = wait_for(
            lambda: (m := app.sentinel_master("mymaster")).get("role-reported") == "master" and m,
            "Sentinel to log in to the master",
            10,
        )
        assert view["flags"] == "master"
        try:
            app.execute_command("SENTINEL", "FAILOVER", "mymaster")
        except redis.exceptions.NoPermissionError:
            pass
        else:
            raise AssertionError("the app user could start a failover")
    finally:
        for proc in (sentinel, master):
            proc.terminate()
            proc.wait(10)
