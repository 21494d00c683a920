"""The running local stack as an attacker and a careless user see it: each class of hole closed.

One test per class of issue 8 (SECURITY.md lists them): private state, TLS at the front, no
internal endpoint through the front, least privilege in Redis, Sentinel, Postgres and etcd,
no exporter leaking a password, bounded sessions and per-client limits.
"""

from __future__ import annotations

import http.client
import os
import pwd
import socket
import ssl
import subprocess
import threading
import time

import psycopg2
import pytest
import redis
import requests

from ops.local.host import RUN_USER
from ops.local.layout import APP_DB, HOST, PATRONI_MEMBERS, WORKERS
from ops.local.processes import by_program
from ops.secrets import IDENTITIES
from ops.voter import SESSION_COOKIE, Voter
from tests.servers import free_port

pytestmark = pytest.mark.stack


def https(stack, source: str | None = None) -> http.client.HTTPSConnection:
    """A raw HTTPS connection to the web front (paths are sent exactly as given)."""
    context = ssl.create_default_context(cafile=stack.verify)
    return http.client.HTTPSConnection(
        HOST,
        stack.layout.port("https"),
        context=context,
        timeout=10,
        source_address=(source, 0) if source else None,
    )


def raw_get(stack, path: str) -> tuple[int, bytes]:
    conn = https(stack)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


# 1. Private state -------------------------------------------------------------------------------


def test_the_state_dir_is_private_to_the_user_the_stack_runs_as(stack):
    owner = pwd.getpwnam(RUN_USER).pw_uid if os.geteuid() == 0 else os.getuid()
    exposed = []
    for root, _dirs, files in os.walk(stack.layout.state_dir):
        for path in [root, *(os.path.join(root, name) for name in files)]:
            if os.path.islink(path):
                continue
            info = os.lstat(path)
            if info.st_mode & 0o077 or info.st_uid != owner:
                exposed.append(f"{path} {oct(info.st_mode & 0o777)} uid {info.st_uid}")
    assert not exposed, exposed[:20]


def test_no_process_shows_a_password_on_its_command_line(stack):
    """/proc/PID/cmdline is readable by every local user."""
    secrets = {name: value for name, value in stack.creds.items() if len(value) >= 16}
    shown = []
    for program, procs in by_program(stack.layout).items():
        for proc in procs:
            try:
                cmdline = " ".join(proc.cmdline())
            except Exception:  # a backend that ended meanwhile
                continue
            shown += [f"{program}: {name}" for name, v in secrets.items() if v in cmdline]
    assert not shown


