"""The served model: one slot holding the loaded ranker, read by every request that ranks."""

from __future__ import annotations

from recommender.serving import ProductRanker


class ModelSlot:
    """Holds the ranker the service serves (None until a model is trained). Replacing it is one reference
    assignment, so a request sees either the old model or the new one, never a mix."""

    def __init__(self, ranker: ProductRanker | None) -> None:
        self.ranker = ranker

    @property
    def version(self) -> str | None:
        ranker = self.ranker
        return None if ranker is None else ranker.metadata.version
