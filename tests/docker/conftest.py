"""The docker tier: the images built here, one compose project for the whole tier, its faults.

Everything it starts (the compose project with its volumes and network, the swarm, a private
dockerd) is removed at the end, also when a test fails. The figures each test measured go to
test-output/docker-tier.json and the end of pytest's report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.drill.compose_view import ComposeView, Published, whole_problems
from ops.drill.docker_engine import Engine, compose_command
from ops.wait import wait_for
from tests.docker.engine import REPO, build_images, docker_engine

PROJECT = "havotetest"
BASE_PORT = int(os.environ.get("VOTE_TEST_BASE_PORT", "21000"))
OUTPUT = REPO / "test-output" / "docker-tier.json"
FIGURES: dict = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.docker)


def pytest_terminal_summary(terminalreporter) -> None:
    if FIGURES:
        terminalreporter.write_sep("-", "docker tier figures")
        terminalreporter.write_line(json.dumps(FIGURES, indent=1, default=str))


@pytest.fixture(scope="session")
def figures() -> Iterator[dict]:
    """What the tier measured, by test; written out at the end of the session."""
    started = time.monotonic()
    yield FIGURES
    FIGURES["tier_wall_s"] = round(time.monotonic() - started, 1)
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(json.dumps(FIGURES, indent=1, default=str))


@pytest.fixture(scope="session")
def engine(figures: dict) -> Iterator[Engine]:
    with docker_engine() as running:
        figures["images_build_s"] = round(build_images(running, sys.executable), 1)
        yield running


class ComposeProject:
    """The tier's compose project: `docker compose` with its name, ports and network."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.published = Published(
            https=BASE_PORT + 883, stats=BASE_PORT + 884, pg_rw=BASE_PORT + 885
        )
        net = f"172.28.{BASE_PORT // 1000 % 200}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")},
            "WEB_PORT": f"127.0.0.1:{BASE_PORT + 880}",
            "HTTPS_ADDR": "127.0.0.1",
            "HTTPS_PORT": str(self.published.https),
            "STATS_PORT": f"127.0.0.1:{self.published.stats}",
            "PG_RW_PORT": f"127.0.0.1:{self.published.pg_rw}",
            "PG_RO_PORT": f"127.0.0.1:{BASE_PORT + 886}",
            "PROMETHEUS_PORT": f"127.0.0.1:{BASE_PORT + 889}",
            "HA_VOTE_NET": net,
            # The drills' voters all come from the host (the network's gateway, as HAProxy
            # sees them): exempt from the per-client POST limit meant for scripts.
            "HAPROXY_LIMITS_EXEMPT": f"{net}.1/32",
            # Faster than compose's default 5000 so the drills fit the suite's budget.
            "SENTINEL_DOWN_AFTER_MS": "2000",
        }
        self.view = ComposeView(engine, PROJECT, self.published)
        self.web = f"https://127.0.0.1:{self.published.https}"
        self.http = f"http://127.0.0.1:{BASE_PORT + 880}"

    def run(self, *args: str, timeout: float = 300, check: bool = True):
        cmd = [*compose_command(), "-p", PROJECT, "-f", str(REPO / "docker-compose.yml"), *args]
        done = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args)}: {done.stderr[-3000:]}")
        return done

    def whole_problems(self) -> list[str]:
        return whole_problems(self.view)

    def down(self) -> subprocess.CompletedProcess:
        """The project and its volumes removed (also the tools profile's containers)."""
        return self.run(
            "--profile", "tools", "down", "--volumes", "--remove-orphans", "--timeout", "20",
            timeout=300, check=False,
        )  # fmt: skip


@pytest.fixture(scope="session")
def compose(engine: Engine, figures: dict) -> Iterator[ComposeProject]:
    """The compose project, up from nothing and whole; removed with its volumes at the end."""
    project = ComposeProject(engine)
    project.down()  # leftovers of an interrupted run
    started = time.monotonic()
    try:
        project.run("up", "--detach", "--no-build", timeout=600)
        wait_for(lambda: not project.whole_problems(), "the compose project to be whole", 300, 1)
        figures["compose_cold_start_to_whole_s"] = round(time.monotonic() - started, 1)
        yield project
    finally:
        project.down()
        project.view.close()
