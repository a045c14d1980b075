"""The torch two-tower network of :mod:`recommender.models.hybrid`, its loss and its batches.

:class:`TwoTowerNet` is trained by the generic loop of :mod:`recommender.trainer`: it provides
``calculate_loss`` and :class:`UserBatchSampler` provides the batches. Training goes user by user. For
each user in a batch the target-domain history is split at random into an *input* part (fed to the user
tower) and a *target* part (the items the loss asks the model to rank high), the denoising recipe of
Mult-DAE. With probability ``cold_prob`` the whole history becomes target and the user tower sees only the
side features, which is exactly the cold-start situation at serving time; this is what teaches the
feature path to carry the transfer from the course domain to the product domain.

Every random draw of a run lives in the sampler: the shuffles and history splits come from a numpy
generator seeded with ``TwoTowerConfig.seed``, the feature-dropout masks and the negative items from a
torch generator seeded with ``seed + 1``; the loss itself is deterministic given the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from recommender.trainer import TrainerConfig, TrainReport, train

LossName = Literal["softmax", "bpr"]


@dataclass
class TwoTowerConfig:
    """Hyperparameters of a two-tower training run.

    ``loss``: ``"softmax"`` (multinomial log-likelihood of the target items; over the full catalogue, or
    over ``n_negatives`` shared uniform negatives per batch when set) or ``"bpr"`` (one uniform negative
    per target). ``feature_dropout``: input dropout on the user side features (denoising the source
    profile, which regularises the transfer path). ``history_dropout``: probability that a history item
    is moved from input to target.
    ``cold_prob``: probability that a user's entire history is hidden from the user tower. ``targets``:
    ``"held_out"`` scores only the items moved out of the input, ``"all"`` the whole history (the
    Mult-DAE recipe, better when every user has history, as on MovieLens). ``epochs``, ``lr``,
    ``weight_decay``, ``seed``, ``device`` and ``verbose`` go to the loop (:meth:`trainer`).
    """

    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    loss: LossName = "softmax"
    n_negatives: int | None = None
    history_dropout: float = 0.5
    cold_prob: float = 0.1
    targets: Literal["held_out", "all"] = "held_out"
    feature_dropout: float = 0.0
    seed: int = 0
    device: str | None = None
    verbose: bool = False

    def __post_init__(self) -> None:
        self.trainer()  # validates the loop's settings (epochs, lr, weight_decay)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.loss not in ("softmax", "bpr"):
            raise ValueError(f"loss must be 'softmax' or 'bpr', got {self.loss!r}")
        if not 0.0 <= self.history_dropout < 1.0:
            raise ValueError(f"history_dropout must be in [0, 1), got {self.history_dropout}")
        if self.targets not in ("held_out", "all"):
            raise ValueError(f"targets must be 'held_out' or 'all', got {self.targets!r}")
        if not 0.0 <= self.cold_prob <= 1.0:
            raise ValueError(f"cold_prob must be in [0, 1], got {self.cold_prob}")
        if not 0.0 <= self.feature_dropout < 1.0:
            raise ValueError(f"feature_dropout must be in [0, 1), got {self.feature_dropout}")
        if self.n_negatives is not None and self.n_negatives < 1:
            raise ValueError(f"n_negatives must be positive or None, got {self.n_negatives}")

    def trainer(self) -> TrainerConfig:
        """The loop's share of these settings (Adam over the dense parameters)."""
        return TrainerConfig(
            epochs=self.epochs,
            lr=self.lr,
            weight_decay=self.weight_decay,
            optimizer="adam",
            seed=self.seed,
            device=self.device,
            verbose=self.verbose,
        )


@dataclass
class UserBatch:
    """One batch of users, as tensors: the input history (for ``embedding_bag``), the targets, and what
    the loss needs besides (side features, negatives), filled in by :class:`UserBatchSampler`."""

    users: torch.Tensor  # (B,) row indices
    input_items: torch.Tensor  # flat item indices kept as input
    input_offsets: torch.Tensor  # (B,) start of each user's input items
    input_weights: torch.Tensor  # 1/sqrt(n_kept) per input item
    target_rows: torch.Tensor  # batch-row of each target
    target_items: torch.Tensor  # item of each target
    n_interactions: int
    user_features: torch.Tensor | None = None  # (B, e) side features of the batch's users, after dropout
    item_features: torch.Tensor | None = None  # (n_items, d) item content features
    loss: LossName = "softmax"
    negatives: torch.Tensor | None = None  # bpr: one item per target; sampled softmax: shared by the batch

    @property
    def loss_weight(self) -> float:
        """The loss is a mean over the batch's users, so it counts once per user in the epoch loss."""
        return float(self.users.shape[0])


