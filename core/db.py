"""SQLAlchemy engines: read-write via HAProxy's leader port, read-only via its replica port."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine

from core.config import Config


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """An engine whose connections fail fast and are checked before use (failover drops them)."""
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=5,
        pool_pre_ping=True,
        pool_recycle=300,
        connect_args={
            "connect_timeout": 2,
            "application_name": "ha-vote",
            # Keepalives below HAProxy's and Swarm's idle limits keep pooled sessions alive.
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        },
    )


def make_engines(config: Config) -> tuple[Engine, Engine]:
    """The (read-write, read-only) pair; one shared engine when both URLs are the same."""
    rw = make_engine(config.database_url)
    ro = (
        rw if config.database_ro_url == config.database_url else make_engine(config.database_ro_url)
    )
    return rw, ro
