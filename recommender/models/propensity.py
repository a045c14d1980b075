"""Propensity: the probability that a customer takes up one product, from a feature table.

:class:`PropensityModel` is a scikit-learn model over any numeric feature matrix and a binary outcome,
usable on its own (the Caravan benchmark) and by :class:`~recommender.profiles.ProfileBuilder` (one per
product kind). Two kinds:

* ``"logistic"``: standardised features, L2 (or L1) logistic regression; with several ``Cs`` the
  strength is chosen by stratified inner cross-validation on the training rows (ROC AUC);
* ``"ensemble"``: the soft vote of that logistic regression and a shallow gradient-boosted tree model
  (histogram GBM, depth 3, early stopping on an inner validation share of the training rows).

``categorical=True`` adds a one-hot encoding of every column's levels (levels seen fewer than
``min_frequency`` times pooled) next to the standardised values, which lets a linear model read
ordinal codes such as the CoIL 2000 contribution levels non-linearly.

``portfolio=PortfolioColumns(levels=..., counts=...)`` names the columns that describe a customer's
product portfolio (per product a contribution level and a number of policies); the model then appends
four summaries of the portfolio (:func:`portfolio_summary`: products held, policies held, the summed
contribution level, products with a contribution) to the features before either kind reads them. Every
setting is chosen from the rows passed to :meth:`PropensityModel.fit`; an outcome with a single class
gives that constant rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier, VotingClassifier
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline, make_union
from sklearn.preprocessing import OneHotEncoder, StandardScaler

PropensityKind = Literal["logistic", "ensemble"]
_NEW_PENALTY_API = tuple(int(p) for p in sklearn.__version__.split(".")[:2]) >= (1, 8)


def _penalty(l1_ratio: float, cv: bool) -> dict[str, Any]:
    """The L1/L2 choice in the spelling of the installed scikit-learn (``l1_ratio`` from 1.8 on)."""
    if _NEW_PENALTY_API:
        if cv:
            return {"l1_ratios": (l1_ratio,), "use_legacy_attributes": False}
        return {"l1_ratio": l1_ratio}
    return {"penalty": "l1" if l1_ratio == 1.0 else "l2"}


@dataclass(frozen=True)
class PortfolioColumns:
    """Column indices of a product portfolio: ``levels[i]`` and ``counts[i]`` describe product ``i``
    (its contribution level and its number of policies; either may be empty)."""

    levels: tuple[int, ...] = ()
    counts: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.levels and not self.counts:
            raise ValueError("a portfolio needs level or count columns")
        if any(i < 0 for i in (*self.levels, *self.counts)):
            raise ValueError("portfolio columns must be non-negative indices")


def portfolio_summary(features: np.ndarray, columns: PortfolioColumns) -> np.ndarray:
    """(n, 4) summaries of each row's portfolio: products held (a count or a level above 0), policies
    held (the summed counts), the summed contribution level, products with a contribution."""
    x = np.asarray(features, dtype=np.float64)
    width = max((*columns.levels, *columns.counts)) + 1
    if x.ndim != 2 or x.shape[1] < width:
        raise ValueError(
            f"features must be (n, d) with d >= {width} for the portfolio columns, got {x.shape}"
        )
    levels = x[:, list(columns.levels)] if columns.levels else np.zeros((x.shape[0], 0))
    counts = x[:, list(columns.counts)] if columns.counts else np.zeros((x.shape[0], 0))
    held = counts if counts.shape[1] else levels
    return np.column_stack(
        [(held > 0).sum(axis=1), counts.sum(axis=1), levels.sum(axis=1), (levels > 0).sum(axis=1)]
    ).astype(np.float64)


class PropensityModel:
    """``PropensityModel(kind="logistic", Cs=(0.1,), penalty="l2", categorical=False, ...)``."""

    def __init__(
        self,
        kind: PropensityKind = "logistic",
        Cs: Sequence[float] = (0.1,),
        penalty: Literal["l1", "l2"] = "l2",
        categorical: bool = False,
        min_frequency: int = 20,
        inner_folds: int = 5,
        seed: int = 0,
        portfolio: PortfolioColumns | None = None,
    ) -> None:
        if kind not in ("logistic", "ensemble"):
            raise ValueError(f"kind must be 'logistic' or 'ensemble', got {kind!r}")
        if not Cs or any(not c > 0 for c in Cs):
            raise ValueError(f"Cs must be positive numbers, got {list(Cs)}")
        if penalty not in ("l1", "l2"):
            raise ValueError(f"penalty must be 'l1' or 'l2', got {penalty!r}")
        if inner_folds < 2:
            raise ValueError(f"inner_folds must be >= 2, got {inner_folds}")
        self.kind: PropensityKind = kind
        self.Cs = tuple(float(c) for c in Cs)
        self.penalty: Literal["l1", "l2"] = penalty
        self.categorical = categorical
        self.min_frequency = int(min_frequency)
        self.inner_folds = int(inner_folds)
        self.seed = int(seed)
        self.portfolio = portfolio
        self.n_features: int | None = None
        self.model: Pipeline | VotingClassifier | None = None
        self.constant: float | None = None

    def _logistic(self) -> Pipeline:
        solver = "liblinear" if self.penalty == "l1" else "lbfgs"
        ratio = 1.0 if self.penalty == "l1" else 0.0
        if len(self.Cs) == 1:
            head: Any = LogisticRegression(
                C=self.Cs[0], solver=solver, max_iter=2000, **_penalty(ratio, cv=False)
            )
        else:
            head = LogisticRegressionCV(
                Cs=list(self.Cs),
                cv=StratifiedKFold(self.inner_folds, shuffle=True, random_state=self.seed),
                scoring="roc_auc",
                solver=solver,
                max_iter=2000,
                **_penalty(ratio, cv=True),
            )
        if self.categorical:
            encode: Any = make_union(
                OneHotEncoder(handle_unknown="ignore", min_frequency=self.min_frequency), StandardScaler()
            )
            return make_pipeline(encode, head)
        return make_pipeline(StandardScaler(), head)

    def fit(self, features: np.ndarray, outcome: np.ndarray) -> PropensityModel:
        """Fit on a (n, d) feature matrix and a binary (n,) outcome."""
        x = np.asarray(features, dtype=np.float64)
        y = np.asarray(outcome).astype(np.int64).ravel()
        if x.ndim != 2 or x.shape[0] != y.shape[0]:
            raise ValueError(f"features must be (n, d) with n = {y.shape[0]} outcomes, got {x.shape}")
        if not np.isin(y, (0, 1)).all():
            raise ValueError("outcome must be binary (0/1)")
        self.n_features = x.shape[1]
        x = self._augment(x)
        self.model = None
        if y.size == 0 or y.min() == y.max():
            self.constant = float(y[0]) if y.size else 0.0
            return self
        self.constant = None
        if self.kind == "logistic":
            self.model = self._logistic().fit(x, y)
        else:
            gbm = HistGradientBoostingClassifier(
                max_depth=3,
                learning_rate=0.05,
                max_iter=300,
                l2_regularization=1.0,
                early_stopping=True,
                validation_fraction=0.2,
                n_iter_no_change=20,
                scoring="roc_auc",
                random_state=self.seed,
            )
            vote = VotingClassifier([("logistic", self._logistic()), ("gbm", gbm)], voting="soft")
            self.model = vote.fit(x, y)
        return self

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """P(outcome = 1) per row, shape (n,)."""
        x = np.atleast_2d(np.asarray(features, dtype=np.float64))
        if self.constant is not None:
            return np.full(x.shape[0], self.constant, dtype=np.float64)
        if self.model is None:
            raise RuntimeError("PropensityModel must be fitted before predicting")
        expected = getattr(self, "n_features", None)  # models pickled before the check have none
        if expected is not None and x.shape[1] != expected:
            raise ValueError(f"features must have {expected} columns, got {x.shape[1]}")
        return np.asarray(self.model.predict_proba(self._augment(x))[:, 1], dtype=np.float64)

    def _augment(self, x: np.ndarray) -> np.ndarray:
        """``x`` with the portfolio summaries appended (``x`` itself without a portfolio)."""
        if getattr(self, "portfolio", None) is None:
            return x
        assert self.portfolio is not None
        return np.hstack([x, portfolio_summary(x, self.portfolio)])
