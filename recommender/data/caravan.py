"""CoIL 2000 "Insurance Company Benchmark" (ISLP's ``Caravan``), read from the shared data folder.

Two uses:

* the ISLP lab's propensity model for the caravan policy (``Purchase``), reproduced exactly;
* a product-recommendation set: 5,822 customers x 21 insurance products (ownership from the ``A*``
  policy counts), with the 43 socio-demographic ``M*`` columns as user side features, the closest real
  analogue of "which insurance product next" that KnowLedger's partners ask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommender import paths
from recommender.models.base import InteractionData
from recommender.models.propensity import PortfolioColumns

CARAVAN_FILE = "insurance/caravan.csv"

#: The 21 product types; ``P<name>`` is the contribution level, ``A<name>`` the number of policies.
PRODUCTS: tuple[str, ...] = (
    "WAPART",
    "WABEDR",
    "WALAND",
    "PERSAUT",
    "BESAUT",
    "MOTSCO",
    "VRAAUT",
    "AANHANG",
    "TRACTOR",
    "WERKT",
    "BROM",
    "LEVEN",
    "PERSONG",
    "GEZONG",
    "WAOREG",
    "BRAND",
    "ZEILPL",
    "PLEZIER",
    "FIETS",
    "INBOED",
    "BYSTAND",
)

#: English names of the product types (from the CoIL 2000 data dictionary).
PRODUCT_LABELS: dict[str, str] = {
    "WAPART": "private third party insurance",
    "WABEDR": "third party insurance (firms)",
    "WALAND": "third party insurance (agriculture)",
    "PERSAUT": "car policies",
    "BESAUT": "delivery van policies",
    "MOTSCO": "motorcycle/scooter policies",
    "VRAAUT": "lorry policies",
    "AANHANG": "trailer policies",
    "TRACTOR": "tractor policies",
    "WERKT": "agricultural machines policies",
    "BROM": "moped policies",
    "LEVEN": "life insurances",
    "PERSONG": "private accident insurance",
    "GEZONG": "family accidents insurance",
    "WAOREG": "disability insurance",
    "BRAND": "fire policies",
    "ZEILPL": "surfboard policies",
    "PLEZIER": "boat policies",
    "FIETS": "bicycle policies",
    "INBOED": "property insurance",
    "BYSTAND": "social security insurance",
}


def caravan_path() -> Path:
    """``<shared data>/insurance/caravan.csv`` (``KNOWLEDGER_DATA_DIR`` overrides the data folder)."""
    return paths.data_file(CARAVAN_FILE)


@lru_cache(maxsize=1)
def _load() -> pd.DataFrame:
    frame = pd.read_csv(caravan_path())
    expected = [f"P{p}" for p in PRODUCTS] + [f"A{p}" for p in PRODUCTS] + ["Purchase"]
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        raise ValueError(f"{caravan_path()} lacks columns {missing}")
    return frame


def load_caravan() -> pd.DataFrame:
    """The 5,822 x 86 table as published (``Purchase`` is ``"Yes"``/``"No"``)."""
    return _load().copy()


def demographic_columns(frame: pd.DataFrame) -> list[str]:
    """The 43 socio-demographic ``M*`` columns."""
    return [c for c in frame.columns if c.startswith("M")]


def portfolio_columns(columns: Sequence[str]) -> PortfolioColumns:
    """The positions of the 21 products' contribution levels (``P*``) and policy counts (``A*``)
    among ``columns`` (the propensity model's portfolio summaries read them)."""
    position = {c: i for i, c in enumerate(columns)}
    missing = [c for p in PRODUCTS for c in (f"P{p}", f"A{p}") if c not in position]
    if missing:
        raise ValueError(f"columns lack the portfolio columns {missing}")
    return PortfolioColumns(
        levels=tuple(position[f"P{p}"] for p in PRODUCTS), counts=tuple(position[f"A{p}"] for p in PRODUCTS)
    )


@dataclass(frozen=True)
class CaravanProducts:
    """Ownership matrix (customers x 21 products), demographics and the product names."""

    ownership: sp.csr_matrix
    demographics: np.ndarray
    products: tuple[str, ...]


def caravan_products(frame: pd.DataFrame | None = None) -> CaravanProducts:
    """Binary ownership (``A<product> > 0``) and the ``M*`` features as floats."""
    frame = load_caravan() if frame is None else frame
    owned = (frame[[f"A{p}" for p in PRODUCTS]].to_numpy() > 0).astype(np.float32)
    demo = frame[demographic_columns(frame)].to_numpy(dtype=np.float32)
    return CaravanProducts(sp.csr_matrix(owned), demo, PRODUCTS)


@dataclass(frozen=True)
class LeaveOneOut:
    """Training data with one owned product hidden per evaluated customer, and the hidden products."""

    train: InteractionData
    test: sp.csr_matrix
    users: np.ndarray


def leave_one_product_out(
    ownership: sp.csr_matrix, features: np.ndarray, seed: int = 0, min_owned: int = 1
) -> LeaveOneOut:
    """Hide one randomly chosen owned product of every customer with at least ``min_owned`` products."""
    x = sp.csr_matrix(ownership, dtype=np.float32)
    x.eliminate_zeros()
    rng = np.random.default_rng(seed)
    counts = np.diff(x.indptr)
    users = np.flatnonzero(counts >= max(min_owned, 1))
    rows, cols = [], []
    for u in users:
        owned = x.indices[x.indptr[u] : x.indptr[u + 1]]
        rows.append(u)
        cols.append(int(rng.choice(owned)))
    test = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (np.array(rows), np.array(cols))), shape=x.shape
    )
    train_x = sp.csr_matrix(x - test)
    train_x.eliminate_zeros()
    data = InteractionData(train_x, None, np.asarray(features, dtype=np.float32), {"dataset": "caravan"})
    return LeaveOneOut(data, test, users)
