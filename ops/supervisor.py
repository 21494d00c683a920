"""Talk to the stack's supervisord over its unix socket (XML-RPC), and start it."""

from __future__ import annotations

import subprocess
import time
import xmlrpc.client
from pathlib import Path

from supervisor.xmlrpc import SupervisorTransport

from ops.layout import Layout, venv_bin

RUNNING_STATES = {"RUNNING"}
STOPPED_STATES = {"STOPPED", "EXITED", "FATAL", "UNKNOWN"}


class SupervisorError(Exception):
    """supervisord is not running or refused a request."""


class Supervisor:
    """A thin client for one stack's supervisord."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        transport = SupervisorTransport(None, None, f"unix://{layout.supervisor_socket}")
        self._proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    @property
    def rpc(self):
        return self._proxy.supervisor

    def is_running(self) -> bool:
        if not Path(self.layout.supervisor_socket).exists():
            return False
        try:
            return self.rpc.getState()["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Fault):
            return False

    def launch(self, foreground: bool = False) -> subprocess.Popen | None:
        """Start supervisord; in the foreground it stays attached (returned as a Popen)."""
        cmd = [venv_bin("supervisord"), "-c", str(self.layout.supervisor_conf)]
        if foreground:
            # Own session: Ctrl-C reaches votectl, which then stops members in order.
            proc = subprocess.Popen([*cmd, "-n"], start_new_session=True)
        else:
            subprocess.run(cmd, check=True)
            proc = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.is_running():
                return proc
            time.sleep(0.1)
        raise SupervisorError(f"supervisord did not start; see {self.layout.log('supervisord')}")

    def processes(self) -> dict[str, dict]:
        """Every program's info (statename, pid, ...) by name."""
        return {info["name"]: info for info in self.rpc.getAllProcessInfo()}

    def state(self, name: str) -> str:
        return self.info(name)["statename"]

    def info(self, name: str) -> dict:
        try:
            return self.rpc.getProcessInfo(name)
        except xmlrpc.client.Fault as exc:
            raise SupervisorError(f"no such program {name!r}") from exc

    def start(self, name: str, wait: bool = True) -> None:
        try:
            self.rpc.startProcess(name, wait)
        except xmlrpc.client.Fault as exc:
            if "ALREADY_STARTED" not in exc.faultString:
                raise SupervisorError(
                    f"cannot start {name}: {exc.faultString}; see {self.layout.log(name)}"
                ) from exc

    def stop(self, name: str, wait: bool = True) -> None:
        try:
            self.rpc.stopProcess(name, wait)
        except xmlrpc.client.Fault as exc:
            if "NOT_RUNNING" not in exc.faultString:
                raise SupervisorError(f"cannot stop {name}: {exc.faultString}") from exc

    def stop_many(self, names: list[str], timeout: float = 60) -> None:
        """Stop several programs in parallel and wait until all are down."""
        for name in names:
            self.stop(name, wait=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.state(n) in STOPPED_STATES for n in names):
                return
            time.sleep(0.1)
        raise SupervisorError(
            "timed out stopping: "
            + ", ".join(n for n in names if self.state(n) not in STOPPED_STATES)
        )

    def signal(self, name: str, sig: str) -> None:
        try:
            self.rpc.signalProcess(name, sig)
        except xmlrpc.client.Fault as exc:
            raise SupervisorError(f"cannot signal {name}: {exc.faultString}") from exc

    def shutdown(self) -> None:
        try:
            self.rpc.shutdown()
        except (OSError, xmlrpc.client.Fault):
            return
