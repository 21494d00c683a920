"""The failures a Docker drill injects into a compose deployment, and how each is undone.

Beside ops/drill/faults.py (the local stack's): the same Fault, aimed at containers.
`docker kill` (which Docker counts as a stop: no restart policy answers it) is undone with
`docker start` once the role moved; a partition drops every packet of the container for
`cut_s` seconds while it keeps running (ops/drill/docker_engine.py: isolate), then lets them
through again. What the isolated member did meanwhile is watched from inside it
(`docker exec` needs no network) and kept in `fault.observed`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

from ops.drill.compose_view import SENTINELS, ComposeView
from ops.drill.docker_engine import DockerError
from ops.drill.faults import Fault
from ops.wait import wait_for

DEFAULT_CUT_S = 30.0
REDIS_CLI = (
    'REDISCLI_AUTH="$(cat /run/secrets/redis-admin)" redis-cli --no-auth-warning --user admin'
)
# The isolated Redis node's role, and the newest entry of its vote stream.
REDIS_SAMPLE = (
    f"{REDIS_CLI} role | head -1; "
    f"{REDIS_CLI} xinfo stream votes | sed -n '/last-generated-id/{{n;p}}'"
)
PATRONI_ROLE = (
    "import json, urllib.request; "
    "print(json.load(urllib.request.urlopen('http://127.0.0.1:8008/patroni', timeout=2))['role'])"
)


def _other_master(view: ComposeView, victim: str) -> bool:
    """Every Sentinel that answers names the same master, and not `victim`."""
    named = {m for m in view.sentinel_masters().values() if m}
    return len(named) == 1 and victim not in named


def _other_leader(view: ComposeView, victim: str) -> bool:
    return view.patroni_role("leader") not in (None, victim)


def _fault(target: str, victim: str, inject: Callable[[], None], recover) -> Fault:
    fault = Fault(target, victim, inject, recover)
    fault.observed = {}  # type: ignore[attr-defined]
    return fault


# --- docker kill ------------------------------------------------------------------------------


def _kill(view: ComposeView, target: str, victim: str, moved, what: str) -> Fault:
    """`docker kill` the victim; start it again once `moved()` (its role went elsewhere)."""
    container = view.container(victim)

    def recover() -> float:
        wait_for(moved, what, 90)
        back = time.monotonic()
        view.engine.start(container)
        return back

    return _fault(target, victim, lambda: view.engine.kill(container), recover)


def kill_redis_master(view: ComposeView) -> Fault:
    """`docker kill` the Redis master; started again once the Sentinels moved the role."""
    victim = view.redis_master()
    moved = lambda: _other_master(view, victim)  # noqa: E731
    return _kill(view, "kill-redis-master", victim, moved, "the Sentinels to promote a replica")


def kill_patroni_leader(view: ComposeView) -> Fault:
    """`docker kill` the Patroni leader; started again once another member leads."""
    victim = view.patroni_role("leader") or "?"
    moved = lambda: _other_leader(view, victim)  # noqa: E731
    return _kill(view, "kill-patroni-leader", victim, moved, "Patroni to elect a new leader")


# --- partitions -------------------------------------------------------------------------------


class _Cut:
    """One container off the network for `seconds`, with a log of what it did meanwhile:
    `sample` is called about every 0.5 s from the cut on, and each state kept once, as
    [first seen, last seen (s after the cut), state]."""

    def __init__(
        self,
        view: ComposeView,
        service: str,
        seconds: float,
        sample: Callable[[_Cut], str | None] = lambda _cut: None,
    ) -> None:
        self.view, self.service, self.seconds = view, service, seconds
        self.container = view.container(service)
        self.sample = sample
        self.at = 0.0
        self.log: list[list] = []
        self._watcher = threading.Thread(target=self._watch, name="cut-watch", daemon=True)

    def start(self) -> None:
        self.view.engine.isolate(self.container)
        self.at = time.monotonic()
        self._watcher.start()

    def _watch(self) -> None:
        while time.monotonic() < self.at + self.seconds:
            now, state = round(time.monotonic() - self.at, 1), self.sample(self)
            if self.log and self.log[-1][2] == state:
                self.log[-1][1] = now
            else:
                self.log.append([now, now, state])
            time.sleep(max(0.0, min(0.5, self.at + self.seconds - time.monotonic())))

    def end(self) -> list[str]:
        """Wait for the end of the cut, then end it; the victim's last log lines of the cut."""
        self._watcher.join(timeout=self.seconds + 30)
        tail = self.view.engine.logs(self.container, 6)
        self.view.engine.isolate(self.container, cut=False)
        return [line[:200] for line in tail]

    def exec(self, *command: str) -> str | None:
        try:
            return self.view.engine.exec(self.container, *command, timeout=5).strip()
        except DockerError as exc:  # a sample that failed is itself an observation
            return f"error: {str(exc)[:80]}"


def _partition(target: str, cut: _Cut, failover: Callable[[], None]) -> Fault:
    fault = _fault(target, cut.service, cut.start, lambda: 0.0)

    def recover() -> float:
        failover()
        back = time.monotonic()
        fault.observed["failover_after_s"] = round(back - cut.at, 1)
        fault.observed["isolated_log"] = cut.end()
        fault.observed["isolated_side"] = cut.log
        return back

    fault.recover = recover
    return fault


def partition_redis_master(view: ComposeView, cut_s: float = DEFAULT_CUT_S) -> Fault:
    """Cut the Redis master off; the majority fails over; it rejoins as a replica."""
    victim = view.redis_master()
    # Nothing may be added to its stream while it is cut off.
    cut = _Cut(view, victim, cut_s, lambda c: c.exec("sh", "-c", REDIS_SAMPLE))

    def failover() -> None:
        wait_for(lambda: _other_master(view, victim), "the Sentinels to promote a replica", 60)

    return _partition("partition-redis-master", cut, failover)


def partition_patroni_leader(view: ComposeView, cut_s: float = DEFAULT_CUT_S) -> Fault:
    """Cut the Patroni leader off etcd and the replicas: it must demote itself before
    another member is promoted."""
    victim = view.patroni_role("leader") or "?"
    cut = _Cut(view, victim, cut_s, lambda c: c.exec("python3", "-c", PATRONI_ROLE))

    def failover() -> None:
        wait_for(lambda: _other_leader(view, victim), "Patroni to elect a new leader", 90)

    return _partition("partition-patroni-leader", cut, failover)


def partition_sentinel(view: ComposeView, cut_s: float = DEFAULT_CUT_S) -> Fault:
    """Cut one Sentinel off: nothing fails over, it rejoins."""
    cut = _Cut(view, SENTINELS[0], cut_s)
    return _partition("partition-sentinel", cut, lambda: None)


def partition_app(view: ComposeView, cut_s: float = DEFAULT_CUT_S) -> Fault:
    """Cut one vote instance off: HAProxy takes it out, then back in."""
    cut = _Cut(view, "vote1", cut_s)
    return _partition("partition-app-instance", cut, lambda: None)


def observed(fault: Fault) -> dict:
    """What the fault recorded besides the drill's own figures (JSON-able)."""
    return json.loads(json.dumps(getattr(fault, "observed", {})))
