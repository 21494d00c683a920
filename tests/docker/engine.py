"""The Docker engine of the docker tier: the one that answers, or a private dockerd it starts."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ops.drill.docker_engine import Engine
from ops.wait import wait_for

REPO = Path(__file__).resolve().parents[2]
# Where a private engine keeps images: the same place as a system one, so the base image
# and the build cache outlive the run (warm builds next time).
DATA_ROOT = "/var/lib/docker"


@contextmanager
def docker_engine() -> Iterator[Engine]:
    """An engine that answers: the running one, else a dockerd started here and stopped
    (by its PID) on the way out."""
    engine = Engine()
    if engine.answers():
        yield engine
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None or os.geteuid() != 0:
        raise RuntimeError(
            "no Docker engine answers, and dockerd cannot be started here "
            "(install docker.io and run as root: ./dev bootstrap --test)"
        )
    log_path = Path(tempfile.gettempdir()) / "ha-vote-dockerd.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [dockerd, "--data-root", DATA_ROOT], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_for(lambda: proc.poll() is None and engine.answers(), "dockerd to answer", 60, 0.5)
        yield engine
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def build_images(engine: Engine, python: str) -> float:
    """docker/build.sh (base image, wheelhouse, every image); returns its seconds."""
    import time

    started = time.monotonic()
    done = subprocess.run(
        ["sh", str(REPO / "docker" / "build.sh"), "dev"],
        env={**os.environ, "DOCKER": engine.binary, "PYTHON": python},
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if done.returncode != 0:
        raise RuntimeError(f"docker/build.sh failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.monotonic() - started
