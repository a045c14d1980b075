"""The torch training loop, generic over the model: the model provides its loss, a sampler its batches.

A model trained here is a torch module with one extra method, ``calculate_loss(batch) -> Tensor``
(:class:`TrainableModel`); the batches come from a :class:`BatchSampler`, which owns the data, the
batching scheme and every random draw of the data side (shuffles, corruption of the input, negative
samples). :func:`train` owns the rest: the device, the optimiser, the epochs, the per-epoch report and
progress output, and optional early stopping. Models define neither loop nor optimiser, and the loop
knows nothing about any model: :mod:`recommender.models.two_tower` (the hybrid's towers) and
:mod:`recommender.models.bpr_mf` (the throughput reference) are trained by the same code, so their
throughput figures are comparable.

Runs are reproducible: :func:`deterministic` seeds torch, switches on deterministic algorithms and
restores the previous global state afterwards; samplers draw from generators of their own, seeded by
their caller. CPU by default, CUDA when asked for or when ``device=None`` and a GPU is present.
"""

from __future__ import annotations

import contextlib
import copy
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

import torch
from torch import nn

OptimizerName = Literal["adam", "sgd"]


class Batch(Protocol):
    """What the loop reads from a batch besides handing it to the model."""

    @property
    def n_interactions(self) -> int:
        """Interactions this step feeds through the model (the throughput count)."""
        ...

    @property
    def loss_weight(self) -> float:
        """Weight of this batch's loss in the epoch loss (e.g. the number of examples it averages over)."""
        ...


BatchT = TypeVar("BatchT", bound=Batch)
BatchT_co = TypeVar("BatchT_co", bound=Batch, covariant=True)
BatchT_contra = TypeVar("BatchT_contra", bound=Batch, contravariant=True)


class BatchSampler(Protocol[BatchT_co]):
    """The data side of a run: yields one epoch of batches, already on ``device``."""

    @property
    def n_examples(self) -> int:
        """Denominator of the epoch loss: ``sum(loss * loss_weight) / n_examples`` is reported."""
        ...

    def epoch(self, device: torch.device) -> Iterator[BatchT_co]:
        """The batches of the next epoch (each call continues the sampler's random streams)."""
        ...


class TrainableModel(Protocol[BatchT_contra]):
    """A torch module that computes its own training loss from a batch."""

    def calculate_loss(self, batch: BatchT_contra) -> torch.Tensor:
        """Scalar loss of ``batch``, differentiable with respect to the module's parameters."""
        ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any: ...

    def to(self, device: torch.device) -> Any: ...

    def train(self, mode: bool = True) -> Any: ...

    def eval(self) -> Any: ...


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
class TrainerConfig:
    """Settings of the loop itself (the model and the sampler carry their own).

    ``optimizer``: ``"adam"`` (dense parameters) or ``"sgd"`` (plain SGD, the one that handles sparse
    embedding gradients). ``patience``: stop after this many epochs without an improvement larger than
    ``min_delta`` of the monitored value (the ``validate`` score when :func:`train` is given one, higher
    is better; otherwise the epoch loss, lower is better) and restore the weights of the best epoch;
    ``None`` runs every epoch. ``name`` prefixes the progress lines printed when ``verbose``.
    """

    epochs: int = 20
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: OptimizerName = "adam"
    seed: int = 0
    device: str | None = None
    verbose: bool = False
    patience: int | None = None
    min_delta: float = 0.0
    name: str = ""

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be >= 1 or None, got {self.patience}")
        if not self.min_delta >= 0:
            raise ValueError(f"min_delta must be >= 0, got {self.min_delta}")


@dataclass
class TrainReport:
    """What a run did: per-epoch loss, wall time and interactions processed per second.

    ``monitored``: the per-epoch value early stopping watched (empty without ``patience``);
    ``best_epoch``: the epoch whose weights the model holds after an early-stopped run (0-based).
    """

    device: str
    epoch_loss: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    interactions_per_s: list[float] = field(default_factory=list)
    monitored: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False


def _log(verbose: bool, msg: str) -> None:
    if verbose:
        print(msg, file=sys.stderr, flush=True)


def _optimizer(model: TrainableModel[Any], config: TrainerConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


class _EarlyStopping:
    """Tracks the best monitored value and keeps a copy of the weights that produced it."""

    def __init__(self, patience: int, min_delta: float, higher_is_better: bool) -> None:
        self.patience = patience
        self.min_delta = min_delta
        self.sign = 1.0 if higher_is_better else -1.0
        self.best = -math.inf
        self.best_epoch: int | None = None
        self.best_state: dict[str, Any] | None = None
        self.waited = 0

    def update(self, epoch: int, value: float, model: TrainableModel[Any]) -> bool:
        """Record ``value``; ``True`` when the run should stop."""
        score = self.sign * value
        if self.best_epoch is None or score > self.best + self.min_delta:
            self.best, self.best_epoch, self.waited = score, epoch, 0
            self.best_state = copy.deepcopy(model.state_dict())
            return False
        self.waited += 1
        return self.waited >= self.patience


def train(
    model: TrainableModel[BatchT],
    sampler: BatchSampler[BatchT],
    config: TrainerConfig,
    on_epoch: Callable[[int, TrainReport], None] | None = None,
    validate: Callable[[int], float] | None = None,
) -> TrainReport:
    """Fit ``model`` in place on the batches of ``sampler``; returns the per-epoch report.

    ``on_epoch(epoch, report)`` is called after every epoch (progress output, logging); ``validate(epoch)``
    returns a score to monitor for early stopping (higher is better). Both see the model in training
    mode; the model is left in evaluation mode.
    """
    device = resolve_device(config.device)
    report = TrainReport(device=str(device))
    stopper = (
        None
        if config.patience is None
        else _EarlyStopping(config.patience, config.min_delta, higher_is_better=validate is not None)
    )
    with deterministic(config.seed):
        model.to(device)
        opt = _optimizer(model, config)
        prefix = f"{config.name} " if config.name else ""
        for epoch in range(config.epochs):
            model.train()
            t0 = time.perf_counter()
            total_loss, seen = 0.0, 0
            for batch in sampler.epoch(device):
                loss = model.calculate_loss(batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total_loss += float(loss.detach()) * batch.loss_weight
                seen += batch.n_interactions
            if device.type == "cuda":
                torch.cuda.synchronize()
            secs = time.perf_counter() - t0
            report.epoch_loss.append(total_loss / sampler.n_examples)
            report.epoch_seconds.append(secs)
            report.interactions_per_s.append(seen / secs if secs > 0 else float("inf"))
            _log(
                config.verbose,
                f"{prefix}epoch {epoch + 1}/{config.epochs} loss {report.epoch_loss[-1]:.4f} "
                f"{report.interactions_per_s[-1]:,.0f} interactions/s",
            )
            if on_epoch is not None:
                on_epoch(epoch, report)
            if stopper is not None:
                value = float(validate(epoch)) if validate is not None else report.epoch_loss[-1]
                report.monitored.append(value)
                if stopper.update(epoch, value, model):
                    report.stopped_early = True
                    _log(config.verbose, f"{prefix}early stop after epoch {epoch + 1}")
                    break
        if stopper is not None and stopper.best_state is not None:
            model.load_state_dict(stopper.best_state)
            report.best_epoch = stopper.best_epoch
    model.eval()
    return report
