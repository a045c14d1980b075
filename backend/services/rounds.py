"""Settlement and indexing rounds on the operator's demand (the workers also run them on their own, in the
leading process). Any process may run one: each round holds its worker's round lock, so it waits for a
round of the same worker running elsewhere instead of overlapping it."""

from __future__ import annotations

from sqlalchemy.engine import Engine

from backend.schemas.ops import IndexRound, SettleRound
from backend.services.indexer import Indexer
from backend.services.outbox import counts
from backend.services.settlement import Settler


class Rounds:
    def __init__(self, engine: Engine, settler: Settler, indexer: Indexer) -> None:
        self._engine = engine
        self._settler = settler
        self._indexer = indexer

    def settle(self) -> SettleRound:
        """One settlement round now, then an indexing round so the statement shows its transactions."""
        stats = self._settler.round()
        self._indexer.round()
        return SettleRound(round=stats, outbox=counts(self._engine), last_error=self._settler.last_error)

    def index(self) -> IndexRound:
        added = self._indexer.round()
        return IndexRound(added=added, next_block=self._indexer.cursor())