def make_user_batch(
    interactions: sp.csr_matrix,
    users: np.ndarray,
    rng: np.random.Generator,
    history_dropout: float,
    cold_prob: float,
    device: torch.device,
    all_targets: bool = False,
) -> UserBatch:
    """Split each user's history into input and target parts (see the module docstring)."""
    indptr = interactions.indptr
    starts, ends = indptr[users], indptr[users + 1]
    lengths = ends - starts
    total = int(lengths.sum())
    rows = np.repeat(np.arange(len(users)), lengths)
    if total:
        flat = np.concatenate([interactions.indices[s:e] for s, e in zip(starts, ends, strict=True)])
    else:
        flat = np.zeros(0, dtype=np.int64)
    keep = rng.random(total) >= history_dropout
    cold = rng.random(len(users)) < cold_prob
    keep &= ~cold[rows]
    kept_rows = rows[keep]
    n_kept = np.bincount(kept_rows, minlength=len(users))
    offsets = np.concatenate([[0], np.cumsum(n_kept)[:-1]])
    weights = 1.0 / np.sqrt(np.maximum(n_kept, 1))[kept_rows]
    target = np.ones_like(keep) if all_targets else ~keep
    return UserBatch(
        users=torch.as_tensor(users, dtype=torch.long, device=device),
        input_items=torch.as_tensor(flat[keep], dtype=torch.long, device=device),
        input_offsets=torch.as_tensor(offsets, dtype=torch.long, device=device),
        input_weights=torch.as_tensor(weights, dtype=torch.float32, device=device),
        target_rows=torch.as_tensor(rows[target], dtype=torch.long, device=device),
        target_items=torch.as_tensor(flat[target], dtype=torch.long, device=device),
        n_interactions=total,
    )


def _as_tensor(x: np.ndarray | None, device: torch.device) -> torch.Tensor | None:
    return None if x is None else torch.as_tensor(np.asarray(x, dtype=np.float32), device=device)


class UserBatchSampler:
    """Batches of users with at least one interaction, reshuffled every epoch.

    Users with an empty history carry no training signal and are skipped, and so is a batch whose
    split left no target. One sampler serves one training run: its generators carry on across epochs.
    """

    def __init__(
        self,
        interactions: sp.csr_matrix,
        user_features: np.ndarray | None,
        item_features: np.ndarray | None,
        config: TwoTowerConfig,
    ) -> None:
        x = sp.csr_matrix(interactions)
        x.sort_indices()
        self.interactions = x
        self.active = np.flatnonzero(np.diff(x.indptr) > 0)
        if self.active.size == 0:
            raise ValueError("interactions has no nonzero entry: nothing to train on")
        self.user_features = user_features
        self.item_features = item_features
        self.config = config
        self.n_items = int(x.shape[1])
        self.rng = np.random.default_rng(config.seed)
        self.gen = torch.Generator().manual_seed(config.seed + 1)
        self._device: torch.device | None = None
        self._uf: torch.Tensor | None = None
        self._itf: torch.Tensor | None = None

    @property
    def n_examples(self) -> int:
        return int(self.active.size)

    def _features_on(self, device: torch.device) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if self._device != device:
            self._uf = _as_tensor(self.user_features, device)
            self._itf = _as_tensor(self.item_features, device)
            self._device = device
        return self._uf, self._itf

    def epoch(self, device: torch.device) -> Iterator[UserBatch]:
        cfg = self.config
        uf, itf = self._features_on(device)
        order = self.rng.permutation(self.active)
        for start in range(0, len(order), cfg.batch_size):
            users = order[start : start + cfg.batch_size]
            batch = make_user_batch(
                self.interactions,
                users,
                self.rng,
                cfg.history_dropout,
                cfg.cold_prob,
                device,
                cfg.targets == "all",
            )
            if batch.target_items.numel() == 0:
                continue
            yield self._complete(batch, uf, itf)

    def _complete(self, batch: UserBatch, uf: torch.Tensor | None, itf: torch.Tensor | None) -> UserBatch:
        """Add the side features (with dropout) and the negatives the loss draws against."""
        cfg = self.config
        feats = None if uf is None else uf[batch.users]
        if feats is not None and cfg.feature_dropout > 0:
            keep = torch.rand(feats.shape, generator=self.gen).to(feats.device) >= cfg.feature_dropout
            feats = feats * keep / (1.0 - cfg.feature_dropout)
        batch.user_features = feats
        batch.item_features = itf
        batch.loss = cfg.loss
        if cfg.loss == "bpr":
            n_neg = batch.target_items.numel()
        elif cfg.n_negatives is not None:
            n_neg = int(cfg.n_negatives)
        else:
            return batch
        batch.negatives = torch.randint(0, self.n_items, (n_neg,), generator=self.gen).to(batch.users.device)
        return batch


