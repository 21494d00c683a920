"""The Sentinel-managed client follows a switchover by itself (own master, replica, Sentinel)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from core.config import Config
from core.redis_client import master_client
from tests.servers import RedisCluster, redis_cluster, wait_for


@pytest.fixture
def cluster() -> Iterator[RedisCluster]:
    """Its own servers: this test moves the master, which the shared ones must never see."""
    with redis_cluster() as fresh:
        yield fresh


def config_for(cluster: RedisCluster, app_env: dict[str, str]) -> Config:
    return Config.from_env(
        {
            **app_env,
            "REDIS_SENTINELS": f"127.0.0.1:{cluster.sentinel_port}",
            "REDIS_PASSWORD": cluster.password,
            "SENTINEL_PASSWORD": cluster.password,
        }
    )


def test_a_pooled_connection_to_a_demoted_master_follows_sentinel(cluster, app_env):
    client = master_client(config_for(cluster, app_env))
    sentinel = redis.Redis(port=cluster.sentinel_port, password=cluster.password)
    old = cluster.client()
    client.set("before", "1")  # a pooled connection to the current master
    # NOGOODSLAVE until Sentinel has seen the replica answer for a while: keep asking.
    wait_for(
        lambda: sentinel.execute_command("SENTINEL FAILOVER", "mymaster"),
        "Sentinel to accept the failover",
        20,
    )
    wait_for(
        lambda: sentinel.sentinel_master("mymaster")["port"] == cluster.replica_port,
        "the failover to end",
        20,
    )
    # Demote the old master without closing its clients: they only learn from READONLY.
    old.replicaof("127.0.0.1", cluster.replica_port)

    started = time.monotonic()
    client.set("after", "2")
    elapsed = time.monotonic() - started

    assert cluster.client(cluster.replica_port).get("after") == b"2"
    # Well inside the client's retry budget: it asked Sentinel instead of retrying the old
    # address until the budget ran out (redis-py 8.1 alone does the latter).
    assert elapsed < 2
    client.connection_pool.disconnect()
