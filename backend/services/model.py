"""The served model: one slot holding the loaded ranker, the profile builder it was trained with, and the maps
from the catalogue to its rows.

All of it is replaced together, by one reference assignment, so a request that takes :attr:`ModelSlot.served`
once sees one model from its start to its answer, never a mix of two: its ranker, its topic space, its
product and course rows. A promotion swaps the slot between two requests, never inside one."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from recommender.profiles import ProfileBuilder
from recommender.serving import ProductRanker


@dataclass(frozen=True)
class ServedModel:
    ranker: ProductRanker
    #: Turns course events into profiles in the model's topic space (None for an artifact without one).
    profiles: ProfileBuilder | None = None
    path: Path | None = None

    @property
    def version(self) -> str:
        return self.ranker.metadata.version

    @cached_property
    def product_ids(self) -> list[str]:
        return list(self.ranker.product_ids)

    @cached_property
    def course_ids(self) -> list[str] | None:
        """Course ids in the order of the model's topic space; None for an artifact without a profile
        builder (then the catalogue's stored positions are the rows, see :class:`Directory`)."""
        return None if self.profiles is None else list(self.profiles.item_ids)

    @cached_property
    def product_index(self) -> dict[str, int]:
        """Product id → its row in this model."""
        return {pid: i for i, pid in enumerate(self.product_ids)}

    @cached_property
    def course_index(self) -> dict[str, int] | None:
        """Course id → its row in this model's topic space (None: see :attr:`course_ids`)."""
        ids = self.course_ids
        return None if ids is None else {cid: i for i, cid in enumerate(ids)}


class ModelSlot:
    def __init__(self, served: ServedModel | None) -> None:
        self._served = served

    @property
    def served(self) -> ServedModel | None:
        """The served model: take it once per request and use only that."""
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
        served = self._served
        return None if served is None else served.version

    def swap(self, served: ServedModel) -> ServedModel | None:
        """Serve ``served`` from the next request on; returns what was served before."""
        previous, self._served = self._served, served
        return previous
