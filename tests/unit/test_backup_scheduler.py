"""The backup scheduler survives what it cannot control and says how old the newest backup is."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from ops import backup, backup_schedule
from ops.deployment import Deployment
from tests.servers import free_port


def unreachable(tmp_path: Path) -> Deployment:
    """A deployment whose only Sentinel is a port nothing listens on."""
    return Deployment(
        sentinels=(("127.0.0.1", free_port()),),
        backup_url="postgresql+psycopg2://backup:x@127.0.0.1:1/votes",
        backup_dir=tmp_path,
    )


def test_an_unreachable_sentinel_fails_one_backup_not_the_scheduler(tmp_path, caplog):
    target = unreachable(tmp_path)
    scheduler = backup_schedule.Scheduler(
        lambda: backup.take(backup.source_of(target), tmp_path), 3600, 24, tmp_path
    )
    caplog.set_level(logging.ERROR, logger="ops.backup")

    scheduler.run_cycle()
    scheduler.run_cycle()

    assert scheduler.metrics.failures._value.get() == 2
    assert scheduler.metrics.last_success._value.get() == 0
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["backup failed"] * 2
    assert "cannot find the Redis master through Sentinel" in caplog.records[0].getMessage()


def test_the_newest_backup_on_disk_is_reported_at_start(tmp_path):
    (tmp_path / "20261101T120000Z").mkdir()
    (tmp_path / "20261102T080000Z").mkdir()
    (tmp_path / ".20261103T000000Z.partial").mkdir()  # never finished: does not count

    scheduler = backup_schedule.Scheduler(lambda: tmp_path, 3600, 24, tmp_path)

    assert scheduler.metrics.last_success._value.get() == 1793606400.0  # 2026-11-02T08:00Z


def test_a_failed_child_is_one_failure_named_by_its_last_error_line(tmp_path, caplog):
    fail = (
        "import sys; print('working', file=sys.stderr); "
        "print('error: the dump failed', file=sys.stderr); sys.exit(1)"
    )
    child = backup_schedule.Child([sys.executable, "-c", fail], tmp_path)
    scheduler = backup_schedule.Scheduler(child, 3600, 24, tmp_path)
    caplog.set_level(logging.ERROR, logger="ops.backup")

    scheduler.run_cycle()

    assert scheduler.metrics.failures._value.get() == 1
    assert caplog.records[0].getMessage().startswith("backup failed: error: the dump failed")


def test_a_child_that_writes_a_backup_is_a_success_and_old_ones_are_pruned(tmp_path):
    for stamp in ("20261101T120000Z", "20261102T080000Z"):
        (tmp_path / stamp).mkdir()
    write = f"import os; os.mkdir({str(tmp_path / '20261103T090000Z')!r})"
    child = backup_schedule.Child([sys.executable, "-c", write], tmp_path)
    scheduler = backup_schedule.Scheduler(child, 3600, 2, tmp_path)

    scheduler.run_cycle()

    assert [p.name for p in backup_schedule.complete_backups(tmp_path)] == [
        "20261102T080000Z",
        "20261103T090000Z",
    ]
    assert scheduler.metrics.last_success._value.get() == 1793696400.0  # 2026-11-03T09:00Z


def test_the_scheduler_process_imports_nothing_a_backup_needs():
    """It sleeps for an hour between backups: it must stay small (ops/backup_schedule.py)."""
    probe = (
        "import sys, ops.backup_schedule; "
        "print(sorted(m for m in ('sqlalchemy', 'redis', 'click', 'flask') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=30
    )

    assert done.stdout.strip() == "[]"
