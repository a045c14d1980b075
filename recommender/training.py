"""Train the served model: tune every candidate on validation, blend them per route, save the artifact.

:func:`fit_served` is the one training path of the served configuration, used by ``knowledger train``
(through the service's seeding code) and by every benchmark protocol, so what the benchmark measures
is what the service loads. For any :class:`InteractionData`:

1. a splitter (:mod:`recommender.tuning`) carves validation folds out of the data;
2. every candidate family is tuned on them by grid search (:func:`~recommender.tuning.grid_search`);
3. the weights of a :class:`~recommender.models.ensemble.RoutedBlend` are chosen on the same folds,
   separately for users with a history and users without one; a member can get weight 0, so the
   blend can be a single model;
4. every candidate is refitted on all the data with its settings; the blend keeps the weighted ones.

The same weights are also chosen without the torch candidates: that blend is the ablation the benchmark
reports next to the served one (``without_torch``). :func:`default_candidates` proposes the candidate
families and grids from the data's shape; callers may pass their own.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from recommender.models.base import InteractionData, Recommender
from recommender.models.denoising import DenoisingNet
from recommender.models.ease import DLAE, EXACT_MAX_ITEMS
from recommender.models.ensemble import RoutedBlend
from recommender.models.logistic import ItemLogistic
from recommender.models.popularity import Popularity
from recommender.models.ridge_map import RidgeMap
from recommender.tuning import BlendChoice, GridResult, ModelFactory, Splitter, blend_weights, grid_search

Task = Literal["warm", "cold", "mixed", "next"]

#: The name of the served configuration in reports and benchmark output (its registered model name).
SERVED = "hybrid"
#: The ablation: the served configuration chosen without its torch members.
WITHOUT_TORCH = "hybrid_without_torch"


@dataclass(frozen=True)
class Candidate:
    """A model family: a factory, the settings to try (keyword arguments) and whether it is torch."""

    make: ModelFactory
    grid: tuple[dict[str, Any], ...] = ({},)
    torch: bool = False


def default_candidates(
    data: InteractionData, task: Task, epochs: int | None = None, torch: bool | None = None
) -> dict[str, Candidate]:
    """Candidate families for ``data``, listed from the preferred one on.

    ``task``: ``"warm"`` (users with a history find the rest of it), ``"cold"`` (users without one are
    scored from features), ``"mixed"`` (both) or ``"next"`` (one held item is hidden). ``epochs``
    overrides the torch network's training length. ``torch=None`` includes the torch network up to
    :data:`~recommender.models.ease.EXACT_MAX_ITEMS` items, and beyond only when a GPU is present (its
    softmax over the whole catalogue is what makes it slow on a CPU at that size).
    """
    if torch is None:
        torch = data.n_items <= EXACT_MAX_ITEMS or _cuda_available()
    has_features = data.user_features is not None
    out: dict[str, Candidate] = {}
    if task != "cold":
        out["dlae"] = Candidate(
            DLAE,
            tuple(
                {"lam": lam, "dropout": p, "alpha": a, "rank": "auto"}
                for lam in (10.0, 100.0, 300.0)
                for p in (0.25, 0.5, 0.75)
                for a in (0.0, 0.25)
            ),
        )
    if has_features:
        out["ridge_map"] = Candidate(RidgeMap, tuple({"ridge": r} for r in (1.0, 3.0, 10.0, 30.0, 100.0)))
    if data.n_items <= 200:
        out["item_logistic"] = Candidate(
            ItemLogistic,
            tuple(
                {"l2": l2, "use_history": task != "cold", "use_features": f}
                for f in ((False, True) if has_features else (False,))
                for l2 in (1e-4, 1e-3)
                if task != "cold" or f
            ),
        )
    out["popularity"] = Candidate(Popularity)
    if torch:
        out["denoising_net"] = Candidate(DenoisingNet, _net_grid(task, has_features, epochs), torch=True)
    return out


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _net_grid(task: Task, has_features: bool, epochs: int | None) -> tuple[dict[str, Any], ...]:
    if task == "next":
        base: dict[str, Any] = {
            "objective": "hide_one",
            "hidden": 64,
            "epochs": 40,
            "batch_size": 256,
            "lr": 2e-3,
            "weight_decay": 1e-4,
            "linear_skip": True,
        }
        grid = [{**base, "use_features": f} for f in ((False, True) if has_features else (False,))]
    elif task == "warm":
        grid = [
            {"objective": "dropout", "targets": "all", "hidden": 600, "history_dropout": 0.5, "epochs": 25}
        ]
    else:  # cold or mixed: the features must carry users without a history
        base = {
            "objective": "dropout",
            "targets": "held_out",
            "hidden": 256,
            "cold_prob": 1.0 if task == "cold" else 0.5,
            "feature_dropout": 0.5,
            "epochs": 30,
            "lr": 3e-3,
        }
        grid = [{**base, "feature_scaling": f} for f in ("standard", "l2")] if has_features else [base]
    if epochs is not None:
        grid = [{**g, "epochs": epochs} for g in grid[:1]]
    return tuple(grid)


@dataclass
class ServedFit:
    """What :func:`fit_served` produced: the served blend, its ablation and every tuned member."""

    model: RoutedBlend
    without_torch: RoutedBlend | None
    members: dict[str, Recommender]
    tuned: dict[str, GridResult] = field(repr=False)
    choice: BlendChoice
    choice_without_torch: BlendChoice | None
    seconds: float
    member_seconds: dict[str, float] = field(default_factory=dict)

    def report(self) -> dict[str, Any]:
        """JSON facts of the selection: settings and validation metric per family, weights per route."""

        def weights(choice: BlendChoice | None) -> dict[str, Any] | None:
            if choice is None:
                return None
            return {
                "warm": {k: v for k, v in choice.warm.items() if v},
                "cold": {k: v for k, v in choice.cold.items() if v},
                "validation_warm": choice.warm_value,
                "validation_cold": choice.cold_value,
            }

        return {
            "families": {
                name: {"params": res.params, "validation": res.value, "configs_tried": len(res.tried)}
                for name, res in self.tuned.items()
            },
            "weights": weights(self.choice),
            "weights_without_torch": weights(self.choice_without_torch),
            "seconds": round(self.seconds, 2),
        }


def fit_served(
    data: InteractionData,
    splitter: Splitter,
    candidates: Mapping[str, Candidate],
    metric: str = "ndcg@10",
    refit: Literal["all", "used"] = "all",
    log: Any = None,
) -> ServedFit:
    """Tune ``candidates`` on ``splitter``'s folds of ``data``, choose the blend, refit on ``data``.

    ``refit="used"`` refits only the members the served blend or its ablation weighs (what serving
    needs); ``"all"`` refits every family (what a benchmark reports as single models).
    """
    t0 = time.perf_counter()
    folds = splitter.folds(data)
    tuned: dict[str, GridResult] = {}
    for name, cand in candidates.items():
        tuned[name] = grid_search(cand.make, cand.grid, folds, metric)
        if log is not None:
            log(
                f"  {name}: {tuned[name].params} validation {metric}={tuned[name].value:.4f} "
                f"({tuned[name].seconds:.1f}s)"
            )
    scores = {name: res.scores for name, res in tuned.items()}
    choice = blend_weights(scores, folds, metric)
    plain = {name: s for name, s in scores.items() if not candidates[name].torch}
    has_torch = len(plain) < len(scores)
    choice_nt = blend_weights(plain, folds, metric) if has_torch and plain else None
    needed = (
        set(candidates)
        if refit == "all"
        else {
            name
            for ch in (choice, choice_nt)
            if ch is not None
            for name in candidates
            if ch.warm.get(name) or ch.cold.get(name)
        }
    )
    members: dict[str, Recommender] = {}
    member_seconds: dict[str, float] = {}
    for name in candidates:
        if name in needed:
            t_fit = time.perf_counter()
            members[name] = candidates[name].make(**tuned[name].params).fit(data)
            member_seconds[name] = time.perf_counter() - t_fit
    model = RoutedBlend.from_fitted(members, choice.warm, choice.cold)
    ablation = None if choice_nt is None else RoutedBlend.from_fitted(members, choice_nt.warm, choice_nt.cold)
    return ServedFit(
        model, ablation, members, tuned, choice, choice_nt, time.perf_counter() - t0, member_seconds
    )


def train_served(
    data: InteractionData,
    root: str | Path,
    splitter: Splitter,
    candidates: Mapping[str, Candidate],
    metric: str = "ndcg@10",
    knowledge: Any = None,
    metrics: dict[str, Any] | None = None,
    item_ids: Any = None,
    version: str | None = None,
    overwrite: bool = False,
    refit: Literal["all", "used"] = "used",
    log: Any = None,
) -> tuple[Path, ServedFit]:
    """:func:`fit_served`, then save the served blend as the artifact the service loads."""
    from recommender.serving import save_model_artifact

    fit = fit_served(data, splitter, candidates, metric=metric, refit=refit, log=log)
    path = save_model_artifact(
        fit.model,
        data,
        root,
        knowledge=knowledge,
        version=version,
        metrics=metrics,
        item_ids=item_ids,
        overwrite=overwrite,
        params={"selection": fit.report(), "metric": metric},
    )
    return path, fit
