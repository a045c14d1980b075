"""The torch training loops, kept apart from the model definitions.

Two loops share one batching scheme, so their throughput is comparable:

* :func:`train_two_tower` trains :class:`recommender.models.hybrid.TwoTowerNet` user by user. For each
  user in a batch the target-domain history is split at random into an *input* part (fed to the user
  tower) and a *target* part (the items the loss asks the model to rank high), the denoising recipe of
  Mult-DAE. With probability ``cold_prob`` the whole history becomes target and the user tower sees only
  the side features, which is exactly the cold-start situation at serving time; this is what teaches
  the feature path to carry the transfer from the course domain to the product domain.
* :func:`train_bpr_mf` trains a plain BPR matrix factorisation over shuffled (user, item) pairs, the
  reference point for the throughput benchmark.

Runs are reproducible: :func:`deterministic` seeds torch, switches on deterministic algorithms and
restores the previous global state afterwards; every random draw (shuffles, dropout masks, negatives)
comes from generators seeded from ``TrainConfig.seed``. CPU by default, CUDA when asked for or when
``device=None`` and a GPU is present.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

if TYPE_CHECKING:
    from recommender.models.hybrid import TwoTowerNet

LossName = Literal["softmax", "bpr"]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` -> CUDA when available, else CPU; an explicit ``"cuda"`` without a GPU is an error."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was requested but torch.cuda.is_available() is False")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    return dev


@contextlib.contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Seed torch and force deterministic kernels for the duration of a training run."""
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn)


@dataclass
class TrainConfig:
    """Hyperparameters of a training run.

    ``loss``: ``"softmax"`` (multinomial log-likelihood of the target items; over the full catalogue, or
    over ``n_negatives`` shared uniform negatives per batch when set) or ``"bpr"`` (one uniform negative
    per target). ``feature_dropout``: input dropout on the user side features (denoising the source
    profile, which regularises the transfer path). ``source_weight``: weight of the auxiliary loss that
    reconstructs the user's (normalised, non-negative) source profile from the user vector, which lets
    every user with a course profile shape the user tower, not only those with product history.
    ``history_dropout``: probability that a history item is moved from input to target.
    ``cold_prob``: probability that a user's entire history is hidden from the user tower.
    """

    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    loss: LossName = "softmax"
    n_negatives: int | None = None
    history_dropout: float = 0.5
    cold_prob: float = 0.1
    feature_dropout: float = 0.0
    source_weight: float = 0.0
    seed: int = 0
    device: str | None = None
    verbose: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.loss not in ("softmax", "bpr"):
            raise ValueError(f"loss must be 'softmax' or 'bpr', got {self.loss!r}")
        if not 0.0 <= self.history_dropout < 1.0:
            raise ValueError(f"history_dropout must be in [0, 1), got {self.history_dropout}")
        if not 0.0 <= self.cold_prob <= 1.0:
            raise ValueError(f"cold_prob must be in [0, 1], got {self.cold_prob}")
        if not 0.0 <= self.feature_dropout < 1.0:
            raise ValueError(f"feature_dropout must be in [0, 1), got {self.feature_dropout}")
        if self.source_weight < 0:
            raise ValueError(f"source_weight must be >= 0, got {self.source_weight}")
        if self.n_negatives is not None and self.n_negatives < 1:
            raise ValueError(f"n_negatives must be positive or None, got {self.n_negatives}")


@dataclass
class TrainReport:
    """What a run did: per-epoch loss, wall time and interactions processed per second."""

    device: str
    epoch_loss: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    interactions_per_s: list[float] = field(default_factory=list)


@dataclass
class UserBatch:
    """One batch of users, as tensors: the input history (for ``embedding_bag``) and the targets."""

    users: torch.Tensor  # (B,) row indices
    input_items: torch.Tensor  # flat item indices kept as input
    input_offsets: torch.Tensor  # (B,) start of each user's input items
    input_weights: torch.Tensor  # 1/sqrt(n_kept) per input item
    target_rows: torch.Tensor  # batch-row of each target
    target_items: torch.Tensor  # item of each target
    n_interactions: int


def make_user_batch(
    interactions: sp.csr_matrix,
    users: np.ndarray,
    rng: np.random.Generator,
    history_dropout: float,
    cold_prob: float,
    device: torch.device,
) -> UserBatch:
    """Split each user's history into input and target parts (see the module docstring)."""
    indptr = interactions.indptr
    starts, ends = indptr[users], indptr[users + 1]
    lengths = ends - starts
    total = int(lengths.sum())
    rows = np.repeat(np.arange(len(users)), lengths)
    flat = np.concatenate([interactions.indices[s:e] for s, e in zip(starts, ends, strict=True)]) if total else (
        np.zeros(0, dtype=np.int64)
    )
    keep = rng.random(total) >= history_dropout
    cold = rng.random(len(users)) < cold_prob
    keep &= ~cold[rows]
    kept_rows = rows[keep]
    n_kept = np.bincount(kept_rows, minlength=len(users))
    offsets = np.concatenate([[0], np.cumsum(n_kept)[:-1]])
    weights = 1.0 / np.sqrt(np.maximum(n_kept, 1))[kept_rows]
    target = ~keep
    return UserBatch(
        users=torch.as_tensor(users, dtype=torch.long, device=device),
        input_items=torch.as_tensor(flat[keep], dtype=torch.long, device=device),
        input_offsets=torch.as_tensor(offsets, dtype=torch.long, device=device),
        input_weights=torch.as_tensor(weights, dtype=torch.float32, device=device),
        target_rows=torch.as_tensor(rows[target], dtype=torch.long, device=device),
        target_items=torch.as_tensor(flat[target], dtype=torch.long, device=device),
        n_interactions=total,
    )


