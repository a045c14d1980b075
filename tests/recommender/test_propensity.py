"""The propensity model on its own: settings chosen from the training rows, bad input named."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from recommender.models.propensity import PropensityModel


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
