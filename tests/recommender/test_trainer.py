"""The generic training loop: any module that provides its loss trains, with the loop's guarantees."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from recommender.trainer import TrainerConfig, TrainReport, train


@dataclass
class XYBatch:
    x: torch.Tensor
    y: torch.Tensor

    @property
    def n_interactions(self) -> int:
        return int(self.x.shape[0])

    @property
    def loss_weight(self) -> float:
        return float(self.x.shape[0])  # the models below return a mean over the batch


class XYSampler:
    """Shuffled mini-batches of a fixed (x, y) data set."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int = 16, seed: int = 0) -> None:
        self.x = torch.as_tensor(x, dtype=torch.float32)
        self.y = torch.as_tensor(y, dtype=torch.float32)
        self.batch_size = batch_size
        self.gen = torch.Generator().manual_seed(seed)

    @property
    def n_examples(self) -> int:
        return int(self.x.shape[0])

    def epoch(self, device: torch.device) -> Iterator[XYBatch]:
        perm = torch.randperm(self.n_examples, generator=self.gen)
        for start in range(0, self.n_examples, self.batch_size):
            idx = perm[start : start + self.batch_size]
            yield XYBatch(self.x[idx].to(device), self.y[idx].to(device))


class LinearRegression(nn.Module):
    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_features, 1)

    def calculate_loss(self, batch: XYBatch) -> torch.Tensor:
        return nn.functional.mse_loss(self.linear(batch.x).squeeze(1), batch.y)


class TwoLayerClassifier(nn.Module):
    def __init__(self, n_features: int, hidden: int = 8) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def calculate_loss(self, batch: XYBatch) -> torch.Tensor:
        logits = self.net(batch.x).squeeze(1)
        return nn.functional.binary_cross_entropy_with_logits(logits, (batch.y > 0).float())


def toy_xy(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = x @ np.array([1.5, -2.0, 0.5]) + 0.3 + rng.normal(scale=0.1, size=n)
    return x, y


def fit(model: nn.Module, config: TrainerConfig, **kw: object) -> tuple[TrainReport, dict[str, torch.Tensor]]:
    x, y = toy_xy()
    report = train(model, XYSampler(x, y, seed=config.seed), config, **kw)  # type: ignore[arg-type]
    return report, {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("make", [LinearRegression, TwoLayerClassifier])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_two_model_classes_train_through_the_same_loop(make: type[nn.Module], optimizer: str) -> None:
    torch.manual_seed(0)
    model = make(3)
    lr = 0.05 if optimizer == "adam" else 0.1
    report, _ = fit(model, TrainerConfig(epochs=12, lr=lr, optimizer=optimizer))  # type: ignore[arg-type]
    assert len(report.epoch_loss) == 12 and all(np.isfinite(report.epoch_loss))
    assert report.epoch_loss[-1] < 0.5 * report.epoch_loss[0]
    assert report.device == "cpu" or torch.cuda.is_available()
    assert all(rate > 0 for rate in report.interactions_per_s)
    assert not model.training  # handed back in evaluation mode


def test_same_seed_same_weights() -> None:
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        runs.append(fit(TwoLayerClassifier(3), TrainerConfig(epochs=3, lr=0.01, seed=4)))
    (report_a, weights_a), (report_b, weights_b) = runs
    assert report_a.epoch_loss == report_b.epoch_loss
    for key, value in weights_a.items():
        torch.testing.assert_close(value, weights_b[key], rtol=0, atol=0)


class ConstantLoss(nn.Module):
    """A loss that ignores the parameters: the epoch loss must be the weighted mean of the batch values."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def calculate_loss(self, batch: XYBatch) -> torch.Tensor:
        return self.w.sum() * 0.0 + batch.y.mean()


def test_epoch_loss_is_the_weighted_mean_of_the_batch_losses() -> None:
    x = np.zeros((5, 1))
    y = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    # batches of 2, 2 and 1: whatever the order, sum(mean(batch) * len(batch)) / 5 is the mean of y = 4
    report = train(ConstantLoss(), XYSampler(x, y, batch_size=2), TrainerConfig(epochs=2))
    assert report.epoch_loss == pytest.approx([4.0, 4.0])


def test_on_epoch_sees_every_epoch_and_the_report_so_far() -> None:
    seen: list[tuple[int, int]] = []
    fit(
        LinearRegression(3),
        TrainerConfig(epochs=4),
        on_epoch=lambda e, r: seen.append((e, len(r.epoch_loss))),
    )
    assert seen == [(0, 1), (1, 2), (2, 3), (3, 4)]


def test_early_stopping_on_a_validation_score_restores_the_best_epoch() -> None:
    scores = [0.1, 0.5, 0.4, 0.45, 0.3, 0.9]  # best at epoch 1, then two epochs without improvement
    config = TrainerConfig(epochs=6, lr=0.01, patience=2, seed=1)
    torch.manual_seed(0)
    report, weights = fit(LinearRegression(3), config, validate=lambda epoch: scores[epoch])
    assert report.stopped_early and report.best_epoch == 1
    assert len(report.epoch_loss) == 4 and report.monitored == scores[:4]
    # the weights handed back are those after epoch 1: a two-epoch run of the same seed ends there
    torch.manual_seed(0)
    _, two_epochs = fit(LinearRegression(3), TrainerConfig(epochs=2, lr=0.01, seed=1))
    for key, value in weights.items():
        torch.testing.assert_close(value, two_epochs[key], rtol=0, atol=0)


def test_early_stopping_without_validation_watches_the_training_loss() -> None:
    torch.manual_seed(0)
    report, _ = fit(LinearRegression(3), TrainerConfig(epochs=30, lr=0.05, patience=1, min_delta=100.0))
    # the first epoch's loss is below the required improvement, so no later epoch can count as better
    assert report.epoch_loss[0] < 100.0
    assert report.stopped_early and report.best_epoch == 0 and len(report.epoch_loss) == 2
    assert report.monitored == report.epoch_loss


@pytest.mark.parametrize(
    ("field", "value"),
    [("epochs", 0), ("lr", 0.0), ("weight_decay", -1.0), ("optimizer", "rmsprop"), ("patience", 0)],
)
def test_trainer_config_names_the_bad_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        TrainerConfig(**{field: value})  # type: ignore[arg-type]
