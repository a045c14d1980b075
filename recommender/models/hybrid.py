"""Hybrid recommender: a torch two-tower network plus a closed-form wide part, scored in numpy.

Deep part (the two towers, trained in torch with a ranking loss, see :mod:`recommender.models.two_tower`
and the generic loop of :mod:`recommender.trainer`):

* item tower: an item id embedding plus a linear projection of the item content features (LSA topics of
  the product text), and an item bias. Items without any interaction still get a vector from their
  content, so new products can be ranked;
* user tower: ``tanh(bias + pool(history) + MLP(user_features))`` where ``pool`` is the 1/sqrt(n)
  normalised sum of a second item embedding table over the user's target-domain history and the MLP reads
  the side features (the course-domain profile: topic interests and behaviour). There is no user id
  table on purpose: a user is represented by what they did and what they studied, so a learner whose
  consent has just been granted is scored by the same function as a known one, without retraining. For a
  cold-start user the history term is empty and the transfer from the course domain to the product
  domain runs through the shared topic space (profile -> MLP, product topics -> item tower); training
  exercises this path explicitly by hiding whole histories with probability ``cold_prob``.

Wide part (optional, ``wide_ridge``): a linear map from the scaled profile features straight to item
scores, fitted in closed form by ridge regression on the users that have target history. On small data
the exact linear solution transfers better than anything stochastic gradient descent finds for the deep
part (on MovieLens cross-domain the two-tower alone is below the EMCDR baseline, the wide part alone
above it, and the blend best), so the two are blended per user: ``wide_weight * z(wide) + (1 -
wide_weight) * z(deep)`` with per-user z-scores, because the two score scales are unrelated.

After ``fit`` everything is exported to numpy arrays: item vectors and biases, the user tower weights
and the wide matrix. All scoring, here and in :mod:`recommender.serving`, is plain numpy.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from recommender.models.base import InteractionData, Recommender
from recommender.models.ridge_map import fit_ridge_map
from recommender.models.two_tower import LossName, TwoTowerConfig, TwoTowerNet, UserBatchSampler
from recommender.trainer import TrainReport, train

_STD_FLOOR = 1e-3

#: How the user side features are scaled before the MLP: per-column standardisation (dense profiles such
#: as topic interests and socio-demographics), per-row L2 normalisation (bag-of-items profiles, where
#: standardising would blow up rare columns), or nothing.
FeatureScaling = Literal["standard", "l2", "none"]


def _standardise_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(axis=0).astype(np.float32)
    std = np.maximum(x.std(axis=0), _STD_FLOOR).astype(np.float32)
    return mean, std


def _export(net: TwoTowerNet, item_features: torch.Tensor | None) -> dict[str, np.ndarray]:
    """The trained weights as numpy arrays: what scoring and serving need, nothing else."""
    was_training = net.training
    net.eval()
    out: dict[str, np.ndarray] = {}
    with torch.no_grad():
        device = net.item_bias.device
        feats = None if item_features is None else item_features.to(device)
        vec, bias = net.item_vectors(feats)
        out["item_vectors"] = vec.detach().cpu().numpy().astype(np.float32).copy()
        out["item_bias"] = bias.detach().cpu().numpy().astype(np.float32).copy()
        out["user_bias"] = net.user_bias.detach().cpu().numpy().astype(np.float32).copy()
        if net.hist_emb is not None:
            out["history_embedding"] = net.hist_emb.weight.detach().cpu().numpy().astype(np.float32).copy()
        if net.user_mlp is not None:
            first, last = net.user_mlp[0], net.user_mlp[2]
            assert isinstance(first, nn.Linear) and isinstance(last, nn.Linear)
            out["mlp_w0"] = first.weight.detach().cpu().numpy().T.astype(np.float32).copy()
            out["mlp_b0"] = first.bias.detach().cpu().numpy().astype(np.float32).copy()
            out["mlp_w1"] = last.weight.detach().cpu().numpy().T.astype(np.float32).copy()
            out["mlp_b1"] = last.bias.detach().cpu().numpy().astype(np.float32).copy()
    net.train(was_training)
    return out


def _scale_features(feats: np.ndarray, arrays: dict[str, np.ndarray]) -> np.ndarray:
    f = (np.asarray(feats, dtype=np.float32) - arrays["user_mean"]) / arrays["user_std"]
    if bool(arrays.get("user_l2", np.array([False]))[0]):
        norms = np.linalg.norm(f, axis=1, keepdims=True)
        f = np.divide(f, norms, out=np.zeros_like(f), where=norms > 1e-12)
    return f.astype(np.float32)


def _history_matrix(history: Any, n_items: int) -> sp.csr_matrix:
    """Binary CSR history from a sparse matrix or a dense (n, n_items) / (n_items,) array."""
    if history is None:
        raise ValueError("history is None")
    if sp.issparse(history):
        mat = sp.csr_matrix(history, dtype=np.float32)
    else:
        arr = np.asarray(history, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr[None, :]
        mat = sp.csr_matrix(arr)
    if mat.shape[1] != n_items:
        raise ValueError(f"history has {mat.shape[1]} item columns, the model knows {n_items} items")
    mat.data = (mat.data != 0).astype(np.float32)
    mat.eliminate_zeros()
    return mat


class HybridTwoTower(Recommender):
    """Two-tower hybrid recommender (see the module docstring).

    ``use_user_features`` / ``use_item_features`` switch the side inputs (they are also ignored when the
    data has none); ``use_item_ids`` and ``use_history`` switch the collaborative parts. Training
    hyperparameters go to :class:`recommender.models.two_tower.TwoTowerConfig`.
    """

    name: ClassVar[str] = "two_tower"

    def __init__(
        self,
        dim: int = 64,
        hidden: int = 128,
        epochs: int = 30,
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        loss: LossName = "softmax",
        n_negatives: int | None = None,
        history_dropout: float = 0.5,
        cold_prob: float = 0.1,
        targets: Literal["held_out", "all"] = "held_out",
        use_user_features: bool = True,
        use_item_features: bool = True,
        use_item_ids: bool = True,
        use_history: bool = True,
        user_feature_scaling: FeatureScaling = "standard",
        feature_dropout: float = 0.0,
        wide_ridge: float | None = None,
        wide_weight: float = 0.5,
        seed: int = 0,
        device: str | None = None,
        verbose: bool = False,
    ) -> None:
        if dim < 1 or hidden < 1:
            raise ValueError(f"dim and hidden must be positive, got dim={dim}, hidden={hidden}")
        self.dim = dim
        self.hidden = hidden
        self.config = TwoTowerConfig(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            loss=loss,
            n_negatives=n_negatives,
            history_dropout=history_dropout,
            cold_prob=cold_prob,
            targets=targets,
            feature_dropout=feature_dropout,
            seed=seed,
            device=device,
            verbose=verbose,
        )
        self.use_user_features = use_user_features
        self.use_item_features = use_item_features
        self.use_item_ids = use_item_ids
        self.use_history = use_history
        if user_feature_scaling not in ("standard", "l2", "none"):
            raise ValueError(
                f"user_feature_scaling must be 'standard', 'l2' or 'none', got {user_feature_scaling!r}"
            )
        self.user_feature_scaling: FeatureScaling = user_feature_scaling
        if wide_ridge is not None and not wide_ridge > 0:
            raise ValueError(f"wide_ridge must be positive or None, got {wide_ridge!r}")
        if not 0.0 <= wide_weight <= 1.0:
            raise ValueError(f"wide_weight must be in [0, 1], got {wide_weight!r}")
        self.wide_ridge = wide_ridge
        self.wide_weight = float(wide_weight)
        self.seed = seed
        self.arrays: dict[str, np.ndarray] | None = None
        self.report: TrainReport | None = None
        #: Called after every training epoch with the model, already scorable (progress, validation).
        self.epoch_callback: Callable[[int, HybridTwoTower], None] | None = None

    # ------------------------------------------------------------------ training
    def fit(self, data: InteractionData) -> HybridTwoTower:
        n_items = data.n_items
        uf = data.user_features if self.use_user_features else None
        itf = data.item_features if self.use_item_features else None
        if uf is not None:
            uf = np.asarray(uf, dtype=np.float32)
            if uf.shape[0] != data.n_users:
                raise ValueError(
                    f"user_features has {uf.shape[0]} rows, interactions has {data.n_users} users"
                )
            if not np.isfinite(uf).all():
                raise ValueError("user_features contains NaN or infinite values")
        if itf is not None:
            itf = np.asarray(itf, dtype=np.float32)
            if itf.shape[0] != n_items:
                raise ValueError(f"item_features has {itf.shape[0]} rows, interactions has {n_items} items")
            if not np.isfinite(itf).all():
                raise ValueError("item_features contains NaN or infinite values")
        arrays: dict[str, np.ndarray] = {}
        if uf is not None:
            if self.user_feature_scaling == "standard":
                mean, std = _standardise_stats(uf)
            else:
                mean, std = np.zeros(uf.shape[1], np.float32), np.ones(uf.shape[1], np.float32)
            arrays["user_mean"], arrays["user_std"] = mean, std
            arrays["user_l2"] = np.array([self.user_feature_scaling == "l2"], dtype=bool)
            uf = _scale_features(uf, arrays)
        if itf is not None:
            imean, istd = _standardise_stats(itf)
            itf = (itf - imean) / istd
        torch.manual_seed(self.seed)
        net = TwoTowerNet(
            n_items,
            dim=self.dim,
            user_feat_dim=0 if uf is None else uf.shape[1],
            item_feat_dim=0 if itf is None else itf.shape[1],
            hidden=self.hidden,
            use_item_ids=self.use_item_ids or itf is None,
            use_history=self.use_history or uf is None,
        )
        itf_t = None if itf is None else torch.as_tensor(itf)

        def on_epoch(epoch: int, report: TrainReport) -> None:
            if self.epoch_callback is not None:
                self.arrays = {**arrays, **_export(net, itf_t)}
                self.epoch_callback(epoch, self)
                net.train()

        if uf is not None and self.wide_ridge is not None:
            arrays["wide_w"] = _fit_wide(uf, data.interactions, self.wide_ridge)
            arrays["wide_weight"] = np.array([self.wide_weight], dtype=np.float32)
        sampler = UserBatchSampler(data.interactions, uf, itf, self.config)
        self.report = train(net, sampler, self.config.trainer(), on_epoch=on_epoch)
        self.arrays = {**arrays, **_export(net, itf_t)}
        return self

    def with_wide(
        self, data: InteractionData, wide_ridge: float | None, wide_weight: float = 0.5
    ) -> HybridTwoTower:
        """A copy that shares this fitted model's towers and has its wide part refitted on ``data``
        with ``wide_ridge`` / ``wide_weight`` (``wide_ridge=None``: no wide part, the towers alone).

        Training the towers never reads the wide settings, so this equals fitting a fresh model with
        those settings on the same ``data``; it makes a grid over the wide part cost one training run.
        """
        arrays = dict(self._require())
        if wide_ridge is not None and not wide_ridge > 0:
            raise ValueError(f"wide_ridge must be positive or None, got {wide_ridge!r}")
        if not 0.0 <= wide_weight <= 1.0:
            raise ValueError(f"wide_weight must be in [0, 1], got {wide_weight!r}")
        arrays.pop("wide_w", None)
        arrays.pop("wide_weight", None)
        if wide_ridge is not None and "user_mean" in arrays and data.user_features is not None:
            uf = _scale_features(np.asarray(data.user_features, dtype=np.float32), arrays)
            arrays["wide_w"] = _fit_wide(uf, data.interactions, wide_ridge)
            arrays["wide_weight"] = np.array([wide_weight], dtype=np.float32)
        clone = copy.copy(self)
        clone.wide_ridge = wide_ridge
        clone.wide_weight = float(wide_weight)
        clone.arrays = arrays
        return clone

    # ------------------------------------------------------------------ numpy scoring
    def _require(self) -> dict[str, np.ndarray]:
        if self.arrays is None:
            raise RuntimeError("HybridTwoTower must be fitted (or loaded) before scoring")
        return self.arrays

    @property
    def item_embeddings(self) -> np.ndarray:
        """(n_items, dim) item vectors, precomputed for serving."""
        return self._require()["item_vectors"]

    @property
    def item_bias(self) -> np.ndarray:
        """(n_items,) item biases (added to the dot product)."""
        return self._require()["item_bias"]

    @property
    def user_feature_dim(self) -> int:
        """Number of user side features the user tower expects (0 when it reads none)."""
        arr = self._require()
        return int(arr["mlp_w0"].shape[0]) if "mlp_w0" in arr else 0

    def user_embeddings(self, user_features: np.ndarray | None, history: Any = None) -> np.ndarray:
        """(n, dim) user vectors for a batch: features (n, e) and history (sparse or dense (n, n_items))."""
        return user_tower_numpy(self._require(), user_features, history)

    def user_embedding(self, user_features: np.ndarray | None, history_row: Any = None) -> np.ndarray:
        """(dim,) vector of one user from the profile features (e,) and an optional history row."""
        feats = None if user_features is None else np.asarray(user_features, dtype=np.float32).reshape(1, -1)
        return self.user_embeddings(feats, history_row)[0]

    @property
    def uses_features(self) -> bool:  # type: ignore[override]
        return self.arrays is not None and "mlp_w0" in self.arrays

    @property
    def n_items(self) -> int | None:
        return None if self.arrays is None else int(self.arrays["item_vectors"].shape[0])

    @n_items.setter
    def n_items(self, value: int | None) -> None:
        pass  # derived from the arrays

    @property
    def n_features(self) -> int | None:
        return self.user_feature_dim if self.uses_features else None

    @n_features.setter
    def n_features(self, value: int | None) -> None:
        pass  # derived from the arrays

    def _score(self, history: sp.csr_matrix, features: np.ndarray | None) -> np.ndarray:
        return scores_numpy(self._require(), features, history)

    def get_params(self) -> dict[str, Any]:
        c = self.config
        return {
            "dim": self.dim,
            "hidden": self.hidden,
            "epochs": c.epochs,
            "batch_size": c.batch_size,
            "lr": c.lr,
            "weight_decay": c.weight_decay,
            "loss": c.loss,
            "n_negatives": c.n_negatives,
            "history_dropout": c.history_dropout,
            "cold_prob": c.cold_prob,
            "targets": c.targets,
            "use_user_features": self.use_user_features,
            "use_item_features": self.use_item_features,
            "use_item_ids": self.use_item_ids,
            "use_history": self.use_history,
            "user_feature_scaling": self.user_feature_scaling,
            "feature_dropout": c.feature_dropout,
            "wide_ridge": self.wide_ridge,
            "wide_weight": self.wide_weight,
            "seed": self.seed,
            "device": c.device,
        }

    def get_state(self) -> dict[str, np.ndarray]:
        arrays = self._require()
        return {**arrays, "n_items": np.asarray([arrays["item_vectors"].shape[0]], dtype=np.int64)}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        self.arrays = {k: np.asarray(v) for k, v in state.items() if k not in ("n_items", "n_features")}


def _fit_wide(scaled_features: np.ndarray, interactions: sp.csr_matrix, ridge: float) -> np.ndarray:
    """Closed-form ridge map ``[features, 1] -> binary target row`` over users with target history."""
    return fit_ridge_map(scaled_features, interactions, ridge).astype(np.float32)


def _zscore_rows(s: np.ndarray) -> np.ndarray:
    std = s.std(axis=1, keepdims=True)
    return np.divide(s - s.mean(axis=1, keepdims=True), std, out=np.zeros_like(s), where=std > 1e-12)


def scores_numpy(arrays: dict[str, np.ndarray], user_features: np.ndarray | None, history: Any) -> np.ndarray:
    """(n, n_items) scores: user tower . item vectors + item bias, blended with the wide part if any."""
    u = user_tower_numpy(arrays, user_features, history)
    scores = u @ arrays["item_vectors"].T + arrays["item_bias"]
    if "wide_w" in arrays and user_features is not None:
        feats = _scale_features(np.asarray(user_features, dtype=np.float32).reshape(len(u), -1), arrays)
        wide = feats @ arrays["wide_w"][:-1] + arrays["wide_w"][-1]
        w = float(arrays["wide_weight"][0])
        scores = w * _zscore_rows(wide) + (1.0 - w) * _zscore_rows(scores)
    return np.asarray(scores, dtype=np.float32)


def user_tower_numpy(
    arrays: dict[str, np.ndarray], user_features: np.ndarray | None, history: Any
) -> np.ndarray:
    """The exported user tower in numpy: ``tanh(bias + pool(history) + MLP(features))``.

    Shared by :class:`HybridTwoTower` and :mod:`recommender.serving`, so both score identically.
    """
    n_items = arrays["item_vectors"].shape[0]
    n: int | None = None
    hist = None
    if history is not None:
        hist = _history_matrix(history, n_items)
        n = hist.shape[0]
    feats = None
    if "mlp_w0" in arrays:
        if user_features is None:
            raise ValueError("user_features is required: the user tower reads the profile features")
        feats = np.asarray(user_features, dtype=np.float32)
        if feats.ndim == 1:
            feats = feats[None, :]
        expected = arrays["mlp_w0"].shape[0]
        if feats.shape[1] != expected:
            raise ValueError(f"user_features has {feats.shape[1]} columns, the model expects {expected}")
        if n is not None and feats.shape[0] != n:
            raise ValueError(f"user_features has {feats.shape[0]} rows but history has {n}")
        n = feats.shape[0]
    if n is None:
        raise ValueError("give user_features or a history: the user tower has no input")
    a = np.broadcast_to(arrays["user_bias"], (n, arrays["user_bias"].shape[0])).astype(np.float32)
    if hist is not None and "history_embedding" in arrays:
        counts = np.diff(hist.indptr)
        scale = 1.0 / np.sqrt(np.maximum(counts, 1))
        a = a + np.asarray(sp.diags(scale.astype(np.float32)) @ hist @ arrays["history_embedding"])
    if feats is not None:
        f = _scale_features(feats, arrays)
        h = np.maximum(f @ arrays["mlp_w0"] + arrays["mlp_b0"], 0.0)
        a = a + h @ arrays["mlp_w1"] + arrays["mlp_b1"]
    return np.tanh(a).astype(np.float32)
