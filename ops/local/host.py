"""What the local stack needs of this machine: PostgreSQL's binaries and the user it runs as."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

# Started as root, the whole stack runs as this unprivileged system user (PostgreSQL refuses
# to run as root, and nothing else needs root either); otherwise as the user who started it.
RUN_USER = "ha-vote"


class HostError(Exception):
    """This machine lacks something the local stack needs; the message says what to do."""


def pg_bindir() -> Path:
    """PostgreSQL's server binaries (Debian layout, 15 preferred)."""
    for candidate in [
        Path("/usr/lib/postgresql/15/bin"),
        *sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True),
    ]:
        if (candidate / "postgres").exists():
            return candidate
    raise FileNotFoundError(
        "PostgreSQL server binaries not found under /usr/lib/postgresql "
        "(install postgresql-15: ./dev bootstrap)"
    )


def runs_as_root() -> bool:
    return os.geteuid() == 0


def run_user() -> pwd.struct_passwd | None:
    """The account the stack's processes run as when we are root (created if missing), else
    None: they run as the current user."""
    if not runs_as_root():
        return None
    try:
        return pwd.getpwnam(RUN_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    result = subprocess.run(
        [
            useradd,
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            "--comment",
            "ha-vote local stack",
            RUN_USER,
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise HostError(f"cannot create the user {RUN_USER}: {result.stderr.strip()}")
    return pwd.getpwnam(RUN_USER)


def chown_tree(path: Path, user: pwd.struct_passwd) -> None:
    """Give `path` and everything below it to `user`."""
    for root, dirs, files in os.walk(path):
        os.chown(root, user.pw_uid, user.pw_gid)
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), user.pw_uid, user.pw_gid, follow_symlinks=False)
