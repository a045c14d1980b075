"""A denoising network over a user's history and side features, trained in torch, scored in numpy.

The network reads what the service knows about a user, the target-domain history (the products they
hold, the movies they rated) and the side features (the course-domain profile, demographics), and
scores every item::

    h      = tanh(W_x x / sqrt(|x|) + W_f z(f) + b)
    scores = W_o h + b_o  [+ S_x x / sqrt(|x|) + S_f z(f)]        (the bracket: ``linear_skip``)

``z(f)`` scales the features: standardised with the training mean and spread (``feature_scaling=
"standard"``, dense profiles such as topic interests and demographics) or divided by the row's L2 norm
(``"l2"``, bag-of-items profiles such as the source-domain ratings, where standardising would blow up
rare columns). The optional linear skip gives
the network a closed-form-like linear path (an item-item matrix and a feature-to-item map) next to the
non-linear one.

Training is the denoising recipe of Mult-DAE (Liang et al. 2018) with a multinomial (softmax)
likelihood, and the batches say what the network has to learn to predict (``objective``):

* ``"dropout"``: every history item is moved from the input to the targets with probability
  ``history_dropout``; ``targets="all"`` asks for the whole history back (Mult-DAE),
  ``targets="held_out"`` only for the moved items (their logits compete with the unseen items only);
* ``"hide_one"``: exactly one held item is hidden and is the target, the "which product next" task;
* ``cold_prob``: the whole history is hidden with this probability and the features alone must predict
  it, the cold-start situation of a learner who never bought a product.

The loop is :func:`recommender.trainer.train` (the module provides its loss, the sampler its batches);
after training the weights are exported to numpy and scoring never imports torch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from recommender.models.base import InteractionData, Recommender
from recommender.trainer import TrainerConfig, TrainReport, train

Objective = Literal["dropout", "hide_one"]
_STD_FLOOR = 1e-3


def _scale(features: np.ndarray, mean: np.ndarray | None, std: np.ndarray | None) -> np.ndarray:
    """Standardised features, or L2-normalised rows when the stored spread is all zeros (``"l2"``)."""
    f = np.asarray(features, dtype=np.float32)
    assert mean is not None and std is not None
    if not std.any():
        norms = np.linalg.norm(f, axis=1, keepdims=True)
        return np.divide(f, norms, out=np.zeros_like(f), where=norms > 1e-12)
    return (f - mean) / std


@dataclass
class DenoisingBatch:
    """Inputs, targets and features of a batch of users, on the training device."""

    inputs: torch.Tensor
    targets: torch.Tensor
    features: torch.Tensor | None
    mask_inputs: bool

    @property
    def n_interactions(self) -> int:
        return int(self.inputs.count_nonzero() + self.targets.count_nonzero())

    @property
    def loss_weight(self) -> float:
        return float(self.inputs.shape[0])


class DenoisingSampler:
    """Users with a history, shuffled every epoch; each history split into input and targets."""

    def __init__(
        self,
        interactions: sp.csr_matrix,
        features: np.ndarray | None,
        net: DenoisingNet,
    ) -> None:
        x = sp.csr_matrix(interactions, dtype=np.float32, copy=True)
        x.eliminate_zeros()
        x.data[:] = 1.0
        self.x = x
        self.users = np.flatnonzero(np.diff(x.indptr) > 0)
        if self.users.size == 0:
            raise ValueError("the denoising network needs at least one user with a history")
        self.features = None if features is None else torch.as_tensor(features, dtype=torch.float32)
        self.net = net
        self.rng = np.random.default_rng(net.seed)
        self.gen = torch.Generator().manual_seed(net.seed + 1)

    @property
    def n_examples(self) -> int:
        return int(self.users.size)

    def _split(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        full = self.x[rows].toarray()
        held = full > 0
        net = self.net
        if net.objective == "hide_one":
            keep = held.copy()
            hidden = np.zeros_like(held)
            for i, row in enumerate(held):
                owned = np.flatnonzero(row)
                j = owned[self.rng.integers(owned.size)]
                keep[i, j] = False
                hidden[i, j] = True
            targets = hidden
        else:
            keep = held & (self.rng.random(held.shape) >= net.history_dropout)
            targets = held if net.targets == "all" else held & ~keep
        cold = self.rng.random(len(rows)) < net.cold_prob
        keep[cold] = False
        if net.objective == "hide_one" or net.targets == "held_out":
            targets[cold] = held[cold]
        return keep.astype(np.float32), targets.astype(np.float32)

    def epoch(self, device: torch.device) -> Iterator[DenoisingBatch]:
        order = self.rng.permutation(self.users)
        bs = self.net.batch_size
        masked = self.net.objective == "hide_one" or self.net.targets == "held_out"
        for start in range(0, order.size, bs):
            rows = order[start : start + bs]
            inputs, targets = self._split(rows)
            ok = targets.sum(axis=1) > 0
            if not ok.any():
                continue
            rows, inputs, targets = rows[ok], inputs[ok], targets[ok]
            feats = None
            if self.features is not None:
                feats = self.features[torch.as_tensor(rows)]
                p = self.net.feature_dropout
                if p > 0:
                    keep = (torch.rand(feats.shape, generator=self.gen) >= p).float()
                    feats = feats * keep / (1.0 - p)
                feats = feats.to(device)
            yield DenoisingBatch(
                torch.as_tensor(inputs, device=device), torch.as_tensor(targets, device=device), feats, masked
            )


class DenoisingModule(nn.Module):
    """The torch network of :class:`DenoisingNet` (see the module docstring)."""

    def __init__(self, n_items: int, n_features: int, hidden: int, linear_skip: bool) -> None:
        super().__init__()
        self.enc_x = nn.Linear(n_items, hidden, bias=False)
        self.enc_f = nn.Linear(n_features, hidden, bias=True) if n_features else None
        self.bias = nn.Parameter(torch.zeros(hidden))
        self.dec = nn.Linear(hidden, n_items)
        self.skip_x = nn.Linear(n_items, n_items, bias=False) if linear_skip else None
        self.skip_f = nn.Linear(n_features, n_items, bias=False) if linear_skip and n_features else None
        for layer in (self.skip_x, self.skip_f):
            if layer is not None:
                nn.init.zeros_(layer.weight)

    def forward(self, inputs: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        norm = inputs / inputs.sum(dim=1, keepdim=True).clamp(min=1.0).sqrt()
        h = self.enc_x(norm) + self.bias
        if self.enc_f is not None and features is not None:
            h = h + self.enc_f(features)
        out = self.dec(torch.tanh(h))
        if self.skip_x is not None:
            out = out + self.skip_x(norm)
        if self.skip_f is not None and features is not None:
            out = out + self.skip_f(features)
        return out

    def calculate_loss(self, batch: DenoisingBatch) -> torch.Tensor:
        """Multinomial log-likelihood of the targets, averaged over the batch's users."""
        logits = self(batch.inputs, batch.features)
        if batch.mask_inputs:
            logits = logits.masked_fill(batch.inputs > 0, -1e9)
        return -(torch.log_softmax(logits, dim=1) * batch.targets).sum(dim=1).mean()


