"""Evaluation protocols on real and demo data, shared by the benchmark and the slow tests.

Each protocol module exposes ``run(fast: bool = False) -> dict`` returning ``{"served": "hybrid",
"models": {name: metrics}}`` plus protocol-specific figures; every metrics dict carries ``ndcg@10``,
``map``, ``precision@10``, ``recall@10``, ``hr@1`` and ``train_s``, averaged over the protocol's seeds
with the spread (``<metric>_std``) next to it. ``fast=True`` trims training and seeds for tests.

The served configuration is trained by :func:`recommender.training.train_served` (the function behind
``knowledger train``), written as an artifact, loaded by :class:`~recommender.serving.ProductRanker` and
scored through it (:func:`served_results`): ``models["hybrid"]`` is the artifact's figure, next to the
same blend without its torch members (``hybrid_without_torch``), every tuned member on its own and the
protocol's baselines, all from the same run.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommender.evaluator import evaluate, evaluate_queries
from recommender.models.base import InteractionData, Recommender
from recommender.serving import ProductRanker
from recommender.training import SERVED, WITHOUT_TORCH, Candidate, train_served
from recommender.tuning import Splitter

ModelFactory = Callable[[], Recommender]
#: Metrics averaged over seeds (with their spread) in every protocol's ``models``.
MEAN_KEYS: tuple[str, ...] = ("ndcg@10", "map", "precision@10", "recall@10", "hr@10", "hr@1", "train_s")


def log(msg: str) -> None:
    """Progress goes to stderr so that benchmark stdout stays one JSON object."""
    print(msg, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Queries:
    """What a protocol asks: one row per query (a history, side features, the held-out items to find)."""

    history: sp.csr_matrix
    features: np.ndarray | None
    target: sp.csr_matrix
    item_mask: np.ndarray | None = None

    @classmethod
    def rows(
        cls,
        data: InteractionData,
        test: sp.spmatrix,
        users: np.ndarray | None = None,
        item_mask: np.ndarray | None = None,
    ) -> Queries:
        """The rows ``users`` (default: every row with a test item) of ``data`` against ``test``; the
        histories carry the data's values (ratings) where it has them."""
        test = sp.csr_matrix(test)
        if users is None:
            users = np.flatnonzero(np.diff(test.indptr) > 0)
        feats = None if data.user_features is None else np.asarray(data.user_features)[users]
        return cls(data.histories(users), feats, sp.csr_matrix(test[users]), item_mask)

    def subset(self, mask: np.ndarray) -> Queries:
        feats = None if self.features is None else self.features[mask]
        return Queries(self.history[mask], feats, self.target[mask], self.item_mask)


def score_queries(label: str, score: Any, queries: Queries, train_s: float | None = None) -> dict[str, Any]:
    """:func:`~recommender.evaluator.evaluate_queries` with ``train_s`` and a progress line."""
    res = evaluate_queries(
        score, queries.history, queries.features, queries.target, item_mask=queries.item_mask
    )
    if train_s is not None:
        res["train_s"] = train_s
    log(f"  {label}: ndcg@10={res['ndcg@10']:.4f} hr@1={res['hr@1']:.4f} map={res['map']:.4f}")
    return res


def served_results(
    label: str,
    data: InteractionData,
    queries: Queries,
    splitter: Splitter,
    candidates: Mapping[str, Candidate],
    baselines: Mapping[str, ModelFactory],
    metric: str = "ndcg@10",
    knowledge: Any = None,
    segments: Mapping[str, np.ndarray] | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Train the served configuration into an artifact, score it through the ranker, and score its
    ablation, its members and ``baselines`` on the same queries. ``segments`` (name -> boolean mask of
    the queries) adds ``<metric>_<segment>`` figures. Returns (results, selection report, the scoring
    function of every model by name)."""
    with tempfile.TemporaryDirectory() as tmp:
        path, fit = train_served(
            data,
            tmp,
            splitter,
            candidates,
            metric=metric,
            knowledge=knowledge,
            refit="all",
            log=lambda m: log(f"[{label}] {m.strip()}"),
        )
        ranker = ProductRanker.load(path)
    scorers: dict[str, Any] = {SERVED: ranker.score_batch}
    seconds: dict[str, float | None] = {SERVED: fit.seconds}
    if fit.without_torch is not None:
        scorers[WITHOUT_TORCH], seconds[WITHOUT_TORCH] = fit.without_torch.score_history, fit.seconds
    for name, model in fit.members.items():
        scorers[name], seconds[name] = model.score_history, fit.member_seconds.get(name)
    for name, make in baselines.items():
        t0 = time.perf_counter()
        model = make().fit(data)
        scorers[name], seconds[name] = model.score_history, time.perf_counter() - t0
    out: dict[str, dict[str, Any]] = {}
    for name, score in scorers.items():
        tag = f"{name} (artifact)" if name == SERVED else name
        out[name] = score_queries(f"[{label}] {tag}", score, queries, seconds[name])
        for seg, mask in (segments or {}).items():
            if mask.any():
                part = score_queries(f"[{label}] {tag} {seg}", score, queries.subset(mask))
                for key in ("ndcg@10", "hr@1", "n_users"):
                    out[name][f"{key}_{seg}"] = part[key]
    report = fit.report()
    report["artifact_model"] = ranker.metadata.model_name
    return out, report, scorers


def aggregate(
    runs: Sequence[Mapping[str, Mapping[str, Any]]], keys: Sequence[str] = MEAN_KEYS
) -> dict[str, dict[str, Any]]:
    """Mean and spread (population std) over seeds of each model's metrics, plus the per-seed values of
    the headline metrics. Models missing from a seed's run are averaged over the seeds that have them."""
    names: list[str] = []
    for run in runs:
        names += [n for n in run if n not in names]
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        rows = [run[name] for run in runs if name in run]
        entry: dict[str, Any] = {}
        for key in keys:
            vals = [float(r[key]) for r in rows if isinstance(r.get(key), (int, float))]
            if vals:
                entry[key] = float(np.mean(vals))
                entry[f"{key}_std"] = float(np.std(vals))
        entry["per_seed"] = {key: [float(r[key]) for r in rows if key in r] for key in ("ndcg@10", "hr@1")}
        entry["n_users"] = int(sum(int(r.get("n_users", 0)) for r in rows))
        entry["n_seeds"] = len(rows)
        out[name] = entry
    return out


def compare_to_singles(models: Mapping[str, Mapping[str, Any]], metric: str) -> dict[str, Any]:
    """The best single model by ``metric`` (every entry but the served blend and its ablation) and the
    served blend's margin over it (negative: behind)."""
    singles = {n: float(m[metric]) for n, m in models.items() if n not in (SERVED, WITHOUT_TORCH)}
    best = max(singles, key=lambda n: singles[n])
    served = float(models[SERVED][metric])
    return {
        "best_single_model": best,
        "served_vs_best_single": served - singles[best],
        "served_at_least_best_single": bool(served >= singles[best]),
        "torch_gain": served - float(models[WITHOUT_TORCH][metric]) if WITHOUT_TORCH in models else None,
    }


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
