"""The worker's Prometheus metrics, in a registry of its own (several workers per test process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class WorkerMetrics:
    """Counters, a batch-time histogram and stream gauges, exported by start_http_server."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.applied = Counter(
            "vote_worker_votes_applied", "Votes that changed a voter's row", registry=r
        )
        self.stale = Counter(
            "vote_worker_votes_stale",
            "Entries acknowledged without a change (superseded or older than"
            " the stored vote, e.g. a redelivery)",
            registry=r,
        )
        self.batches = Counter(
            "vote_worker_batches", "Batches committed and acknowledged", registry=r
        )
        self.batch_seconds = Histogram(
            "vote_worker_batch_seconds",
            "Time to apply and acknowledge one batch",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.dead_lettered = Counter(
            "vote_worker_dead_lettered",
            "Entries moved to the dead-letter stream",
            ["reason"],
            registry=r,
        )
        self.redelivered = Counter(
            "vote_worker_redelivered",
            "Entries read again: own pending list on start, or claimed from an idle consumer",
            ["source"],
            registry=r,
        )
        self.outages = Counter(
            "vote_worker_outages",
            "Times Redis or Postgres became unavailable",
            ["service"],
            registry=r,
        )
        self.stream_length = Gauge(
            "vote_worker_stream_length", "Entries in the vote stream (XLEN)", registry=r
        )
        self.pending = Gauge(
            "vote_worker_pending_entries",
            "Entries delivered to the group but not yet acknowledged",
            registry=r,
        )
        self.lag = Gauge(
            "vote_worker_lag_entries", "Entries not yet delivered to the group", registry=r
        )