class TwoTowerNet(nn.Module):
    """The torch module; see :mod:`recommender.models.hybrid` for the architecture."""

    def __init__(
        self,
        n_items: int,
        dim: int = 64,
        user_feat_dim: int = 0,
        item_feat_dim: int = 0,
        hidden: int = 128,
        use_item_ids: bool = True,
        use_history: bool = True,
    ) -> None:
        super().__init__()
        if not use_item_ids and item_feat_dim == 0:
            raise ValueError("the item tower needs item ids or item features (item_feat_dim > 0)")
        if not use_history and user_feat_dim == 0:
            raise ValueError("the user tower needs the history or user features (user_feat_dim > 0)")
        self.item_emb = nn.Embedding(n_items, dim) if use_item_ids else None
        self.item_proj = nn.Linear(item_feat_dim, dim, bias=False) if item_feat_dim else None
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        self.hist_emb = nn.Embedding(n_items, dim) if use_history else None
        self.user_mlp = (
            nn.Sequential(nn.Linear(user_feat_dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
            if user_feat_dim
            else None
        )
        self.user_bias = nn.Parameter(torch.zeros(dim))
        for emb in (self.item_emb, self.hist_emb):
            if emb is not None:
                nn.init.normal_(emb.weight, std=0.05)

    def item_vectors(self, item_features: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(n_items, dim) item vectors and (n_items,) biases."""
        parts: list[torch.Tensor] = []
        if self.item_emb is not None:
            parts.append(self.item_emb.weight)
        if self.item_proj is not None:
            if item_features is None:
                raise ValueError("this network was built with item features; item_features is None")
            parts.append(self.item_proj(item_features))
        vec = parts[0] if len(parts) == 1 else parts[0] + parts[1]
        return vec, self.item_bias

    def user_vectors(
        self,
        input_items: torch.Tensor,
        input_offsets: torch.Tensor,
        input_weights: torch.Tensor,
        user_features: torch.Tensor | None,
        users: torch.Tensor,
    ) -> torch.Tensor:
        """(B, dim) user vectors from the pooled input history and the side features."""
        a = self.user_bias.expand(users.shape[0], -1)
        if self.hist_emb is not None:
            pooled = nn.functional.embedding_bag(
                input_items, self.hist_emb.weight, input_offsets, mode="sum", per_sample_weights=input_weights
            )
            a = a + pooled
        if self.user_mlp is not None:
            if user_features is None:
                raise ValueError("this network was built with user features; user_features is None")
            a = a + self.user_mlp(user_features)
        return torch.tanh(a)

    def calculate_loss(self, batch: UserBatch) -> torch.Tensor:
        """Loss of one batch: multinomial softmax (full or sampled) or BPR over the target items."""
        u = self.user_vectors(
            batch.input_items, batch.input_offsets, batch.input_weights, batch.user_features, batch.users
        )
        item_vec, item_bias = self.item_vectors(batch.item_features)
        if batch.negatives is None:
            if batch.loss == "bpr":
                raise ValueError("a BPR batch needs one negative item per target; negatives is None")
            logits = u @ item_vec.T + item_bias
            logp = torch.log_softmax(logits, dim=1)
            return -logp[batch.target_rows, batch.target_items].sum() / u.shape[0]
        neg_items = batch.negatives
        pos = (u[batch.target_rows] * item_vec[batch.target_items]).sum(1) + item_bias[batch.target_items]
        if batch.loss == "bpr":
            neg = (u[batch.target_rows] * item_vec[neg_items]).sum(1) + item_bias[neg_items]
            return -nn.functional.logsigmoid(pos - neg).mean()
        neg_logits = u @ item_vec[neg_items].T + item_bias[neg_items]  # (B, n_neg), shared by the targets
        # softmax of each target against the shared negatives: -pos + log(exp(pos) + sum exp(neg)), with
        # the negatives' log-sum-exp computed once per user instead of once per target
        neg_lse = torch.logsumexp(neg_logits, dim=1)[batch.target_rows]
        return (torch.logaddexp(pos, neg_lse) - pos).sum() / u.shape[0]


def train_two_tower(
    net: TwoTowerNet,
    interactions: sp.csr_matrix,
    user_features: np.ndarray | None,
    item_features: np.ndarray | None,
    config: TwoTowerConfig,
    on_epoch: Callable[[int, TrainReport], None] | None = None,
) -> TrainReport:
    """Fit ``net`` in place with :func:`recommender.trainer.train`; returns the per-epoch report.

    ``user_features`` / ``item_features`` are used as given (already scaled); ``on_epoch`` is called after
    every epoch (e.g. for progress output or validation).
    """
    sampler = UserBatchSampler(interactions, user_features, item_features, config)
    return train(net, sampler, config.trainer(), on_epoch=on_epoch)
