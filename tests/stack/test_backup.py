"""Backups: a backup taken from the live stack restores the database; a damaged one is refused."""

from __future__ import annotations

import time

import pytest

from ops.voter import Voter
from ops.wait import wait_for

pytestmark = [pytest.mark.stack]


def app_query(stack, sql: str, *params):
    return stack.sql(sql, *params, database="votes")


def cast_vote(stack, option: str = "dogs") -> str:
    """Vote through HAProxy as a new voter; return the voter id."""
    reply = Voter(stack.urls["web"], verify=stack.verify).vote(option)
    assert reply.status_code == 202, reply.text
    return reply.json()["voter"]


def wait_counted(stack, voter: str, timeout: float = 15) -> None:
    wait_for(
        lambda: app_query(stack, "SELECT 1 FROM votes WHERE voter_id = %s", voter),
        f"the vote of {voter} to be counted",
        timeout,
        0.2,
    )


def test_backup_then_restore_brings_the_data_back(stack, tmp_path):
    cast_vote(stack)  # the stream key exists in Redis, so the RDB must hold it
    marker = f"backup-probe-{time.time_ns()}"
    app_query(stack, "INSERT INTO accounts (username, password_hash) VALUES (%s, 'x')", marker)
    taken = stack.votectl("backup", "--dest", str(tmp_path))
    backup_dir = taken.stdout.strip().rsplit(" ", 1)[-1]
    assert (tmp_path / backup_dir.rsplit("/", 1)[-1] / "manifest.json").exists()
    assert b"votes" in (tmp_path / backup_dir.rsplit("/", 1)[-1] / "redis.rdb").read_bytes()

    app_query(stack, "DELETE FROM accounts WHERE username = %s", marker)
    app_query(stack, "INSERT INTO accounts (username, password_hash) VALUES ('after-backup', 'x')")
    stack.votectl("restore", backup_dir, "--yes")
    names = {row[0] for row in app_query(stack, "SELECT username FROM accounts")}
    assert marker in names and "after-backup" not in names
    # The restored schema still belongs to the app: new votes are counted again.
    wait_counted(stack, cast_vote(stack, "cats"))


def test_a_damaged_backup_is_refused_and_the_database_untouched(stack, tmp_path):
    backup_dir = stack.votectl("backup", "--dest", str(tmp_path)).stdout.strip().rsplit(" ", 1)[-1]
    marker = f"kept-{time.time_ns()}"
    app_query(stack, "INSERT INTO accounts (username, password_hash) VALUES (%s, 'x')", marker)
    dump = f"{backup_dir}/votes.dump"
    with open(dump, "r+b") as handle:
        handle.seek(100)
        handle.write(b"\0garbage\0")
    result = stack.votectl("restore", backup_dir, "--yes", check=False)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "checksum" in result.stderr
    assert app_query(stack, "SELECT 1 FROM accounts WHERE username = %s", marker) == [(1,)]
