"""Which polls exist and what their options are, as the worker checks votes against them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from psycopg2 import Error as PostgresError

from core.db import Database
from core.polls import store
from worker.batch import StreamVote
from worker.sink import PostgresUnavailable, describe

UNKNOWN_POLL = "unknown_poll"
UNKNOWN_OPTION = "unknown_option"


class PollCatalog:
    """The options of every poll the worker has met, loaded from Postgres on a miss.

    A poll's options never change and ids are never reused, so what is loaded stays true
    until the poll is deleted; the sink notices that (it locks each poll of a batch) and the
    daemon calls forget(). Unknown ids are asked again each time: only a deleted poll's
    late votes carry them (the vote app's script refuses votes for polls it does not know).
    """

    def __init__(self, database: Database) -> None:
        self._database = database
        self._options: dict[str, frozenset[str]] = {}

    def sort(
        self, votes: Sequence[StreamVote]
    ) -> tuple[list[StreamVote], list[tuple[StreamVote, str]]]:
        """(votes for an existing option of an existing poll, the others with why)."""
        missing = {v.vote.poll for v in votes} - self._options.keys()
        if missing:
            try:
                self._options.update(store.option_keys_of(self._database, missing))
            except PostgresError as exc:
                raise PostgresUnavailable(describe(exc)) from exc
        known: list[StreamVote] = []
        refused: list[tuple[StreamVote, str]] = []
        for item in votes:
            options = self._options.get(item.vote.poll)
            if options is None:
                refused.append((item, UNKNOWN_POLL))
            elif item.vote.option not in options:
                refused.append((item, UNKNOWN_OPTION))
            else:
                known.append(item)
        return known, refused

    def forget(self, poll_ids: Iterable[str]) -> None:
        for poll_id in poll_ids:
            self._options.pop(poll_id, None)