def _log(verbose: bool, msg: str) -> None:
    if verbose:
        print(msg, file=sys.stderr, flush=True)


def _as_tensor(x: np.ndarray | None, device: torch.device) -> torch.Tensor | None:
    return None if x is None else torch.as_tensor(np.asarray(x, dtype=np.float32), device=device)


def two_tower_loss(
    net: TwoTowerNet,
    batch: UserBatch,
    user_features: torch.Tensor | None,
    item_features: torch.Tensor | None,
    config: TrainConfig,
    neg_gen: torch.Generator,
    source_targets: torch.Tensor | None = None,
) -> torch.Tensor:
    """Loss of one batch: multinomial softmax (full or sampled) or BPR over the target items, plus
    ``config.source_weight`` times the source-profile reconstruction loss when ``source_targets`` is set.
    """
    feats = None if user_features is None else user_features[batch.users]
    if feats is not None and config.feature_dropout > 0:
        keep = torch.rand(feats.shape, generator=neg_gen).to(feats.device) >= config.feature_dropout
        feats = feats * keep / (1.0 - config.feature_dropout)
    u = net.user_vectors(batch.input_items, batch.input_offsets, batch.input_weights, feats, batch.users)
    n_rows = u.shape[0]
    loss = u.new_zeros(())
    if batch.target_items.numel() > 0:
        wide = net.wide(feats) if net.wide is not None and feats is not None else None
        loss = loss + _target_loss(net, u, wide, batch, item_features, config, neg_gen)
    if source_targets is not None and net.source_decoder is not None:
        # Cross-entropy between the user's normalised source profile and a softmax over source columns:
        # the user vector must also explain what the user did in the source domain.
        logp = torch.log_softmax(net.source_decoder(u), dim=1)
        loss = loss + config.source_weight * -(source_targets[batch.users] * logp).sum() / n_rows
    return loss


def _target_loss(
    net: TwoTowerNet,
    u: torch.Tensor,
    wide: torch.Tensor | None,
    batch: UserBatch,
    item_features: torch.Tensor | None,
    config: TrainConfig,
    neg_gen: torch.Generator,
) -> torch.Tensor:
    item_vec, item_bias = net.item_vectors(item_features)
    n_items = item_vec.shape[0]
    n_targets = batch.target_items.numel()
    device = u.device
    if config.loss == "softmax" and config.n_negatives is None:
        logits = u @ item_vec.T + item_bias
        if wide is not None:
            logits = logits + wide
        logp = torch.log_softmax(logits, dim=1)
        return -logp[batch.target_rows, batch.target_items].sum() / u.shape[0]
    pos = (u[batch.target_rows] * item_vec[batch.target_items]).sum(1) + item_bias[batch.target_items]
    if wide is not None:
        pos = pos + wide[batch.target_rows, batch.target_items]
    if config.loss == "bpr":
        neg_items = torch.randint(0, n_items, (n_targets,), generator=neg_gen).to(device)
        neg = (u[batch.target_rows] * item_vec[neg_items]).sum(1) + item_bias[neg_items]
        if wide is not None:
            neg = neg + wide[batch.target_rows, neg_items]
        return -nn.functional.logsigmoid(pos - neg).mean()
    n_neg = int(config.n_negatives or 1)
    neg_items = torch.randint(0, n_items, (n_neg,), generator=neg_gen).to(device)
    neg_logits = u @ item_vec[neg_items].T + item_bias[neg_items]  # (B, n_neg), shared negatives
    if wide is not None:
        neg_logits = neg_logits + wide[:, neg_items]
    all_logits = torch.cat([pos[:, None], neg_logits[batch.target_rows]], dim=1)
    return -torch.log_softmax(all_logits, dim=1)[:, 0].sum() / u.shape[0]


