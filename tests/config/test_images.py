"""The images: built on debian:bookworm-slim, unprivileged, from pins that match pyproject.toml."""

from __future__ import annotations

import re
import tomllib

import pytest
from packaging.requirements import Requirement

from tests.config.conftest import REPO

DOCKERFILES = sorted(
    str(p.relative_to(REPO)) for p in REPO.glob("**/Dockerfile") if ".venv" not in p.parts
)


def _pins(path: str) -> dict[str, str]:
    """Package -> version of a hashed lock file."""
    text = (REPO / path).read_text()
    return {
        name.lower().replace("_", "-"): version
        for name, version in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", text, re.MULTILINE)
    }


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_every_image_is_built_here_on_debian_bookworm() -> None:
    assert len(DOCKERFILES) == 6, DOCKERFILES
    for name in DOCKERFILES:
        bases = re.findall(r"^FROM (\S+)", (REPO / name).read_text(), re.MULTILINE)
        assert bases and all(b in ("debian:bookworm-slim", "runtime") for b in bases), name


@pytest.mark.parametrize("name", DOCKERFILES)
def test_every_image_runs_unprivileged(name: str) -> None:
    users = re.findall(r"^USER (\S+)", (REPO / name).read_text(), re.MULTILINE)
    assert users and users[-1] != "root", name


def test_the_app_image_installs_the_base_lock_and_nothing_local() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "requirements/base.txt" in dockerfile
    pins = _pins("requirements/base.txt")
    assert "patroni" not in pins and "supervisor" not in pins


def test_the_patroni_image_pins_the_local_stacks_patroni_with_its_etcd_client() -> None:
    patroni = next(
        Requirement(r)
        for r in _project()["optional-dependencies"]["local"]
        if r.startswith("patroni")
    )
    pins = _pins("docker/requirements/patroni.txt")
    assert patroni.specifier.contains(pins["patroni"])
    assert {"python-etcd", "psycopg2-binary"} <= set(pins)
    # Cut out of the dev lock: the same versions the local stack runs.
    dev = _pins("requirements/dev.txt")
    assert all(dev[name] == version for name, version in pins.items())
