"""The Docker engine as the Docker drills use it: the `docker` CLI, with bounded timeouts."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import tarfile


class DockerError(Exception):
    """A docker command failed; the message has its output."""


def docker_binary() -> str:
    """Debian's client (it comes with the engine) before any other on PATH."""
    return "/usr/bin/docker" if os.access("/usr/bin/docker", os.X_OK) else "docker"


def compose_command() -> list[str]:
    """Compose v2 (`docker compose`) where installed, else Debian's docker-compose 1.29."""
    docker = docker_binary()
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, timeout=30
    )
    if probe.returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy is None:
        raise DockerError("neither `docker compose` nor docker-compose is installed")
    return [legacy]


class Engine:
    """One Docker engine, driven through its CLI."""

    def __init__(self, binary: str | None = None) -> None:
        self.binary = binary or docker_binary()

    def run(self, *args: str, timeout: float = 60, check: bool = True) -> str:
        """`docker ARGS`; its stdout, or DockerError when it fails."""
        try:
            done = subprocess.run(
                [self.binary, *args], capture_output=True, text=True, timeout=timeout
            )
        except subprocess.TimeoutExpired as exc:
            raise DockerError(f"docker {' '.join(args)}: no answer in {timeout:.0f}s") from exc
        if check and done.returncode != 0:
            raise DockerError(f"docker {' '.join(args)}: {done.stderr.strip() or done.stdout}")
        return done.stdout

    def answers(self) -> bool:
        """Whether an engine answers on the default socket."""
        try:
            self.run("info", "--format", "{{.ServerVersion}}", timeout=15)
        except (DockerError, OSError):
            return False
        return True

    def inspect(self, *names: str) -> list[dict]:
        """`docker inspect` of containers (missing ones are left out)."""
        if not names:
            return []
        out = self.run("inspect", *names, check=False, timeout=30)
        return json.loads(out or "[]")

    def containers(self, selector: str, key_label: str) -> dict[str, str]:
        """Container names by their value of `key_label`, for containers matching the
        label `selector` (NAME=VALUE); one-off `run` containers are left out."""
        out = self.run(
            "ps",
            "-a",
            "--filter",
            f"label={selector}",
            "--filter",
            "label=com.docker.compose.oneoff=False",
            "--format",
            f'{{{{.Names}}}}\t{{{{.Label "{key_label}"}}}}',
        )
        rows = (line.split("\t") for line in out.splitlines() if "\t" in line)
        return {value: name for name, value in rows}

    def kill(self, name: str) -> None:
        """`docker kill`: Docker counts it as a stop, so no restart policy brings it back."""
        self.run("kill", name)

    def crash(self, name: str) -> None:
        """SIGKILL the container's first process from the host: a crash, which the restart
        policy answers (unlike `docker kill`)."""
        pid = int(self.run("inspect", "-f", "{{.State.Pid}}", name).strip())
        if pid <= 0:
            raise DockerError(f"{name} is not running")
        os.kill(pid, signal.SIGKILL)

    def start(self, name: str) -> None:
        self.run("start", name, timeout=60)

    def isolate(self, name: str, cut: bool = True) -> None:
        """Cut the container off the network (a partition: it keeps running), or let it back
        (`cut=False`): every packet but its loopback's is dropped inside its own network
        namespace (iptables through nsenter: root on the host). It keeps its address, its
        DNS names and its /etc/hosts, as in a real partition. (`docker network disconnect`
        rewrites /etc/hosts, and Docker 20.10 drops every line from the container's own
        address on: a cut-off Patroni member lost the etcd names and spent 10 s per lookup.)"""
        (info,) = self.inspect(name)
        pid = str(info["State"]["Pid"])
        action = "-I" if cut else "-D"
        for chain, direction in (("INPUT", "-i"), ("OUTPUT", "-o")):
            command = ["nsenter", "-t", pid, "-n", "iptables", "-w", action, chain]
            done = subprocess.run(
                [*command, "!", direction, "lo", "-j", "DROP"],
                capture_output=True,
                text=True,
                timeout=30,
            )
            if done.returncode != 0:
                raise DockerError(f"{' '.join(command)}: {done.stderr.strip()}")

    def logs(self, name: str, lines: int) -> list[str]:
        """The container's last log lines (its stdout and stderr, interleaved)."""
        done = subprocess.run(
            [self.binary, "logs", "--tail", str(lines), name],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return (done.stdout + done.stderr).splitlines()

    def exec(self, name: str, *command: str, timeout: float = 10) -> str:
        return self.run("exec", name, *command, timeout=timeout)

    def read_file(self, name: str, path: str) -> str:
        """A file from a container, running or not (`docker cp`)."""
        done = subprocess.run(
            [self.binary, "cp", f"{name}:{path}", "-"], capture_output=True, timeout=30
        )
        if done.returncode != 0:
            raise DockerError(f"docker cp {name}:{path}: {done.stderr.decode().strip()}")
        with tarfile.open(fileobj=io.BytesIO(done.stdout)) as archive:
            member = archive.extractfile(archive.getmembers()[0])
            if member is None:
                raise DockerError(f"{name}:{path} is not a file")
            return member.read().decode().strip()
