"""sentinel/render.sh renders sentinel.conf completely, and refuses to with a variable missing."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.config.conftest import REPO, service_env

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
    env["REDIS_PASSWORD"] = "p/a|s&s.w*o[r]d^$"
    return env


def test_renders_every_variable(tmp_path: Path) -> None:
    env, out = compose_env(tmp_path), tmp_path / "sentinel.conf"
    result = render(env, out)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    directives = [line for line in text.splitlines() if not line.startswith("#")]
    assert not [line for line in directives if "${" in line]
    assert "sentinel monitor mymaster redis1 6379 2" in text
    assert f"sentinel auth-pass mymaster {env['REDIS_PASSWORD']}\n" in text
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
