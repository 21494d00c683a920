"""`votectl status`: one view of Redis, the Sentinels, Patroni and HAProxy, for any deployment."""

from __future__ import annotations

import csv
import io

import redis
import requests

from ops.deployment import Deployment
from ops.wait import NotReady

STATUS_TIMEOUT = 2.0


class NoPatroni(NotReady):
    """No Patroni member answered; the message names each one's failure."""


def patroni_cluster(urls: tuple[str, ...] | list[str], timeout: float = STATUS_TIMEOUT) -> dict:
    """Patroni's /cluster view from the first member that answers."""
    errors = []
    for url in urls:
        try:
            return requests.get(f"{url.rstrip('/')}/cluster", timeout=timeout).json()
        except (requests.RequestException, ValueError) as exc:
            errors.append(f"{url}: {exc.__class__.__name__}")
    raise NoPatroni("no Patroni member answers (" + ("; ".join(errors) or "no URL given") + ")")


def _redis_view(target: Deployment) -> tuple[dict, dict]:
    sentinels, masters, quorum_ok = [], set(), True
    for host, port in target.sentinels:
        entry: dict = {"addr": f"{host}:{port}"}
        client = target.sentinel_client(host, port, STATUS_TIMEOUT)
        try:
            addr = client.sentinel_get_master_addr_by_name(target.master_name)
            entry["master"] = f"{addr[0]}:{addr[1]}" if addr else None
            masters.add(entry["master"])
            # Errors (NOQUORUM) raise; any other reply means the quorum can be reached.
            client.execute_command("SENTINEL CKQUORUM", target.master_name)
            entry["ckquorum"] = "OK"
        except redis.RedisError as exc:
            entry["error"] = str(exc)
            quorum_ok = False
        finally:
            client.close()
        sentinels.append(entry)
    answering = [s for s in sentinels if "error" not in s]
    agree = len(masters) == 1 and len(answering) > 0
    master = next(iter(masters)) if agree else None
    redis_part = {"master": master, "replicas": [], "replica_details": []}
    if master:
        host, _, port = master.rpartition(":")
        client = target.node_client(host, int(port), STATUS_TIMEOUT)
        try:
            info = client.info("replication")
            redis_part["role"] = info.get("role")
            redis_part["master_offset"] = info.get("master_repl_offset")
            for key, value in sorted(info.items()):
                if key.startswith("slave") and isinstance(value, dict):
                    addr = f"{value['ip']}:{value['port']}"
                    redis_part["replicas"].append(addr)
                    redis_part["replica_details"].append(
                        {
                            "addr": addr,
                            "state": value.get("state"),
                            "offset": value.get("offset"),
                            "lag_bytes": info["master_repl_offset"] - int(value.get("offset", 0)),
                            "lag_seconds": value.get("lag"),
                        }
                    )
        except redis.RedisError as exc:
            redis_part["error"] = str(exc)
        finally:
            client.close()
    sentinel_part = {
        "quorum_ok": quorum_ok and agree and len(answering) == len(sentinels),
        "agree": agree,
        "sentinels": sentinels,
    }
    return redis_part, sentinel_part


def _postgres_view(target: Deployment) -> dict:
    try:
        cluster = patroni_cluster(target.patroni_urls)
    except NoPatroni as exc:
        return {
            "leader": None,
            "replicas": [],
            "sync_standby": None,
            "members": [],
            "error": str(exc),
        }
    members = cluster.get("members", [])
    leader = next((m["name"] for m in members if m.get("role") == "leader"), None)
    return {
        "leader": leader,
        "replicas": [m["name"] for m in members if m.get("role") in {"replica", "sync_standby"}],
        "sync_standby": next((m["name"] for m in members if m.get("role") == "sync_standby"), None),
        "members": [
            {
                "name": m.get("name"),
                "role": m.get("role"),
                "state": m.get("state"),
                "host": f"{m.get('host')}:{m.get('port')}",
                "timeline": m.get("timeline"),
                "lag": m.get("lag"),
            }
            for m in members
        ],
    }


def _haproxy_view(target: Deployment) -> dict:
    if not target.haproxy_stats_url:
        return {"backends": [], "error": "no HAProxy stats URL given"}
    try:
        reply = requests.get(
            f"{target.haproxy_stats_url.rstrip('/')}/;csv",
            auth=target.haproxy_stats_auth,
            verify=target.web_verify,
            timeout=STATUS_TIMEOUT,
        )
        reply.raise_for_status()
    except requests.RequestException as exc:
        return {"backends": [], "error": str(exc)}
    rows = csv.DictReader(io.StringIO(reply.text.lstrip("# ")))
    servers = [
        {
            "proxy": r["pxname"],
            "server": r["svname"],
            "status": r["status"],
            "check": r.get("check_status", ""),
        }
        for r in rows
        if r["svname"] not in {"FRONTEND", "BACKEND"}
    ]
    return {"backends": servers}


def collect(target: Deployment) -> dict:
    """The whole status as a JSON-able dict."""
    redis_part, sentinel_part = _redis_view(target)
    return {
        "redis": redis_part,
        "sentinel": sentinel_part,
        "postgres": _postgres_view(target),
        "haproxy": _haproxy_view(target),
        "urls": target.urls,
    }


def render_text(status: dict) -> str:
    """A view for people: one line per member."""
    out = []
    r, s, p = status["redis"], status["sentinel"], status["postgres"]
    out.append(
        f"Redis master   {r.get('master') or 'UNKNOWN'}"
        + (f"  (offset {r['master_offset']})" if r.get("master_offset") is not None else "")
    )
    for rep in r.get("replica_details", []):
        out.append(
            f"  replica      {rep['addr']}  {rep['state']}  offset {rep['offset']}  "
            f"lag {rep['lag_bytes']} B"
        )
    if r.get("error"):
        out.append(f"  error        {r['error']}")
    out.append(
        f"Sentinels      {'quorum OK' if s['quorum_ok'] else 'QUORUM NOT OK'}, "
        f"{'agree' if s['agree'] else 'DISAGREE'} on the master"
    )
    for sen in s["sentinels"]:
        out.append(f"  {sen['addr']:<13} {sen.get('error') or sen.get('ckquorum')}")
    out.append(
        f"Postgres       leader {p.get('leader') or 'NONE'}, "
        f"sync standby {p.get('sync_standby') or 'NONE'}"
    )
    for m in p.get("members", []):
        lag = "" if m["role"] == "leader" else f"  lag {m.get('lag')}"
        out.append(
            f"  {m['name']:<12} {m['role']:<13} {m['state']:<10} {m['host']}  "
            f"timeline {m.get('timeline')}{lag}"
        )
    if p.get("error"):
        out.append(f"  error        {p['error']}")
    out.append("HAProxy")
    for b in status["haproxy"].get("backends", []):
        out.append(f"  {b['proxy']:<12} {b['server']:<9} {b['status']}")
    if status["haproxy"].get("error"):
        out.append(f"  error        {status['haproxy']['error']}")
    out.append("URLs")
    for name, url in status["urls"].items():
        out.append(f"  {name:<12} {url}")
    return "\n".join(out)
