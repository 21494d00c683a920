"""Postgres for the long-running processes: psycopg2 connection pools, read-write via HAProxy's
leader port, read-only via its replica port.

The apps and workers run a few fixed statements, so they use the driver directly: SQLAlchemy
(still used by the migrations and `votectl`) costs each of these eight processes ~13 MiB of
imported code (docs/BENCHMARKS.md, "Memory of the idle stack"). The pool keeps what the
SQLAlchemy pool gave them:

- a connection is made in the thread that needs it, with a 2 s connect timeout, so a request
  fails fast (and the app answers 503 or falls back) while Postgres has no leader, instead of
  waiting on a pool that is reconnecting in the background;
- a pooled connection is pinged before use and replaced if dead (a failover closes them all),
  and recycled after RECYCLE_S (5 min);
- at most `size` connections, of which `keep` stay open when idle; a request waits up to
  POOL_WAIT_S for a busy one, then gets PoolExhausted (each pool is sized for its
  process's threads: a stuck database);
- a connection is dropped after a lost link (no SQLSTATE, class 08, 57P), kept after a
  deadlock, serialization failure or statement timeout.

Inside `connect()`/`begin()` a block gets a cursor whose rows are named tuples; `begin()`
commits at the end of the block (rolls back on error), `connect()` is for reads and always
rolls back. The pool is written here (~90 lines): psycopg2's own pools connect eagerly and
close every connection above their minimum, and psycopg_pool connects in a background thread
(a request would wait out its timeout instead of failing fast) and imports psycopg 3 (+5 MiB).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import psycopg2
import psycopg2.extensions
from psycopg2.extras import NamedTupleCursor

from core.config import Config, libpq_url

# Keepalives below HAProxy's and Swarm's idle limits keep pooled sessions alive.
CONNECT_ARGS = {
    "connect_timeout": 2,
    "application_name": "ha-vote",
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}
RECYCLE_S = 300.0
DEFAULT_SIZE = 10
# Idle connections kept for the next request; more are closed when they come back (after a
# burst the pool shrinks to this, as SQLAlchemy's pool_size=5 + max_overflow=5 did).
DEFAULT_KEEP = 5
# How long a request waits for a busy pool (each is sized for its process's threads).
POOL_WAIT_S = 5.0


class PoolExhausted(psycopg2.OperationalError):
    """Every connection of the pool stayed in use for the pool's `wait_s`."""


@dataclass
class _Pooled:
    conn: psycopg2.extensions.connection
    born: float
    generation: int


class Database:
    """A small pool of psycopg2 connections to one URL (see the module's docstring)."""

    def __init__(
        self,
        url: str,
        *,
        size: int = DEFAULT_SIZE,
        keep: int = DEFAULT_KEEP,
        wait_s: float = POOL_WAIT_S,
        recycle_s: float = RECYCLE_S,
    ) -> None:
        self.size = size
        self.keep = keep
        self.wait_s = wait_s
        self.recycle_s = recycle_s
        self._dsn = libpq_url(url)
        self._ready = threading.Condition()
        self._idle: list[_Pooled] = []
        self._open = 0
        self._generation = 0

    def _checkout(self) -> _Pooled:
        while True:
            with self._ready:
                if not self._ready.wait_for(
                    lambda: self._idle or self._open < self.size, timeout=self.wait_s
                ):
                    raise PoolExhausted(f"all {self.size} connections busy for {self.wait_s} s")
                if not self._idle:
                    self._open += 1
                    generation = self._generation
                    break
                pooled = self._idle.pop()
            if time.monotonic() - pooled.born < self.recycle_s and _alive(pooled.conn):
                return pooled
            self._close(pooled.conn)
        # A new connection, made in this thread: a failure surfaces here, at once.
        try:
            conn = psycopg2.connect(self._dsn, **CONNECT_ARGS)
        except BaseException:
            with self._ready:
                self._open -= 1
                self._ready.notify()
            raise
        return _Pooled(conn, time.monotonic(), generation)

    def _close(self, conn: psycopg2.extensions.connection) -> None:
        try:
            conn.close()
        finally:
            with self._ready:
                self._open -= 1
                self._ready.notify()

    def _checkin(self, pooled: _Pooled, error: BaseException | None) -> None:
        conn = pooled.conn
        broken = _unusable(conn) or (error is not None and _lost_link(error))
        if error is not None and not broken:
            with suppress(psycopg2.Error):
                conn.rollback()
            broken = _unusable(conn)
        if broken:
            self._close(conn)
            return
        with self._ready:
            if pooled.generation == self._generation and len(self._idle) < self.keep:
                self._idle.append(pooled)
                self._ready.notify()
                return
        self._close(conn)

    @contextmanager
    def _cursor(self, commit: bool) -> Iterator[NamedTupleCursor]:
        pooled = self._checkout()
        try:
            with pooled.conn.cursor(cursor_factory=NamedTupleCursor) as cursor:
                yield cursor
            if commit:
                pooled.conn.commit()
            else:
                pooled.conn.rollback()
        except BaseException as exc:
            self._checkin(pooled, exc)
            raise
        self._checkin(pooled, None)

    def begin(self):
        """A transaction: committed when the block ends, rolled back if it raises."""
        return self._cursor(commit=True)

    def connect(self):
        """Reads: the block's transaction is rolled back at its end."""
        return self._cursor(commit=False)

    def dispose(self) -> None:
        """Close the idle connections; those in use are closed when they come back (after a
        failover every one of them points at the old leader)."""
        with self._ready:
            idle, self._idle = self._idle, []
            self._generation += 1
        for pooled in idle:
            self._close(pooled.conn)


def _alive(conn: psycopg2.extensions.connection) -> bool:
    """One round trip that proves the connection still reaches a server (SQLAlchemy's
    pre-ping); in autocommit, so no BEGIN and ROLLBACK around it."""
    if conn.closed:
        return False
    try:
        conn.autocommit = True
        try:
            with conn.cursor() as cursor:
                cursor.execute("SELECT 1")
        finally:
            conn.autocommit = False
        return True
    except psycopg2.Error:
        return False


def _lost_link(exc: BaseException) -> bool:
    """Whether `exc` means the link to the server is gone. A deadlock, serialization failure
    or statement timeout is an OperationalError with a SQLSTATE on a healthy connection."""
    if isinstance(exc, psycopg2.InterfaceError):
        return True
    return isinstance(exc, psycopg2.OperationalError) and (
        exc.pgcode is None or exc.pgcode.startswith(("08", "57P"))  # connection, shutdown
    )


def _unusable(conn: psycopg2.extensions.connection) -> bool:
    """Closed, or in a state psycopg2 cannot tell (the link failed mid-command)."""
    return bool(conn.closed) or (
        conn.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_UNKNOWN
    )


def make_databases(config: Config) -> tuple[Database, Database]:
    """The (read-write, read-only) pair; one shared pool when both URLs are the same."""
    rw = Database(config.database_url)
    ro = rw if config.database_ro_url == config.database_url else Database(config.database_ro_url)
    return rw, ro
