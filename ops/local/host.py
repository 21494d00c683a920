"""What the local stack needs of this machine: PostgreSQL's binaries and who runs Postgres."""

from __future__ import annotations

import os
from pathlib import Path

# PostgreSQL refuses to run as root: started as root, the stack runs it as this user.
PG_USER = "postgres"


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
