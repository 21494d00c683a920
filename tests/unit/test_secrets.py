"""`votectl secrets init`: every secret once, private, never changed; a marked self-signed cert."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

from ops import secrets

VOTECTL = str(Path(sys.executable).parent / "votectl")


def test_init_creates_private_files_once_and_keeps_them(tmp_path):
    target = tmp_path / "secrets"
    first = subprocess.run(
        [VOTECTL, "secrets", "init", "--dir", str(target)], capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr
    assert "self-signed" in first.stdout
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    files = sorted(target.iterdir())
    assert {p.name for p in files} == {*secrets.PASSWORDS, secrets.TLS_PEM, secrets.TLS_CERT}
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
    before = {p.name: p.read_bytes() for p in files}
    (target / "redis-vote").unlink()

    subprocess.run(
        [VOTECTL, "secrets", "init", "--dir", str(target)], check=True, capture_output=True
    )

    after = {p.name: p.read_bytes() for p in target.iterdir()}
    assert after.keys() == before.keys()
    assert after["redis-vote"] != before["redis-vote"]
    assert {k: v for k, v in after.items() if k != "redis-vote"} == {
        k: v for k, v in before.items() if k != "redis-vote"
    }
    assert len(set(secrets.load(target).values())) == len(secrets.PASSWORDS)


def test_a_real_certificate_is_never_replaced(tmp_path):
    pem, _ = secrets.self_signed_pem(["vote.example.org"])  # stands in for a bought one
    target = tmp_path / "s"
    target.mkdir()
    (target / secrets.TLS_PEM).write_bytes(pem)
    secrets.ensure(target)
    assert (target / secrets.TLS_PEM).read_bytes() == pem
