"""Training throughput of the hybrid two-tower and of a plain torch BPR-MF on synthetic data.

    python scripts/bench_training_throughput.py [--device cpu|cuda] [--interactions 10000000] [--epochs 2]

Prints one JSON object on stdout (progress on stderr): interactions processed per second for every
epoch, for the hybrid with its BPR loss (the like-for-like comparison with BPR-MF), the hybrid with
sampled softmax, and BPR-MF. An interaction counts as processed when it has been fed through a training
step (as input history or as a target for the hybrid, as a positive pair for BPR-MF).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from recommender.data.synthetic import synthetic_interactions
from recommender.models.bpr_mf import BPRMF, train_bpr_mf
from recommender.models.two_tower import TwoTowerConfig, TwoTowerNet, train_two_tower


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _summary(per_epoch: list[float], seconds: list[float]) -> dict[str, Any]:
    return {
        "interactions_per_s_per_epoch": [round(v, 1) for v in per_epoch],
        "epoch_seconds": [round(v, 3) for v in seconds],
        "interactions_per_s_mean": round(float(np.mean(per_epoch)), 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--interactions", type=int, default=10_000_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "error: --device cuda was requested but no CUDA device is available "
            f"(torch {torch.__version__}, cuda build: {torch.version.cuda}); run with --device cpu",
            file=sys.stderr,
        )
        return 2
    if args.interactions < 1000:
        parser.error("--interactions must be at least 1000")

    t0 = time.perf_counter()
    data = synthetic_interactions(n_interactions=args.interactions, seed=args.seed)
    gen_s = time.perf_counter() - t0
    log(
        f"synthetic set: {data.interactions.shape[0]:,} users x {data.interactions.shape[1]:,} items, "
        f"{data.interactions.nnz:,} interactions ({gen_s:.1f}s)"
    )
    uf = data.user_features
    itf = data.item_features
    assert uf is not None and itf is not None
    uf = (uf - uf.mean(axis=0)) / uf.std(axis=0)
    itf = (itf - itf.mean(axis=0)) / itf.std(axis=0)
    results: dict[str, Any] = {}

    runs = {
        "hybrid_bpr": TwoTowerConfig(
            epochs=args.epochs,
            batch_size=512,
            lr=1e-3,
            loss="bpr",
            history_dropout=0.5,
            cold_prob=0.2,
            seed=args.seed,
            device=args.device,
            verbose=True,
        ),
        "hybrid_sampled_softmax": TwoTowerConfig(
            epochs=args.epochs,
            batch_size=512,
            lr=1e-3,
            loss="softmax",
            n_negatives=1024,
            history_dropout=0.5,
            cold_prob=0.2,
            seed=args.seed,
            device=args.device,
            verbose=True,
        ),
    }
    for name, config in runs.items():
        log(f"{name}: training {args.epochs} epochs on {args.device}")
        torch.manual_seed(args.seed)
        net = TwoTowerNet(data.n_items, dim=args.dim, user_feat_dim=uf.shape[1], item_feat_dim=itf.shape[1])
        report = train_two_tower(net, data.interactions, uf, itf, config)
        results[name] = _summary(report.interactions_per_s, report.epoch_seconds)

    log(f"bpr_mf: training {args.epochs} epochs on {args.device}")
    mf = BPRMF(data.n_users, data.n_items, dim=args.dim)
    report = train_bpr_mf(
        mf, data.interactions, epochs=args.epochs, seed=args.seed, device=args.device, verbose=True
    )
    results["bpr_mf"] = _summary(report.interactions_per_s, report.epoch_seconds)

    out = {
        "device": args.device,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "n_users": int(data.n_users),
        "n_items": int(data.n_items),
        "interactions": int(data.interactions.nnz),
        "embedding_dim": args.dim,
        "epochs": args.epochs,
        "generate_s": round(gen_s, 2),
        "models": results,
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
