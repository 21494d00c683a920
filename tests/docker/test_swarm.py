"""docker stack deploy on a single-node swarm: converges healthy, votes, a rolling update fails
no request; then the stack is removed and the swarm left."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from ops.drill.docker_engine import Engine
from ops.drill.load import Load, LoadResult
from ops.voter import Voter, poll_options
from ops.wait import NotReady, wait_for
from tests.docker.conftest import BASE_PORT, ComposeProject
from tests.docker.engine import REPO

STACK = "havoteswarm"
NAMESPACE = f"label=com.docker.stack.namespace={STACK}"
# Services that run once: done, they show 0 of 1 replicas.
ONE_SHOT = ("_migrate", "_etcd-auth")
WEB = f"https://127.0.0.1:{BASE_PORT + 893}"
CA = REPO / "test-output" / "swarm-ca.crt"


def _unconverged(engine: Engine) -> list[str]:
    """Services short of their replicas, and task containers not (yet) healthy."""
    problems = []
    out = engine.run("service", "ls", "--filter", NAMESPACE, "--format", "{{.Name}} {{.Replicas}}")
    for name, replicas in (line.split()[:2] for line in out.splitlines()):
        running, desired = replicas.split("/")
        if not name.endswith(ONE_SHOT) and running != desired:
            problems.append(f"{name} {replicas}")
    out = engine.run("ps", "--filter", NAMESPACE, "--format", "{{.Names}}\t{{.Status}}")
    problems += [
        line for line in out.splitlines() if "(health: starting)" in line or "(unhealthy)" in line
    ]
    return problems


def _web_ready() -> bool:
    """The result app reads Postgres, and the vote app sees the first poll in Redis (the
    workers publish it once the migration has made it)."""
    try:
        return all(
            requests.get(f"{WEB}{path}", timeout=3, verify=CA).status_code == 200
            for path in ("/api/results", "/api/polls/first")
        )
    except requests.RequestException as exc:
        raise NotReady(str(exc)) from None


def _has_gwbridge(engine: Engine) -> bool:
    names = engine.run("network", "ls", "--format", "{{.Name}}").split()
    return "docker_gwbridge" in names


def _leave(engine: Engine, had_gwbridge: bool) -> None:
    engine.run("stack", "rm", STACK, check=False)
    wait_for(
        lambda: not engine.run("ps", "-aq", "--filter", NAMESPACE).strip(),
        "the stack's containers to go",
        120,
        1,
    )
    engine.run("swarm", "leave", "--force", check=False, timeout=120)
    volumes = engine.run("volume", "ls", "-q", "--filter", NAMESPACE).split()
    if volumes:
        engine.run("volume", "rm", *volumes, check=False)
    if not had_gwbridge and _has_gwbridge(engine):
        # Swarm's bridge. Docker 20.10 may keep a stale endpoint on it (then it stays, empty,
        # until the engine restarts; a later swarm reuses it).
        engine.run("network", "rm", "docker_gwbridge", check=False)


@pytest.fixture(scope="module")
def swarm(engine: Engine, figures: dict) -> Iterator[Engine]:
    """A single-node swarm with the stack deployed and converged; all gone afterwards."""
    state = engine.run("info", "--format", "{{.Swarm.LocalNodeState}}").strip()
    if state != "inactive":
        pytest.skip(f"this engine is in a swarm already ({state}): not touching it")
    down = ComposeProject(engine).down()  # one deployment at a time on 2 cores
    assert down.returncode == 0, down.stderr[-2000:]
    assert not engine.run("ps", "-aq", "--filter", "label=com.docker.compose.project").strip()
    had_gwbridge = _has_gwbridge(engine)
    engine.run("swarm", "init", "--advertise-addr", "127.0.0.1", timeout=120)
    try:
        node = engine.run("info", "--format", "{{.Swarm.NodeID}}").strip()
        engine.run("node", "update", "--label-add", "ha-vote-node=1", node)
        CA.parent.mkdir(exist_ok=True)
        env = {**os.environ, "DOCKER": engine.binary, "CA_OUT": str(CA)}
        subprocess.run(
            [
                "sh",
                str(REPO / "docker" / "swarm-secrets.sh"),
                "--hostname",
                "127.0.0.1",
                "--hostname",
                "localhost",
                "--hostname",
                "haproxy",
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
        started = time.monotonic()
        env.update(
            HA_VOTE_NODE2="1",
            HA_VOTE_NODE3="1",
            HAPROXY_REPLICAS="1",
            WEB_PORT=str(BASE_PORT + 890),
            HTTPS_PORT=str(BASE_PORT + 893),
            # The test's voters, as HAProxy sees them (Docker's bridge gateways).
            HAPROXY_LIMITS_EXEMPT="172.16.0.0/12",
            STATS_PORT=str(BASE_PORT + 894),
            SENTINEL_DOWN_AFTER_MS="2000",
        )
        deployed = subprocess.run(
            [
                engine.binary,
                "stack",
                "deploy",
                "--resolve-image",
                "never",
                "-c",
                "docker-stack.yml",
                STACK,
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert deployed.returncode == 0, deployed.stderr
        wait_for(lambda: not _unconverged(engine) and _web_ready(), "the stack to converge", 420, 2)
        figures["swarm_deploy_to_converged_s"] = round(time.monotonic() - started, 1)
        yield engine
    finally:
        _leave(engine, had_gwbridge)


def test_the_stack_converges_with_every_service_healthy(swarm):
    assert _unconverged(swarm) == []


def test_a_vote_works_on_the_swarm(swarm):
    option = poll_options(WEB, str(CA))[0]
    reply = Voter(WEB, verify=str(CA)).vote(option)
    assert reply.status_code == 202, reply.text


class _Background(threading.Thread):
    def __init__(self, load: Load) -> None:
        super().__init__(daemon=True)
        self.load, self.result = load, None

    def run(self) -> None:
        self.result: LoadResult | None = self.load.run()


def test_a_rolling_update_of_the_vote_service_fails_no_request(swarm, figures):
    load = Load(
        WEB, poll_options(WEB, str(CA)), rate=20, duration=60, voters=100, seed=3, verify=str(CA)
    )
    load.prepare()
    runner = _Background(load)
    runner.start()
    time.sleep(5)
    started = time.monotonic()
    for service in ("vote1", "vote2"):
        swarm.run(
            "service", "update", "--force", "--detach=false", f"{STACK}_{service}", timeout=240
        )
    updated_s = round(time.monotonic() - started, 1)
    runner.join(timeout=120)
    assert runner.result is not None
    failed = [a for a in runner.result.attempts if not a.acked]
    figures["swarm_rolling_update"] = {
        "update_s": updated_s,
        "attempts": len(runner.result.attempts),
        "failed": len(failed),
        "failures": sorted({a.outcome for a in failed}),
    }
    assert updated_s < 55, "the update outlasted the load"
    assert failed == [], figures["swarm_rolling_update"]
