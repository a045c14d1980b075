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
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}") from exc
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
    profile, which regularises the transfer path). ``history_dropout``: probability that a history item
    is moved from input to target.
    ``cold_prob``: probability that a user's entire history is hidden from the user tower. ``targets``:
    ``"held_out"`` scores only the items moved out of the input, ``"all"`` the whole history (the
    Mult-DAE recipe, better when every user has history, as on MovieLens).
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
        if self.targets not in ("held_out", "all"):
            raise ValueError(f"targets must be 'held_out' or 'all', got {self.targets!r}")
        if not 0.0 <= self.cold_prob <= 1.0:
            raise ValueError(f"cold_prob must be in [0, 1], got {self.cold_prob}")
        if not 0.0 <= self.feature_dropout < 1.0:
            raise ValueError(f"feature_dropout must be in [0, 1), got {self.feature_dropout}")
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
) -> torch.Tensor:
    """Loss of one batch: multinomial softmax (full or sampled) or BPR over the target items."""
    feats = None if user_features is None else user_features[batch.users]
    if feats is not None and config.feature_dropout > 0:
        keep = torch.rand(feats.shape, generator=neg_gen).to(feats.device) >= config.feature_dropout
        feats = feats * keep / (1.0 - config.feature_dropout)
    u = net.user_vectors(batch.input_items, batch.input_offsets, batch.input_weights, feats, batch.users)
    return _target_loss(net, u, batch, item_features, config, neg_gen)


def _target_loss(
    net: TwoTowerNet,
    u: torch.Tensor,
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
        logp = torch.log_softmax(logits, dim=1)
        return -logp[batch.target_rows, batch.target_items].sum() / u.shape[0]
    pos = (u[batch.target_rows] * item_vec[batch.target_items]).sum(1) + item_bias[batch.target_items]
    if config.loss == "bpr":
        neg_items = torch.randint(0, n_items, (n_targets,), generator=neg_gen).to(device)
        neg = (u[batch.target_rows] * item_vec[neg_items]).sum(1) + item_bias[neg_items]
        return -nn.functional.logsigmoid(pos - neg).mean()
    n_neg = int(config.n_negatives or 1)
    neg_items = torch.randint(0, n_items, (n_neg,), generator=neg_gen).to(device)
    neg_logits = u @ item_vec[neg_items].T + item_bias[neg_items]  # (B, n_neg), shared by the user's targets
    # softmax of each target against the shared negatives: -pos + log(exp(pos) + sum exp(neg)), with the
    # negatives' log-sum-exp computed once per user instead of once per target
    neg_lse = torch.logsumexp(neg_logits, dim=1)[batch.target_rows]
    return (torch.logaddexp(pos, neg_lse) - pos).sum() / u.shape[0]


def train_two_tower(
    net: TwoTowerNet,
    interactions: sp.csr_matrix,
    user_features: np.ndarray | None,
    item_features: np.ndarray | None,
    config: TrainConfig,
    on_epoch: Callable[[int, TrainReport], None] | None = None,
) -> TrainReport:
    """Fit ``net`` in place; returns the per-epoch report.

    Users with an empty history carry no training signal and are skipped. ``on_epoch`` is called after
    every epoch (e.g. for progress output or validation).
    """
    device = resolve_device(config.device)
    x = sp.csr_matrix(interactions)
    x.sort_indices()
    active = np.flatnonzero(np.diff(x.indptr) > 0)
    report = TrainReport(device=str(device))
    if active.size == 0:
        raise ValueError("interactions has no nonzero entry: nothing to train on")
    with deterministic(config.seed):
        net.to(device)
        uf = _as_tensor(user_features, device)
        itf = _as_tensor(item_features, device)
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
                batch = make_user_batch(
                    x, users, rng, config.history_dropout, config.cold_prob, device, config.targets == "all"
                )
                if batch.target_items.numel() == 0:
                    continue
                loss = two_tower_loss(net, batch, uf, itf, config, neg_gen)
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
            _log(
                config.verbose,
                f"epoch {epoch + 1}/{config.epochs} loss {report.epoch_loss[-1]:.4f} "
                f"{report.interactions_per_s[-1]:,.0f} interactions/s",
            )
            if on_epoch is not None:
                on_epoch(epoch, report)
    net.eval()
    return report


class BPRMF(nn.Module):
    """Plain matrix factorisation with item biases, trained by BPR: the throughput reference.

    Embeddings are sparse (only the rows of a batch get gradients) and are updated by plain SGD on the
    summed loss, the cheapest correct setup for factorisation models in torch (dense Adam touches every
    embedding row on every step, which dominates the cost once there are 100k users).
    """

    def __init__(self, n_users: int, n_items: int, dim: int = 64, seed: int = 0) -> None:
        super().__init__()
        self.user = nn.Embedding(n_users, dim, sparse=True)
        self.item = nn.Embedding(n_items, dim, sparse=True)
        self.bias = nn.Embedding(n_items, 1, sparse=True)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.user.weight.copy_(torch.randn(n_users, dim, generator=gen) * 0.1)
            self.item.weight.copy_(torch.randn(n_items, dim, generator=gen) * 0.1)
        nn.init.zeros_(self.bias.weight)

    def forward(
        self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, l2: float = 0.0
    ) -> torch.Tensor:
        u, p, n = self.user(users), self.item(pos), self.item(neg)
        diff = (u * (p - n)).sum(1) + (self.bias(pos) - self.bias(neg)).squeeze(1)
        loss = -nn.functional.logsigmoid(diff).sum()
        if l2 > 0:
            loss = loss + l2 * (u.pow(2).sum() + p.pow(2).sum() + n.pow(2).sum())
        return loss


def train_bpr_mf(
    net: BPRMF,
    interactions: sp.csr_matrix,
    epochs: int = 10,
    batch_size: int = 8192,
    lr: float = 0.05,
    l2: float = 0.0,
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
        opt = torch.optim.SGD(net.parameters(), lr=lr)
        for epoch in range(epochs):
            t0 = time.perf_counter()
            perm = torch.randperm(coo.nnz, generator=gen)
            negs = torch.randint(0, n_items, (coo.nnz,), generator=gen)
            total = 0.0
            for start in range(0, coo.nnz, batch_size):
                idx = perm[start : start + batch_size]
                loss = net(
                    users_all[idx].to(dev),
                    items_all[idx].to(dev),
                    negs[start : start + batch_size].to(dev),
                    l2,
                )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach())
            if dev.type == "cuda":
                torch.cuda.synchronize()
            secs = time.perf_counter() - t0
            report.epoch_loss.append(total / coo.nnz)
            report.epoch_seconds.append(secs)
            report.interactions_per_s.append(coo.nnz / secs)
            _log(
                verbose,
                f"bpr-mf epoch {epoch + 1}/{epochs} loss {report.epoch_loss[-1]:.4f} "
                f"{report.interactions_per_s[-1]:,.0f} interactions/s",
            )
    net.eval()
    return report
