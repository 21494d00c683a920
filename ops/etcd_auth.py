"""Authentication for etcd, Patroni's store: a root user, and a patroni user limited to /service/.

Done once per etcd cluster, through etcd's v3 JSON gateway (no etcdctl, so no password on a
command line): `votectl etcd-auth` runs it for compose and Swarm, `votectl up` for the local
stack. Idempotent: with authentication already on, it only checks that root can log in.
"""

from __future__ import annotations

import base64

import requests

TIMEOUT_S = 5
PATRONI_PREFIX = "/service/"


class EtcdAuthError(Exception):
    """etcd refused a step; the message names it and what etcd said."""


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _prefix_end(prefix: str) -> str:
    """etcd's range end for every key starting with `prefix` (the last byte plus one)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class _Gateway:
    def __init__(self, endpoint: str) -> None:
        self.base = endpoint.rstrip("/")
        self.headers: dict[str, str] = {}

    def call(self, path: str, body: dict, *, ok_if: str | None = None) -> dict:
        try:
            reply = requests.post(
                f"{self.base}/v3/{path}", json=body, headers=self.headers, timeout=TIMEOUT_S
            )
        except requests.RequestException as exc:
            raise EtcdAuthError(f"etcd {path}: {exc}") from None
        data = reply.json() if reply.content else {}
        if reply.status_code != 200:
            message = data.get("error") or data.get("message") or reply.text
            if ok_if and ok_if in message:
                return data
            raise EtcdAuthError(f"etcd {path}: {message.strip()}")
        return data

    def login(self, user: str, password: str) -> None:
        token = self.call("auth/authenticate", {"name": user, "password": password})["token"]
        self.headers = {"Authorization": token}


def enabled(endpoint: str) -> bool:
    """Whether authentication is on (an anonymous read is refused)."""
    try:
        _Gateway(endpoint).call("kv/range", {"key": _b64(PATRONI_PREFIX)})
    except EtcdAuthError as exc:
        if "user name is empty" in str(exc) or "permission denied" in str(exc):
            return True
        raise
    return False


def enable(endpoint: str, root_password: str, patroni_password: str) -> bool:
    """Create root and patroni (readwrite on /service/ only), then turn authentication on.

    Returns False when it was already on (and root's password works), True when it turned
    it on now.
    """
    gateway = _Gateway(endpoint)
    if enabled(endpoint):
        gateway.login("root", root_password)
        return False
    gateway.call("auth/user/add", {"name": "root", "password": root_password}, ok_if="exists")
    gateway.call("auth/user/grant", {"user": "root", "role": "root"}, ok_if="exists")
    gateway.call("auth/role/add", {"name": "patroni"}, ok_if="exists")
    gateway.call(
        "auth/role/grant",
        {
            "name": "patroni",
            "perm": {
                "permType": "READWRITE",
                "key": _b64(PATRONI_PREFIX),
                "range_end": _b64(_prefix_end(PATRONI_PREFIX)),
            },
        },
    )
    gateway.call("auth/user/add", {"name": "patroni", "password": patroni_password}, ok_if="exists")
    gateway.call("auth/user/grant", {"user": "patroni", "role": "patroni"})
    gateway.call("auth/enable", {})
    return True
