"""Prometheus for the local stack: the shared config and rules, with this stack's targets."""

from __future__ import annotations

import json
import shutil

from ops.deployment import REPO
from ops.local.layout import PATRONI_MEMBERS, REDIS_NODES, WORKERS, Layout


def prometheus_targets(layout: Layout) -> dict[str, list[dict]]:
    """targets/<job>.json for the shared monitoring/prometheus.yml, with loopback addresses."""

    def plain(ports: list[int]) -> list[dict]:
        return [{"targets": [layout.addr(p) for p in ports]}]

    apps = {
        app: [layout.app_metrics_port(p) for p, a, _ in layout.app_instances if a == app]
        for app in ("vote", "result", "login")
    }
    return {
        "prometheus": plain([layout.port("prometheus")]),
        **{app: plain(ports) for app, ports in apps.items()},
        "worker": plain([layout.port("worker-metrics", w) for w in WORKERS]),
        "backup": plain([layout.port("backup-metrics")]),
        "patroni": plain([layout.api_port(m) for m in PATRONI_MEMBERS]),
        "haproxy": plain([layout.port("haproxy-metrics")]),
        "etcd": plain([layout.port("etcd-client")]),
        "postgres": plain([layout.port("postgres-exporter", m) for m in PATRONI_MEMBERS]),
        "redis": [
            {
                "targets": [layout.addr(layout.redis_port(n)) for n in REDIS_NODES],
                "labels": {"__exporter_address__": layout.addr(layout.port("redis-exporter"))},
            }
        ],
        "sentinel": [
            {
                "targets": layout.sentinel_addrs,
                # The same exporter as the nodes' (it has the Sentinels' password too).
                "labels": {"__exporter_address__": layout.addr(layout.port("redis-exporter"))},
            }
        ],
    }


def prepare(layout: Layout) -> None:
    """The shared prometheus.yml and rules, next to target files with this stack's ports."""
    prom = layout.path("prometheus")
    shutil.copy(REPO / "monitoring" / "prometheus.yml", prom / "prometheus.yml")
    shutil.rmtree(prom / "rules", ignore_errors=True)
    shutil.copytree(REPO / "monitoring" / "rules", prom / "rules")
    (prom / "targets").mkdir(exist_ok=True)
    for job, groups in prometheus_targets(layout).items():
        (prom / "targets" / f"{job}.json").write_text(json.dumps(groups, indent=1) + "\n")