def train_two_tower(
    net: TwoTowerNet,
    interactions: sp.csr_matrix,
    user_features: np.ndarray | None,
    item_features: np.ndarray | None,
    config: TrainConfig,
    on_epoch: Callable[[int, TrainReport], None] | None = None,
    source_targets: np.ndarray | None = None,
) -> TrainReport:
    """Fit ``net`` in place; returns the per-epoch report.

    ``source_targets``: optional (n_users, e) non-negative rows summing to 1 (the normalised source
    profile) for the auxiliary reconstruction loss; users with such a row train even without target
    history (their course profile is known even if they never bought). Otherwise users with an empty
    history carry no signal and are skipped. ``on_epoch`` is called after every epoch.
    """
    device = resolve_device(config.device)
    x = sp.csr_matrix(interactions)
    x.sort_indices()
    has_history = np.diff(x.indptr) > 0
    if source_targets is not None:
        if source_targets.shape[0] != x.shape[0]:
            raise ValueError(f"source_targets has {source_targets.shape[0]} rows, interactions {x.shape[0]}")
        has_history = has_history | (np.asarray(source_targets).sum(axis=1) > 0)
    active = np.flatnonzero(has_history)
    report = TrainReport(device=str(device))
    if active.size == 0:
        raise ValueError("interactions has no nonzero entry: nothing to train on")
    with deterministic(config.seed):
        net.to(device)
        uf = _as_tensor(user_features, device)
        itf = _as_tensor(item_features, device)
        src = _as_tensor(source_targets, device)
        rng = np.random.default_rng(config.seed)
        neg_gen = torch.Generator().manual_seed(config.seed + 1)
        opt = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        for epoch in range(config.epochs):
            net.train()
            t0 = time.perf_counter()
            order = rng.permutation(active)
            total_loss, seen = 0.0, 0
            for start in range(0, len(order), config.batch_size):
                users = order[start : start + config.batch_size]
                batch = make_user_batch(x, users, rng, config.history_dropout, config.cold_prob, device)
                if batch.target_items.numel() == 0 and src is None:
                    continue
                loss = two_tower_loss(net, batch, uf, itf, config, neg_gen, src)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total_loss += float(loss.detach()) * len(users)
                seen += batch.n_interactions
            if device.type == "cuda":
                torch.cuda.synchronize()
            secs = time.perf_counter() - t0
            report.epoch_loss.append(total_loss / len(order))
            report.epoch_seconds.append(secs)
            report.interactions_per_s.append(seen / secs if secs > 0 else float("inf"))
            _log(config.verbose, f"epoch {epoch + 1}/{config.epochs} loss {report.epoch_loss[-1]:.4f} "
                 f"{report.interactions_per_s[-1]:,.0f} interactions/s")
            if on_epoch is not None:
                on_epoch(epoch, report)
    net.eval()
    return report


class BPRMF(nn.Module):
    """Plain matrix factorisation with item biases, trained by BPR: the throughput reference."""

    def __init__(self, n_users: int, n_items: int, dim: int = 64) -> None:
        super().__init__()
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        self.bias = nn.Embedding(n_items, 1)
        nn.init.normal_(self.user.weight, std=0.1)
        nn.init.normal_(self.item.weight, std=0.1)
        nn.init.zeros_(self.bias.weight)

    def forward(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        u = self.user(users)
        diff = (u * (self.item(pos) - self.item(neg))).sum(1) + (self.bias(pos) - self.bias(neg)).squeeze(1)
        return -nn.functional.logsigmoid(diff).mean()


def train_bpr_mf(
    net: BPRMF,
    interactions: sp.csr_matrix,
    epochs: int = 10,
    batch_size: int = 8192,
    lr: float = 5e-3,
    l2: float = 1e-5,
    seed: int = 0,
    device: str | None = None,
    verbose: bool = False,
) -> TrainReport:
    """Fit a :class:`BPRMF` over shuffled positive pairs with one uniform negative each."""
    dev = resolve_device(device)
    coo = sp.coo_matrix(interactions)
    if coo.nnz == 0:
        raise ValueError("interactions has no nonzero entry: nothing to train on")
    users_all = torch.as_tensor(coo.row, dtype=torch.long)
    items_all = torch.as_tensor(coo.col, dtype=torch.long)
    n_items = int(interactions.shape[1])
    report = TrainReport(device=str(dev))
    with deterministic(seed):
        net.to(dev)
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        for epoch in range(epochs):
            t0 = time.perf_counter()
            perm = torch.randperm(coo.nnz, generator=gen)
            negs = torch.randint(0, n_items, (coo.nnz,), generator=gen)
            total = 0.0
            for start in range(0, coo.nnz, batch_size):
                idx = perm[start : start + batch_size]
                u = users_all[idx].to(dev)
                p = items_all[idx].to(dev)
                n = negs[start : start + batch_size].to(dev)
                loss = net(u, p, n)
                if l2 > 0:
                    loss = loss + l2 * (net.user(u).pow(2).sum() + net.item(p).pow(2).sum()) / len(idx)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            secs = time.perf_counter() - t0
            report.epoch_loss.append(total / coo.nnz)
            report.epoch_seconds.append(secs)
            report.interactions_per_s.append(coo.nnz / secs)
            _log(verbose, f"bpr-mf epoch {epoch + 1}/{epochs} loss {report.epoch_loss[-1]:.4f} "
                 f"{report.interactions_per_s[-1]:,.0f} interactions/s")
    net.eval()
    return report