class DenoisingNet(Recommender):
    """``DenoisingNet(hidden=256, epochs=40, objective="dropout", ...)``: see the module docstring.

    ``use_features``: read the user side features when the data has them. ``seed`` fixes every random
    draw; ``device`` is ``None`` (CUDA when present, else CPU), ``"cpu"`` or ``"cuda"``.
    """

    name: ClassVar[str] = "denoising_net"
    state_fields: ClassVar[tuple[str, ...]] = (
        "w_x",
        "w_f",
        "bias",
        "w_o",
        "b_o",
        "s_x",
        "s_f",
        "feature_mean",
        "feature_std",
    )

    def __init__(
        self,
        hidden: int = 256,
        epochs: int = 40,
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        objective: Objective = "dropout",
        history_dropout: float = 0.5,
        targets: Literal["all", "held_out"] = "all",
        cold_prob: float = 0.0,
        feature_dropout: float = 0.0,
        use_features: bool = True,
        feature_scaling: Literal["standard", "l2"] = "standard",
        linear_skip: bool = False,
        seed: int = 0,
        device: str | None = None,
        verbose: bool = False,
    ) -> None:
        if hidden < 1 or batch_size < 1:
            raise ValueError(f"hidden and batch_size must be positive, got {hidden}, {batch_size}")
        if objective not in ("dropout", "hide_one"):
            raise ValueError(f"objective must be 'dropout' or 'hide_one', got {objective!r}")
        if targets not in ("all", "held_out"):
            raise ValueError(f"targets must be 'all' or 'held_out', got {targets!r}")
        for field, value in (("history_dropout", history_dropout), ("feature_dropout", feature_dropout)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{field} must be in [0, 1), got {value}")
        if not 0.0 <= cold_prob <= 1.0:
            raise ValueError(f"cold_prob must be in [0, 1], got {cold_prob}")
        self.hidden, self.batch_size = int(hidden), int(batch_size)
        self.objective: Objective = objective
        self.targets: Literal["all", "held_out"] = targets
        self.history_dropout, self.feature_dropout = float(history_dropout), float(feature_dropout)
        self.cold_prob = float(cold_prob)
        if feature_scaling not in ("standard", "l2"):
            raise ValueError(f"feature_scaling must be 'standard' or 'l2', got {feature_scaling!r}")
        self.feature_scaling: Literal["standard", "l2"] = feature_scaling
        self.use_features, self.linear_skip = bool(use_features), bool(linear_skip)
        self.seed = int(seed)
        self.trainer = TrainerConfig(
            epochs=epochs,
            lr=lr,
            weight_decay=weight_decay,
            seed=seed,
            device=device,
            verbose=verbose,
            name="denoising-net",
        )
        self.report: TrainReport | None = None
        for name in self.state_fields:
            setattr(self, name, None)

    @property
    def uses_features(self) -> bool:  # type: ignore[override]
        return getattr(self, "w_f", None) is not None

    def get_params(self) -> dict[str, Any]:
        t = self.trainer
        return {
            "hidden": self.hidden,
            "epochs": t.epochs,
            "batch_size": self.batch_size,
            "lr": t.lr,
            "weight_decay": t.weight_decay,
            "objective": self.objective,
            "history_dropout": self.history_dropout,
            "targets": self.targets,
            "cold_prob": self.cold_prob,
            "feature_dropout": self.feature_dropout,
            "use_features": self.use_features,
            "feature_scaling": self.feature_scaling,
            "linear_skip": self.linear_skip,
            "seed": self.seed,
            "device": t.device,
        }

    def fit(self, data: InteractionData) -> DenoisingNet:
        feats = None
        if self.use_features and data.user_features is not None:
            uf = np.asarray(data.user_features, dtype=np.float32)
            if uf.shape != (data.n_users, uf.shape[1]) or not np.isfinite(uf).all():
                raise ValueError(f"user_features must be finite with {data.n_users} rows, got {uf.shape}")
            if self.feature_scaling == "l2":
                mean, std = np.zeros(uf.shape[1], np.float32), np.zeros(uf.shape[1], np.float32)
            else:
                mean, std = uf.mean(axis=0), np.maximum(uf.std(axis=0), _STD_FLOOR)
            feats = _scale(uf, mean, std)
        torch.manual_seed(self.seed)
        module = DenoisingModule(
            data.n_items, 0 if feats is None else feats.shape[1], self.hidden, self.linear_skip
        )
        sampler = DenoisingSampler(data.interactions, feats, self)
        self.report = train(module, sampler, self.trainer)
        self._export(module)
        self.feature_mean = None if feats is None else mean
        self.feature_std = None if feats is None else std
        self._remember(data)
        if not self.uses_features:
            self.n_features = None
        return self

    def _export(self, module: DenoisingModule) -> None:
        def arr(t: torch.Tensor) -> np.ndarray:
            return t.detach().cpu().numpy().astype(np.float32).copy()

        self.w_x = arr(module.enc_x.weight.T)
        self.bias = arr(module.bias)
        self.w_f = None if module.enc_f is None else arr(module.enc_f.weight.T)
        if module.enc_f is not None:
            self.bias = self.bias + arr(module.enc_f.bias)
        self.w_o = arr(module.dec.weight.T)
        self.b_o = arr(module.dec.bias)
        self.s_x = None if module.skip_x is None else arr(module.skip_x.weight.T)
        self.s_f = None if module.skip_f is None else arr(module.skip_f.weight.T)

    def _score(self, history: sp.csr_matrix, features: np.ndarray | None) -> np.ndarray:
        assert self.w_x is not None and self.w_o is not None
        counts = np.diff(history.indptr).astype(np.float32)
        norm = sp.diags(1.0 / np.sqrt(np.maximum(counts, 1.0))) @ history
        h = np.asarray(norm @ self.w_x) + self.bias
        z = None
        if self.w_f is not None and features is not None:
            z = _scale(features, self.feature_mean, self.feature_std)
            h = h + z @ self.w_f
        out = np.tanh(h) @ self.w_o + self.b_o
        if self.s_x is not None:
            out = out + np.asarray(norm @ self.s_x)
        if self.s_f is not None and z is not None:
            out = out + z @ self.s_f
        return np.asarray(out, dtype=np.float32)
