"""A web app's clients, one set per process: Sentinel, a Redis master client, two Postgres pools."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app
from redis.client import Redis
from redis.sentinel import Sentinel

from core.config import Config
from core.db import Database, make_databases
from core.redis_client import make_sentinel, master_client

EXTENSION = "ha_vote"


@dataclass
class Resources:
    """Everything a request may reach, created once in create_app and shared by all threads."""

    config: Config
    sentinel: Sentinel
    redis: Redis
    rw: Database
    ro: Database

    def close(self) -> None:
        """Close every connection (for tests and orderly shutdowns; requests reconnect)."""
        self.redis.connection_pool.disconnect()
        for node in self.sentinel.sentinels:
            node.connection_pool.disconnect()
        self.rw.dispose()
        if self.ro is not self.rw:
            self.ro.dispose()


def init_app(app: Flask, config: Config) -> Resources:
    """Create the clients (no I/O happens until a request needs them) and attach them to app."""
    sentinel = make_sentinel(config)
    rw, ro = make_databases(config)
    resources = Resources(config, sentinel, master_client(config, sentinel), rw, ro)
    app.extensions[EXTENSION] = resources
    return resources


def get_resources() -> Resources:
    """The current app's clients."""
    return current_app.extensions[EXTENSION]


def get_config() -> Config:
    """The current app's settings."""
    return get_resources().config
