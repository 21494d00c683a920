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


def _pins(name: str) -> dict[str, str]:
    lines = (REPO / "docker" / "requirements" / f"{name}.txt").read_text().splitlines()
    pairs = (line.split("==") for line in lines if line and not line.startswith("#"))
    return {package.lower().replace("_", "-"): version for package, version in pairs}


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


def test_the_app_pins_satisfy_every_base_dependency_and_nothing_local() -> None:
    pins = _pins("app")
    for line in _project()["dependencies"]:
        requirement = Requirement(line)
        assert requirement.specifier.contains(pins[requirement.name.lower()]), line
    assert "patroni" not in pins and "supervisor" not in pins


def test_the_patroni_image_pins_the_local_stacks_patroni() -> None:
    patroni = next(
        Requirement(r)
        for r in _project()["optional-dependencies"]["local"]
        if r.startswith("patroni")
    )
    assert patroni.specifier.contains(_pins("patroni")["patroni"])
