"""The Python dependencies come from lock files with hashes, and none has a known vulnerability."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import requests

from tests.config.conftest import REPO

LOCKS = {"base.txt": (), "dev.txt": ("local", "test")}
BIN = Path(sys.executable).parent


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def locked(lock: str) -> dict[str, list[str]]:
    """Package -> its hashes, from a lock file."""
    packages: dict[str, list[str]] = {}
    current = None
    for line in (REPO / "requirements" / lock).read_text().splitlines():
        if match := re.match(r"^([A-Za-z0-9_.-]+)==\S+", line):
            current = match.group(1).lower().replace("_", "-")
            packages[current] = []
        elif current and "--hash=sha256:" in line:
            packages[current].append(line.split("--hash=sha256:")[1].split()[0])
    return packages


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_every_dependency_is_pinned_with_hashes(lock):
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in LOCKS[lock]:
        wanted += project["optional-dependencies"][extra]
    packages = locked(lock)
    missing = {_name(r) for r in wanted} - set(packages)
    assert not missing, f"regenerate requirements/{lock}: {sorted(missing)} are not in it"
    assert all(packages.values()), [name for name, hashes in packages.items() if not hashes]


def _per_version_api() -> bool:
    """pip-audit asks PyPI's /pypi/NAME/VERSION/json; some mirrors do not serve it."""
    try:
        return requests.get("https://pypi.org/pypi/pip/24.0/json", timeout=10).status_code == 200
    except requests.RequestException:
        return False


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_no_locked_dependency_has_a_known_vulnerability(lock):
    if not _per_version_api():
        pytest.skip("PyPI's vulnerability data (/pypi/NAME/VERSION/json) is not reachable here")
    audit = subprocess.run(
        [
            str(BIN / "pip-audit"),
            "--strict",
            "--require-hashes",
            "--disable-pip",
            "--progress-spinner",
            "off",
            "-r",
            str(REPO / "requirements" / lock),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert audit.returncode == 0, audit.stdout + audit.stderr