def test_postgres_trusts_nobody_and_has_no_local_socket(stack):
    assert stack.sql("SELECT count(*) FROM pg_hba_file_rules WHERE auth_method = 'trust'") == [(0,)]
    assert stack.sql("SHOW unix_socket_directories") == [("",)]
    # Another local account, without the password, gets nowhere (no socket, no trust).
    port = stack.layout.pg_port(PATRONI_MEMBERS[0])
    tried = subprocess.run(
        [
            "runuser",
            "-u",
            "nobody",
            "--",
            "/usr/bin/psql",
            "-w",
            "-h",
            HOST,
            "-p",
            str(port),
            "-U",
            "postgres",
            "-c",
            "SELECT 1",
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert tried.returncode != 0
    assert "password" in tried.stderr


# 2. TLS at the front ----------------------------------------------------------------------------


def test_http_redirects_to_https_and_https_sets_hsts_and_secure_cookies(stack):
    plain = requests.get(
        f"http://{HOST}:{stack.layout.port('web')}/result?x=1", allow_redirects=False, timeout=5
    )
    assert plain.status_code == 301
    assert plain.headers["Location"] == f"{stack.urls['web']}/result?x=1"

    voter = Voter(stack.urls["web"], verify=stack.verify)
    page = voter.request("GET", "/")
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Server" not in page.headers
    cookie = page.headers["Set-Cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=") and "Secure" in cookie and "HttpOnly" in cookie
    assert page.headers["Cache-Control"] == "no-store"


def test_the_stats_page_wants_tls_and_a_password(stack):
    stats = stack.urls["stats"]
    assert requests.get(stats, verify=stack.verify, timeout=5).status_code == 401
    with pytest.raises(requests.ConnectionError):
        requests.get(stats.replace("https://", "http://"), timeout=5)
    auth = ("admin", stack.creds["haproxy-stats"])
    assert requests.get(stats, verify=stack.verify, auth=auth, timeout=5).status_code == 200


# 5. Internal endpoints --------------------------------------------------------------------------

SPELLINGS = [
    "/metrics",
    "//metrics",
    "/%6detrics",
    "/%6Detrics",
    "/METRICS",
    "/metrics/",
    "/./metrics",
    "/static/../metrics",
    "/static/%2e%2e/metrics",
    "/static/%2E%2E/metrics",
    "/%2fmetrics",
    "/metrics%00",
    "/metrics;x",
    "/\\metrics",
    "/readyz",
    "/healthz",
    "//readyz",
    "/%72eadyz",
    "/metrics?x=1",
    "/api/../metrics",
    "/api/results/../../metrics",
]


@pytest.mark.parametrize("path", SPELLINGS)
def test_no_internal_endpoint_is_reachable_through_the_front(stack, path):
    status, body = raw_get(stack, path)
    assert status in (400, 404), (path, status)
    assert b"# HELP" not in body and b"checks" not in body


def test_app_metrics_are_on_their_own_port_only(stack):
    program, _, port = stack.layout.app_instances[0]
    assert requests.get(f"http://{HOST}:{port}/metrics", timeout=5).status_code == 404
    metrics = requests.get(
        f"http://{HOST}:{stack.layout.app_metrics_port(program)}/metrics", timeout=5
    )
    assert "flask_http_request_total" in metrics.text


# 6. Redis and Sentinel ACL users ----------------------------------------------------------------

REDIS_DENIED = {
    "vote": [
        ("FLUSHALL",),
        ("CONFIG", "SET", "maxmemory", "1"),
        ("SHUTDOWN",),
        ("KEYS", "*"),
        ("SET", "x", "1"),
        ("XREADGROUP", "GROUP", "workers", "x", "STREAMS", "votes", ">"),
        ("ACL", "LIST"),
        ("CLIENT", "KILL", "TYPE", "normal"),
    ],
    "result": [("XADD", "votes", "*", "a", "b"), ("FLUSHDB",), ("SET", "LIMITS:x", "1")],
    "login": [("XADD", "votes", "*", "a", "b"), ("FLUSHALL",), ("CONFIG", "GET", "*")],
    "worker": [
        ("GET", "session:x"),
        ("SET", "session:x", "forged"),
        ("FLUSHALL",),
        ("CONFIG", "GET", "requirepass"),
        ("DEL", "votes"),
    ],
    "exporter": [
        ("GET", "session:x"),
        ("SET", "x", "1"),
        ("XADD", "votes", "*", "a", "b"),
        ("CONFIG", "SET", "save", ""),
    ],
    "backup": [("GET", "session:x"), ("KEYS", "*"), ("FLUSHALL",)],
}


def _redis_as(stack, user: str, secret: str, port: int) -> redis.Redis:
    return redis.Redis(HOST, port, username=user, password=stack.creds[secret], socket_timeout=3)


@pytest.mark.parametrize("service", sorted(REDIS_DENIED))
def test_each_redis_user_is_denied_what_it_does_not_need(stack, service):
    master = stack.deployment.redis().connection_pool.get_master_address()
    who = IDENTITIES[service]
    client = _redis_as(stack, who.redis_user, who.redis_secret, master[1])
    assert client.ping()
    for command in REDIS_DENIED[service]:
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command(*command)
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(HOST, master[1], password=stack.creds[who.redis_secret]).ping()


def test_each_sentinel_user_is_denied_what_it_does_not_need(stack):
    port = stack.layout.sentinel_port("sentinel-1")
    app = _redis_as(stack, "app", "sentinel-app", port)
    assert app.sentinel_get_master_addr_by_name(stack.layout.master_name)
    exporter = _redis_as(stack, "exporter", "sentinel-exporter", port)
    for client in (app, exporter):
        for command in [
            ("SENTINEL", "FAILOVER", stack.layout.master_name),
            ("SENTINEL", "SET", stack.layout.master_name, "quorum", "1"),
            ("SENTINEL", "REMOVE", stack.layout.master_name),
            ("SENTINEL", "RESET", "*"),
            ("SENTINEL", "CONFIG", "SET", "resolve-hostnames", "no"),
            ("ACL", "LIST"),
        ]:
            with pytest.raises(redis.exceptions.NoPermissionError):
                client.execute_command(*command)
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(HOST, port, password=stack.creds["sentinel-app"]).ping()


# 7. Postgres roles ------------------------------------------------------------------------------

PG_DENIED = {
    "vote": [
        "INSERT INTO votes VALUES ('x', 'cats', 1, 1, 'x', now())",
        "SELECT * FROM accounts",
        "DELETE FROM votes",
        "SELECT * FROM tallies",
    ],
    "result": [
        "SELECT * FROM votes",
        "INSERT INTO tallies VALUES ('x', 1)",
        "SELECT * FROM accounts",
        "TRUNCATE tallies",
    ],
    "login": [
        "UPDATE tallies SET count = 0",
        "DELETE FROM accounts",
        "DROP TABLE accounts",
        "INSERT INTO votes VALUES ('x', 'cats', 1, 1, 'x', now())",
    ],
    "worker": [
        "TRUNCATE votes",
        "DELETE FROM votes",
        "DROP TABLE votes",
        "CREATE TABLE x (a int)",
        "SELECT * FROM accounts",
        "ALTER TABLE tallies ADD COLUMN x int",
    ],
    "backup": [
        "INSERT INTO accounts (username, password_hash) VALUES ('x', 'x')",
        "UPDATE tallies SET count = 0",
        "CREATE TABLE x (a int)",
    ],
    "exporter": ["SELECT * FROM votes", "SELECT * FROM accounts"],
    "admin": [
        "CREATE ROLE intruder SUPERUSER",
        "CREATE DATABASE other",
        "ALTER ROLE vote_worker SUPERUSER",
    ],
}


@pytest.mark.parametrize("service", sorted(PG_DENIED))
def test_each_postgres_role_is_denied_what_it_does_not_need(stack, service):
    who = IDENTITIES[service]
    conn = psycopg2.connect(
        host=HOST,
        port=stack.layout.port("pg-rw"),
        user=who.pg_role,
        password=stack.creds[who.pg_secret],
        dbname=APP_DB,
        connect_timeout=3,
    )
    conn.autocommit = True
    try:
        for statement in PG_DENIED[service]:
            with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute(statement)
    finally:
        conn.close()


# 8. Exporters -----------------------------------------------------------------------------------


def test_the_redis_exporter_sends_no_password_to_a_target_it_does_not_know(stack):
    port = free_port()
    received: list[bytes] = []
    listener = socket.create_server((HOST, port))

    def serve() -> None:
        listener.settimeout(10)
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        conn.settimeout(2)
        with conn:
            try:
                while chunk := conn.recv(4096):
                    received.append(chunk)
                    conn.sendall(b"-ERR no\r\n")
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    exporter = f"http://{HOST}:{stack.layout.port('redis-exporter')}"
    requests.get(f"{exporter}/scrape", params={"target": f"redis://{HOST}:{port}"}, timeout=15)
    thread.join(12)
    listener.close()
    sent = b"".join(received)
    assert sent, "the exporter did not connect to the target it was given"
    for name, value in stack.creds.items():
        assert value.encode() not in sent, f"the exporter sent {name} to an unknown target"


# 9. etcd ----------------------------------------------------------------------------------------


def test_etcd_wants_a_login_and_patroni_may_only_touch_its_own_keys(stack):
    gateway = f"http://{HOST}:{stack.layout.port('etcd-client')}/v3"
    anonymous = requests.post(f"{gateway}/kv/range", json={"key": "L3NlcnZpY2Uv"}, timeout=5)
    assert anonymous.status_code != 200
    token = requests.post(
        f"{gateway}/auth/authenticate",
        json={"name": "patroni", "password": stack.creds["etcd-patroni"]},
        timeout=5,
    ).json()["token"]
    headers = {"Authorization": token}
    outside = requests.post(
        f"{gateway}/kv/put", json={"key": "L290aGVy", "value": "eA=="}, headers=headers, timeout=5
    )
    assert "permission denied" in outside.text
    own = requests.post(
        f"{gateway}/kv/range", json={"key": "L3NlcnZpY2Uv"}, headers=headers, timeout=5
    )
    assert own.status_code == 200


# 10. Sessions and per-client limits ------------------------------------------------------------


def test_sessions_are_made_only_when_needed_and_anonymous_ones_are_short(stack):
    admin = stack.deployment.redis()
    visitor = Voter(stack.urls["web"], verify=stack.verify)
    assert "Set-Cookie" not in visitor.request("GET", "/result").headers
    visitor.open_page("/")
    anonymous_ttl = admin.ttl(f"session:{visitor.session_id}")
    assert 0 < anonymous_ttl <= 3600
    assert visitor.vote("cats").status_code == 202
    assert admin.ttl(f"session:{visitor.session_id}") > 7 * 24 * 3600


def test_per_client_limits_stop_a_script_not_the_stack_s_own_load(stack):
    def burst(source: str) -> list[int]:
        statuses = []
        conn = https(stack, source)
        try:
            for _ in range(40):
                conn.request(
                    "POST", "/api/votes", body=b"{}", headers={"Content-Type": "application/json"}
                )
                reply = conn.getresponse()
                reply.read()
                statuses.append(reply.status)
        finally:
            conn.close()
        return statuses

    assert 429 in burst("127.0.0.2"), "a client hammering POST /api/votes was never limited"
    assert 429 not in burst("127.0.0.1"), "the exempt address was limited"


def test_a_too_large_chunked_body_is_refused_with_413(stack):
    conn = https(stack)
    try:
        conn.putrequest("POST", "/api/votes")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        chunk = b"x" * 4096
        for _ in range(16):
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
        assert conn.getresponse().status == 413
    finally:
        conn.close()


# 11. Smaller ------------------------------------------------------------------------------------


def test_worker_metrics_listen_on_loopback_only(stack):
    for worker in WORKERS:
        port = stack.layout.port("worker-metrics", worker)
        [proc] = by_program(stack.layout)[worker][:1]
        listening = {
            c.laddr.ip
            for c in proc.net_connections()
            if c.status == "LISTEN" and c.laddr.port == port
        }
        assert listening == {HOST}, (worker, listening)


def test_slow_request_headers_are_cut_off(stack):
    """HAProxy's `timeout http-request`: a client that never finishes its headers is dropped."""
    context = ssl.create_default_context(cafile=stack.verify)
    raw = socket.create_connection((HOST, stack.layout.port("https")), timeout=20)
    with context.wrap_socket(raw, server_hostname=HOST) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        answer = conn.recv(1024)
        waited = time.monotonic() - started
    assert waited < 15
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408")
