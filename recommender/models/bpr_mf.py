"""Plain BPR matrix factorisation in torch: the reference point of the training-throughput benchmark.

Trained by the generic loop of :mod:`recommender.trainer` like the hybrid's towers, over shuffled
(user, item) pairs with one uniform negative each (:class:`PairSampler`), so the two throughput
figures measure the models and not two different loops.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import scipy.sparse as sp
import torch
from torch import nn

from recommender.trainer import TrainerConfig, TrainReport, train


@dataclass
class PairBatch:
    """Positive (user, item) pairs and one negative item per pair, on the training device."""

    users: torch.Tensor
    pos: torch.Tensor
    neg: torch.Tensor

    @property
    def n_interactions(self) -> int:
        return int(self.users.shape[0])

    @property
    def loss_weight(self) -> float:
        """The BPR-MF loss is already a sum over the batch's pairs."""
        return 1.0


class PairSampler:
    """Every positive pair once per epoch, in a fresh random order, each with a uniform negative item."""

    def __init__(self, interactions: sp.spmatrix, batch_size: int = 8192, seed: int = 0) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        coo = sp.coo_matrix(interactions)
        if coo.nnz == 0:
            raise ValueError("interactions has no nonzero entry: nothing to train on")
        self.users = torch.as_tensor(coo.row, dtype=torch.long)
        self.items = torch.as_tensor(coo.col, dtype=torch.long)
        self.n_items = int(coo.shape[1])
        self.batch_size = batch_size
        self.gen = torch.Generator().manual_seed(seed)

    @property
    def n_examples(self) -> int:
        return int(self.users.shape[0])

    def epoch(self, device: torch.device) -> Iterator[PairBatch]:
        nnz = self.n_examples
        perm = torch.randperm(nnz, generator=self.gen)
        negs = torch.randint(0, self.n_items, (nnz,), generator=self.gen)
        for start in range(0, nnz, self.batch_size):
            idx = perm[start : start + self.batch_size]
            yield PairBatch(
                self.users[idx].to(device),
                self.items[idx].to(device),
                negs[start : start + self.batch_size].to(device),
            )


class BPRMF(nn.Module):
    """Plain matrix factorisation with item biases, trained by BPR: the throughput reference.

    Embeddings are sparse (only the rows of a batch get gradients) and are updated by plain SGD on the
    summed loss, the cheapest correct setup for factorisation models in torch (dense Adam touches every
    embedding row on every step, which dominates the cost once there are 100k users). ``l2`` weighs an
    L2 penalty on the embeddings a batch touches.
    """

    def __init__(self, n_users: int, n_items: int, dim: int = 64, seed: int = 0, l2: float = 0.0) -> None:
        super().__init__()
        if not l2 >= 0:
            raise ValueError(f"l2 must be >= 0, got {l2}")
        self.l2 = float(l2)
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

    def calculate_loss(self, batch: PairBatch) -> torch.Tensor:
        """Summed BPR loss of the batch's pairs plus the L2 penalty."""
        return self(batch.users, batch.pos, batch.neg, self.l2)


def train_bpr_mf(
    net: BPRMF,
    interactions: sp.spmatrix,
    epochs: int = 10,
    batch_size: int = 8192,
    lr: float = 0.05,
    seed: int = 0,
    device: str | None = None,
    verbose: bool = False,
) -> TrainReport:
    """Fit a :class:`BPRMF` with plain SGD over shuffled positive pairs with one uniform negative each."""
    sampler = PairSampler(interactions, batch_size=batch_size, seed=seed)
    config = TrainerConfig(
        epochs=epochs, lr=lr, optimizer="sgd", seed=seed, device=device, verbose=verbose, name="bpr-mf"
    )
    return train(net, sampler, config)
