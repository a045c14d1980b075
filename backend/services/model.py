"""The served model: one slot holding the loaded ranker and the profile builder it was trained with.

Both are replaced together, by one reference assignment, so a request sees either the old model or the new
one, never a mix of the two."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recommender.profiles import ProfileBuilder
from recommender.serving import ProductRanker


@dataclass(frozen=True)
class ServedModel:
    ranker: ProductRanker
    #: Turns course events into profiles in the model's topic space (None for an artifact without one).
    profiles: ProfileBuilder | None = None
    path: Path | None = None


class ModelSlot:
    def __init__(self, served: ServedModel | None) -> None:
        self._served = served

    @property
    def served(self) -> ServedModel | None:
        return self._served

    @property
    def ranker(self) -> ProductRanker | None:
        served = self._served
        return None if served is None else served.ranker

    @property
    def profiles(self) -> ProfileBuilder | None:
        served = self._served
        return None if served is None else served.profiles

    @property
    def version(self) -> str | None:
        ranker = self.ranker
        return None if ranker is None else ranker.metadata.version

    def swap(self, served: ServedModel) -> ServedModel | None:
        """Serve ``served`` from the next request on; returns what was served before."""
        previous, self._served = self._served, served
        return previous
