"""The validated dataset and the error that lists everything wrong with a candidate one.

A :class:`KnowledgeDataset` holds the five tables of :mod:`.schema` in canonical form; it is only ever
built by :mod:`.loader` (from files or in-memory frames) after :mod:`.validation` found nothing wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recommender.data.schema import TABLE_NAMES


class DatasetError(ValueError):
    """A dataset failed validation. ``problems`` lists the (capped) messages; ``total`` counts them all."""

    def __init__(self, problems: list[str], total: int | None = None, where: str = "") -> None:
        self.problems = list(problems)
        self.total = len(self.problems) if total is None else total
        head = f"{self.total} problem{'s' if self.total != 1 else ''}"
        head += f" in dataset {where}:" if where else ":"
        lines = [head, *("  " + p for p in self.problems)]
        if self.total > len(self.problems):
            lines.append(f"  ... and {self.total - len(self.problems)} more")
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class KnowledgeDataset:
    """The five validated tables, with canonical column order and dtypes.

    Strings are ``str``, integers ``int64`` (``Int64`` when optional), floats ``float64`` and timestamps
    ``datetime64[ns, UTC]``. Optional columns absent from the file are present here and empty.
    """

    users: pd.DataFrame
    items: pd.DataFrame
    interactions: pd.DataFrame
    products: pd.DataFrame
    conversions: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        """Tables by schema name, in load order."""
        return {name: getattr(self, name) for name in TABLE_NAMES}

    def item_texts(self) -> list[str]:
        """``title. description`` per item (the text the knowledge space is fitted on)."""
        return _texts(self.items["title"], self.items["description"])

    def product_texts(self) -> list[str]:
        """``name. description`` per product."""
        return _texts(self.products["name"], self.products["description"])


def _texts(titles: pd.Series, descriptions: pd.Series) -> list[str]:
    out = []
    for title, desc in zip(titles.tolist(), descriptions.tolist(), strict=True):
        desc_s = "" if desc is None or (isinstance(desc, float) and np.isnan(desc)) else str(desc)
        out.append(f"{title}. {desc_s}".strip() if desc_s else str(title))
    return out
