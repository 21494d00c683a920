"""Decoding a batch and keeping each voter's newest vote by stream position."""

from core.stream import Vote
from worker.batch import decode_batch, newest_per_voter


def entry(entry_id: str, voter: str, option: str, poll: str = "first") -> tuple[bytes, dict]:
    fields = Vote.new(poll, voter, option).fields()
    return entry_id.encode(), {k.encode(): v.encode() for k, v in fields.items()}


def test_newest_per_voter_goes_by_stream_position_not_by_arrival():
    batch = decode_batch(
        [
            entry("1700000000005-0", "anon:a", "cats"),
            entry("1700000000001-0", "anon:a", "dogs"),  # older, arrives later (a redelivery)
            entry("1700000000005-1", "anon:b", "dogs"),
            entry("1700000000005-2", "anon:b", "cats"),  # same millisecond, higher sequence
            entry("1700000000010-0", "anon:c", "dogs"),
        ],
    )
    newest = newest_per_voter(batch.votes)
    assert [(v.vote.voter, v.vote.option, v.entry_id) for v in newest] == [
        ("anon:a", "cats", b"1700000000005-0"),
        ("anon:b", "cats", b"1700000000005-2"),
        ("anon:c", "dogs", b"1700000000010-0"),
    ]


def test_sequence_numbers_compare_as_numbers():
    batch = decode_batch([entry("5-10", "anon:a", "cats"), entry("5-9", "anon:a", "dogs")])
    assert [v.vote.option for v in newest_per_voter(batch.votes)] == ["cats"]


def test_each_voter_has_a_newest_vote_in_each_poll():
    batch = decode_batch(
        [
            entry("1-0", "anon:a", "cats", poll="first"),
            entry("2-0", "anon:a", "tea", poll="Xy_-12345678"),
            entry("3-0", "anon:a", "dogs", poll="first"),
        ]
    )
    newest = newest_per_voter(batch.votes)
    assert [(v.vote.poll, v.vote.option) for v in newest] == [
        ("Xy_-12345678", "tea"),
        ("first", "dogs"),
    ]


def test_an_entry_from_before_polls_is_a_vote_in_the_first_poll():
    _id, fields = entry("1-0", "anon:a", "cats")
    del fields[b"poll"]
    [vote] = decode_batch([(b"1-0", fields)]).votes
    assert (vote.vote.poll, vote.vote.option) == ("first", "cats")


def test_malformed_and_deleted_entries_are_set_aside_but_still_acknowledged():
    good = entry("1-0", "anon:a", "cats")
    bad_option = entry("2-0", "anon:b", "Fish!")
    garbage = (b"3-0", {b"hello": b"world"})
    deleted = (b"4-0", None)
    bad_poll = entry("5-0", "anon:c", "cats", poll="no/such")
    batch = decode_batch([good, bad_option, garbage, deleted, bad_poll])
    assert [v.entry_id for v in batch.votes] == [b"1-0"]
    assert [(r.entry_id, r.reason) for r in batch.malformed] == [
        (b"2-0", "missing or malformed option 'Fish!'"),
        (b"3-0", "missing or malformed vote_id"),
        (b"5-0", "malformed poll"),
    ]
    assert batch.ids == (b"1-0", b"2-0", b"3-0", b"4-0", b"5-0")
    assert len(batch) == 5
