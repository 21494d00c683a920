"""Helpers for the config tests: the repository's files, compose environments, system tools."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILES = ("docker-compose.yml", "docker-stack.yml")

_VAR = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Expand ${VAR}, ${VAR:-default}, ${VAR-default} and $$ the way compose does."""

    def expand(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name", "op", "arg")
        value = env.get(name)
        if (op in (":-", ":?") and not value) or (op in ("-", "?") and value is None):
            if op.endswith("?"):
                raise KeyError(f"{name} must be set: {arg}")
            return arg or ""
        return value or ""

    return _VAR.sub(expand, value)


def load_compose(name: str = "docker-compose.yml") -> dict[str, Any]:
    """A compose file as parsed YAML (anchors and merge keys resolved, variables not)."""
    return yaml.safe_load((REPO / name).read_text())


def service_env(name: str, service: str, env: dict[str, str] | None = None) -> dict[str, str]:
    """A service's environment with compose's variable defaults applied, as its process sees
    it: each NAME_FILE (a secret) also sets NAME, as docker/entrypoint.sh does."""
    raw = load_compose(name)["services"][service].get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    values = {key: interpolate(str(value), env or {}) for key, value in raw.items()}
    for key in list(values):
        if key.endswith("_FILE"):
            values.setdefault(key.removesuffix("_FILE"), f"secret-from-{values[key]}")
    return values


def require_tool(binary: str, package: str) -> str:
    """The tool's path, or skip naming the Debian package that provides it."""
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"{binary} is not installed (Debian package {package}; ./dev bootstrap --test)")
    return path
