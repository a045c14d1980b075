"""Evaluation protocols on real and demo data, shared by the benchmark and the slow tests.

Each protocol module exposes ``run(fast: bool = False) -> dict`` returning ``{"models": {name:
metrics}}`` plus protocol-specific figures; every metrics dict carries ``ndcg@10``, ``map``,
``precision@10``, ``recall@10`` and ``train_s``. ``fast=True`` trims training (fewer epochs, smaller
grids) for tests; the benchmark uses the full settings.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommender.evaluator import evaluate
from recommender.models.base import InteractionData, Recommender

ModelFactory = Callable[[], Recommender]


def log(msg: str) -> None:
    """Progress goes to stderr so that benchmark stdout stays one JSON object."""
    print(msg, file=sys.stderr, flush=True)


def fit_evaluate(
    label: str,
    make: ModelFactory,
    train: InteractionData,
    test: sp.spmatrix,
    users: np.ndarray | None = None,
    item_mask: np.ndarray | None = None,
    k: int = 10,
) -> dict[str, Any]:
    """Fit a fresh model, evaluate it and add ``train_s`` (wall seconds of ``fit``)."""
    t0 = time.perf_counter()
    model = make().fit(train)
    train_s = time.perf_counter() - t0
    result = evaluate(model, train, test, k=k, users=users, item_mask=item_mask)
    result["train_s"] = train_s
    log(
        f"  {label}: ndcg@{k}={result[f'ndcg@{k}']:.4f} map={result['map']:.4f} "
        f"p@{k}={result[f'precision@{k}']:.4f} r@{k}={result[f'recall@{k}']:.4f} ({train_s:.1f}s)"
    )
    return result
