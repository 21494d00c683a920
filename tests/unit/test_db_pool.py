"""core/db.py: the Postgres pool of the apps and workers, against a real Postgres server."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import psycopg2
import pytest

from core.db import Database, PoolExhausted, libpq_url
from tests.servers import free_port


def backend_pids(pool: Database) -> set[int]:
    with pool.connect() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return {cursor.fetchone()[0]}


def test_begin_commits_and_connect_rolls_back(pg):
    with pg.begin() as cursor:
        cursor.execute("CREATE TEMP TABLE IF NOT EXISTS t (n int) ON COMMIT PRESERVE ROWS")
        cursor.execute("INSERT INTO t VALUES (1)")
    with pg.connect() as cursor:
        cursor.execute("INSERT INTO t VALUES (2)")
    with pg.connect() as cursor:
        cursor.execute("SELECT array_agg(n) AS ns FROM t")
        assert cursor.fetchone().ns == [1]  # one connection: the temp table is still there


def test_an_error_rolls_back_and_the_connection_is_used_again(pg):
    first = backend_pids(pg)
    with pytest.raises(psycopg2.errors.DivisionByZero), pg.begin() as cursor:
        cursor.execute("SELECT 1 / 0")
    assert backend_pids(pg) == first


def test_a_connection_the_server_closed_is_replaced_before_use(pg, database_url):
    [pid] = backend_pids(pg)
    with psycopg2.connect(libpq_url(database_url)) as admin, admin.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))  # waits for the exit
    admin.close()
    assert backend_pids(pg) != {pid}  # pinged, found dead, replaced: no error reaches the caller


def test_an_unreachable_server_fails_at_once_and_frees_the_slot():
    pool = Database(f"postgresql://x:y@127.0.0.1:{free_port()}/votes", size=1, wait_s=0.2)
    for _ in range(3):  # a failed connect does not keep the only slot
        started = time.monotonic()
        with pytest.raises(psycopg2.OperationalError, match="refused"), pool.connect():
            pass
        assert time.monotonic() - started < 1.5


def test_a_busy_pool_waits_then_says_so(database_url):
    pool = Database(database_url, size=1, wait_s=0.3)
    with pool.connect():
        started = time.monotonic()
        with pytest.raises(PoolExhausted), pool.connect():
            pass
        assert time.monotonic() - started >= 0.3
    got = threading.Event()
    with pool.connect():
        waiter = threading.Thread(target=lambda: pool.connect().__enter__() and got.set())
        pool.wait_s = 5
        waiter.start()
        time.sleep(0.2)
        assert not got.is_set()
    waiter.join(5)
    assert got.is_set()  # the connection came back and the waiter got it


def test_a_conflict_keeps_the_connection_a_lost_link_does_not(pg, database_url):
    [pid] = backend_pids(pg)
    with pytest.raises(psycopg2.errors.QueryCanceled), pg.begin() as cursor:
        cursor.execute("SET LOCAL statement_timeout = 1")
        cursor.execute("SELECT pg_sleep(1)")  # an OperationalError with a SQLSTATE (57014)
    assert backend_pids(pg) == {pid}
    with pytest.raises(psycopg2.OperationalError), pg.begin() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    assert backend_pids(pg) != {pid}


def test_after_a_burst_only_keep_connections_stay_open(database_url):
    pool = Database(database_url, size=4, keep=1)
    blocks = [pool.connect() for _ in range(4)]
    pids = set()
    for block in blocks:
        cursor = block.__enter__()
        cursor.execute("SELECT pg_backend_pid()")
        pids.add(cursor.fetchone()[0])
    for block in blocks:
        block.__exit__(None, None, None)
    assert len(pids) == 4 and pool._open == 1 and len(pool._idle) == 1


def test_old_connections_are_recycled_and_dispose_closes_the_idle_ones(database_url):
    pool = Database(database_url, size=2, recycle_s=0.2)
    first = backend_pids(pool)
    assert backend_pids(pool) == first
    time.sleep(0.3)
    second = backend_pids(pool)
    assert second != first
    pool.dispose()
    assert backend_pids(pool) != second


def test_the_long_running_processes_do_not_import_sqlalchemy():
    code = (
        "import sys, app.wsgi, worker.daemon, worker.__main__; "
        "[getattr(app.wsgi, n) for n in ('vote', 'result', 'login')]; "
        "print('sqlalchemy' in sys.modules)"
    )
    env = {
        "SECRET_KEY": "x" * 32,
        "REDIS_SENTINELS": "127.0.0.1:1",
        "DATABASE_URL": "postgresql://x:y@127.0.0.1:1/votes",
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
