"""The propensity model on its own: settings chosen from the training rows, bad input named."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from recommender.models.propensity import PortfolioColumns, PropensityModel, portfolio_summary


def data(seed: int = 0, n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 6, size=(n, 5)).astype(np.float64)
    # the outcome depends on one level of column 0 (a non-linear effect of an ordinal code) and column 1
    logit = 2.5 * (x[:, 0] == 3) + 0.4 * x[:, 1] - 2.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return x, y


@pytest.mark.parametrize(
    "model",
    [
        PropensityModel(),
        PropensityModel(Cs=(0.01, 0.1, 1.0), penalty="l1", categorical=True),
        PropensityModel(kind="ensemble", Cs=(0.1, 1.0), categorical=True),
    ],
    ids=["logistic", "l1-one-hot-cv", "ensemble"],
)
def test_propensity_ranks_held_out_rows(model: PropensityModel) -> None:
    x, y = data()
    xt, yt = data(seed=1)
    proba = model.fit(x, y).predict_proba(xt)
    assert proba.shape == (len(yt),) and ((proba >= 0) & (proba <= 1)).all()
    assert roc_auc_score(yt, proba) > 0.65


def test_one_hot_levels_read_an_ordinal_code_non_linearly() -> None:
    x, y = data()
    xt, yt = data(seed=1)
    plain = roc_auc_score(yt, PropensityModel(Cs=(1.0,)).fit(x, y).predict_proba(xt))
    levels = roc_auc_score(yt, PropensityModel(Cs=(1.0,), categorical=True).fit(x, y).predict_proba(xt))
    assert levels > plain


def test_a_single_class_gives_its_rate_and_bad_input_is_named() -> None:
    x, _ = data()
    np.testing.assert_array_equal(PropensityModel().fit(x, np.zeros(len(x))).predict_proba(x[:3]), [0, 0, 0])
    with pytest.raises(ValueError, match="binary"):
        PropensityModel().fit(x, np.full(len(x), 2))
    with pytest.raises(ValueError, match="features"):
        PropensityModel().fit(x[:10], np.zeros(11))
    with pytest.raises(ValueError, match="kind"):
        PropensityModel(kind="forest")  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="fitted"):
        PropensityModel().predict_proba(x)


def test_portfolio_summary_counts_products_policies_and_contributions() -> None:
    # columns: 2 demographics, then levels of products a and b, then their policy counts
    x = np.array([[5, 1, 3, 0, 2, 0], [4, 2, 0, 0, 0, 0], [1, 1, 6, 2, 1, 3]], dtype=np.float64)
    summary = portfolio_summary(x, PortfolioColumns(levels=(2, 3), counts=(4, 5)))
    np.testing.assert_array_equal(summary, [[1, 2, 3, 1], [0, 0, 0, 0], [2, 4, 8, 2]])
    # without count columns a product with a contribution counts as held
    levels_only = portfolio_summary(x, PortfolioColumns(levels=(2, 3)))
    np.testing.assert_array_equal(levels_only[:, 0], [1, 0, 2])
    with pytest.raises(ValueError, match="level or count"):
        PortfolioColumns()
    with pytest.raises(ValueError, match="portfolio columns"):
        portfolio_summary(x[:, :4], PortfolioColumns(levels=(2, 3), counts=(4, 5)))


def portfolio_data(seed: int, n: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    """Ten products held at random; take-up depends on holding at least four of them (a threshold on
    the portfolio's size that no single product column shows)."""
    rng = np.random.default_rng(seed)
    held = (rng.random((n, 10)) < 0.3).astype(np.float64)
    noise = rng.integers(0, 5, size=(n, 3)).astype(np.float64)
    logit = 3.0 * (held.sum(axis=1) >= 4) - 2.0
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return np.hstack([noise, held]), y


def test_portfolio_summaries_let_the_model_read_the_portfolio_size() -> None:
    x, y = portfolio_data(0)
    xt, yt = portfolio_data(1)
    portfolio = PortfolioColumns(counts=tuple(range(3, 13)))
    plain = PropensityModel(Cs=(1.0,), categorical=True).fit(x, y)
    summarised = PropensityModel(Cs=(1.0,), categorical=True, portfolio=portfolio).fit(x, y)
    assert roc_auc_score(yt, summarised.predict_proba(xt)) > roc_auc_score(yt, plain.predict_proba(xt))
    with pytest.raises(ValueError, match="13 columns"):
        summarised.predict_proba(xt[:, :12])
