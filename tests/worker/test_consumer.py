"""The Redis side: dead letters travel with their XACK; trimming spares unfinished entries."""

from __future__ import annotations

from core.stream import DEAD_LETTER, GROUP, STREAM
from worker.batch import Rejected
from worker.consumer import ConsumerGroup


def fill(client, n: int) -> list[bytes]:
    return [client.xadd(STREAM, {"n": str(i)}) for i in range(n)]


def ids(client) -> list[bytes]:
    return [entry_id for entry_id, _ in client.xrange(STREAM)]


def test_trim_keeps_pending_and_undelivered_entries_and_drops_acknowledged_ones(rclient):
    group = ConsumerGroup(rclient, "w1")
    group.ensure()
    added = fill(rclient, 10)
    read = group.read(">", 6)
    group.settle([i for i, _ in read[:3]] + [read[5][0]], [])  # 4th and 5th stay pending
    added += fill(rclient, 4)  # never delivered
    stats = group.trim()
    assert ids(rclient) == added[3:]  # from the oldest pending entry on; acked 6th stays
    assert stats.min_id == added[3].decode()
    assert (stats.length, stats.pending, stats.lag) == (11, 2, 8)
    group.settle([added[3], added[4]], [])
    group.trim()
    assert ids(rclient) == added[6:]  # nothing pending: up to the last delivered entry


def test_trim_respects_every_consumer_group(rclient):
    group = ConsumerGroup(rclient, "w1")
    group.ensure()
    rclient.xgroup_create(STREAM, "audit", id="0")
    added = fill(rclient, 5)
    group.settle([i for i, _ in group.read(">", 5)], [])
    group.trim()
    assert ids(rclient) == added  # the audit group has not read any of them


def test_dead_letter_keeps_the_fields_the_reason_and_the_original_id(rclient):
    group = ConsumerGroup(rclient, "w1")
    group.ensure()
    bad_id = rclient.xadd(STREAM, {"voter": "anon:x", "option": "fish"})
    good_id = rclient.xadd(STREAM, {"voter": "anon:y", "option": "cats"})
    (_, fields), _ = group.read(">", 2)
    group.settle([good_id], [Rejected(bad_id, fields, "unknown option 'fish'")])
    [(_, dead)] = rclient.xrange(DEAD_LETTER)
    assert dead == {
        b"voter": b"anon:x",
        b"option": b"fish",
        b"reason": b"unknown option 'fish'",
        b"original_id": bad_id,
        b"consumer": b"w1",
    }
    assert rclient.xpending(STREAM, GROUP)["pending"] == 0


def test_claim_takes_over_idle_entries_and_counts_deliveries(rclient):
    dead_worker, me = ConsumerGroup(rclient, "dead"), ConsumerGroup(rclient, "me")
    dead_worker.ensure()
    added = fill(rclient, 3)
    dead_worker.read(">", 3)
    cursor, claimed, _ = me.claim(0, "0-0", 10)
    assert [i for i, _ in claimed] == added
    assert cursor == b"0-0"
    assert me.deliveries(added[0]) == 2
    assert rclient.xpending(STREAM, GROUP)["consumers"] == [{"name": b"me", "pending": 3}]
