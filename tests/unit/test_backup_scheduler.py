"""The backup scheduler survives what it cannot control and says how old the newest backup is."""

from __future__ import annotations

import logging
from pathlib import Path

from ops import backup
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
    scheduler = backup.Scheduler(
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

    scheduler = backup.Scheduler(lambda: tmp_path, 3600, 24, tmp_path)

    assert scheduler.metrics.last_success._value.get() == 1793606400.0  # 2026-11-02T08:00Z
