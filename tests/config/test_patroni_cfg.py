"""patroni/patroni.yml passes `patroni --validate-config` with the compose environment.

The validator rejects loopback connect addresses (which Patroni itself accepts), so it is run
on the compose settings. It also resolves the etcd hosts and connects to them. To do that
offline, it runs in a private mount namespace (`unshare -r -m`, no root needed) whose
/etc/hosts maps the compose service names to 127.0.0.1, while this test listens on the etcd
port; `--ignore-listen-port` keeps a local service on 5432/8008 from failing the check.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.config.conftest import REPO, require_tool, service_env

PATRONI = Path(sys.executable).parent / "patroni"
CONFIG = REPO / "patroni" / "patroni.yml"


@contextlib.contextmanager
def listening(port: int) -> Iterator[None]:
    """Something accepting connections on 127.0.0.1:port (ours, unless the port is taken)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen()
    except OSError:
        pass  # already in use: whatever listens there answers the validator's connect
    try:
        yield
    finally:
        sock.close()


def validate(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run the real validator with compose's service names resolving to 127.0.0.1."""
    unshare = require_tool("unshare", "util-linux")
    if not Path(env["PATRONI_POSTGRESQL_BIN_DIR"], "postgres").exists():
        pytest.skip("PostgreSQL 15 binaries are missing (Debian package postgresql-15)")
    probe = subprocess.run([unshare, "-r", "-m", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"user and mount namespaces are unavailable here: {probe.stderr.strip()}")
    etcd = [h.rsplit(":", 1) for h in env["PATRONI_ETCD3_HOSTS"].split(",")]
    names = {host for host, _ in etcd} | {"patroni1", "patroni2", "patroni3"}
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost " + " ".join(sorted(names)) + "\n")
    script = 'mount --bind "$0" /etc/hosts && exec "$@"'
    with contextlib.ExitStack() as stack:
        for port in {int(port) for _, port in etcd}:
            stack.enter_context(listening(port))
        return subprocess.run(
            [
                unshare,
                "-r",
                "-m",
                "sh",
                "-c",
                script,
                str(hosts),
                str(PATRONI),
                "--validate-config",
                "--ignore-listen-port",
                str(CONFIG),
            ],
            env={"PATH": os.environ["PATH"], **env},
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.mark.parametrize("member", ["patroni1", "patroni2", "patroni3"])
def test_valid_with_the_compose_environment(member: str, tmp_path: Path) -> None:
    result = validate(service_env("docker-compose.yml", member), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_validator_does_reject_a_bad_setting(tmp_path: Path) -> None:
    env = service_env("docker-compose.yml", "patroni1")
    env["PATRONI_POSTGRESQL_CONNECT_ADDRESS"] = "127.0.0.1:5432"
    result = validate(env, tmp_path)
    assert result.returncode != 0
    assert "connect_address" in result.stdout + result.stderr
