"""Training time and peak memory of the served model's members at 10 million interactions, 50,000 items.

    python scripts/bench_scale.py [--interactions 10000000] [--items 50000] [--device cuda]
        [--json reports/scale_benchmark.json]

Prints one JSON object on stdout (progress on stderr). On the synthetic interaction set of
:mod:`recommender.data.synthetic` it fits, each in a fresh child process so that peak memory is the
model's own (``peak_rss_mb``: the child's maximum resident set, data included; ``data_rss_mb``: the same
child after building the data, before fitting):

* ``dlae``: the item-side linear autoencoder on its low-rank path (``rank="auto"``: rank 256 beyond
  20,000 items; the exact item-by-item inverse would need 20 GB in float64 at 50,000 items);
* ``ridge_map`` and ``popularity``: the feature and popularity members;
* ``denoising_net_epoch_estimate``: the torch network's time for a few batches, extrapolated to one
  epoch (a full epoch over a 50,000-wide softmax is what makes it a GPU job at this size);
* ``serving`` (in the ``dlae`` child, after the fit): the blend of the three fitted members scoring one
  user over the whole catalogue on one thread.

``--device cuda`` adds the exact DLAE solved on the GPU (``dlae_exact_cuda``) and the network's epoch
estimate on the GPU; without a GPU the option fails clearly. Nothing here needs a GPU by default.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _data(n_interactions: int, n_items: int) -> Any:
    from recommender.data.synthetic import synthetic_interactions

    return synthetic_interactions(n_interactions=n_interactions, n_items=n_items, seed=0)


def _child(task: str, n_interactions: int, n_items: int, device: str | None, out: Any) -> None:
    import numpy as np
    from threadpoolctl import threadpool_limits

    t0 = time.perf_counter()
    data = _data(n_interactions, n_items)
    result: dict[str, Any] = {
        "interactions": int(data.interactions.nnz),
        "users": data.n_users,
        "items": data.n_items,
        "data_s": round(time.perf_counter() - t0, 2),
        "data_rss_mb": round(_rss_mb(), 1),
    }
    t0 = time.perf_counter()
    if task == "dlae":
        from recommender.models.ease import DLAE

        model: Any = DLAE(lam=100.0, dropout=0.5, alpha=0.25, rank="auto").fit(data)
        result["rank"] = model.effective_rank(data.n_items)
    elif task == "dlae_exact_cuda":
        from recommender.models.ease import DLAE

        model = DLAE(lam=100.0, dropout=0.5, alpha=0.25, rank=None, device=device).fit(data)
    elif task == "ridge_map":
        from recommender.models.ridge_map import RidgeMap

        model = RidgeMap(ridge=10.0).fit(data)
    elif task == "popularity":
        from recommender.models.popularity import Popularity

        model = Popularity().fit(data)
    elif task == "denoising_net_epoch_estimate":
        result.update(_net_estimate(data, device))
        out.put(result)
        return
    else:
        raise ValueError(task)
    result["train_s"] = round(time.perf_counter() - t0, 2)
    result["peak_rss_mb"] = round(_rss_mb(), 1)
    if task == "dlae":
        result["serving"] = _serving(data, model)
    with threadpool_limits(limits=1):
        hist = data.interactions[:200]
        feats = None if not model.uses_features else np.asarray(data.user_features)[:200]
        t1 = time.perf_counter()
        for i in range(200):
            model.score_history(hist[i], None if feats is None else feats[i : i + 1])
        result["ms_score_one_user_all_items"] = round((time.perf_counter() - t1) / 200 * 1000, 3)
    out.put(result)


def _net_estimate(data: Any, device: str | None, n_batches: int = 5) -> dict[str, Any]:
    from recommender.models.denoising import DenoisingModule, DenoisingNet, DenoisingSampler
    from recommender.trainer import resolve_device

    net = DenoisingNet(hidden=256, batch_size=128, device=device)
    dev = resolve_device(device)
    module = DenoisingModule(data.n_items, 0, 256, False).to(dev)
    sampler = DenoisingSampler(data.interactions, None, net)
    import torch

    opt = torch.optim.Adam(module.parameters(), lr=1e-3)
    batches = sampler.epoch(dev)
    t0 = time.perf_counter()
    for _ in range(n_batches):
        batch = next(batches)
        loss = module.calculate_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    per_batch = (time.perf_counter() - t0) / n_batches
    n_steps = -(-sampler.n_examples // net.batch_size)
    return {
        "device": str(dev),
        "s_per_batch": round(per_batch, 3),
        "batches_per_epoch": n_steps,
        "epoch_s_estimate": round(per_batch * n_steps, 1),
        "peak_rss_mb": round(_rss_mb(), 1),
    }


def _serving(data: Any, dlae: Any) -> dict[str, Any]:
    import numpy as np
    from threadpoolctl import threadpool_limits

    from recommender.models.ensemble import RoutedBlend
    from recommender.models.popularity import Popularity
    from recommender.models.ridge_map import RidgeMap

    ridge = RidgeMap(ridge=10.0).fit(data)
    members = {"dlae": dlae, "ridge_map": ridge, "popularity": Popularity().fit(data)}
    blend = RoutedBlend.from_fitted(
        members, {"dlae": 0.8, "ridge_map": 0.2}, {"ridge_map": 0.7, "popularity": 0.3}
    )
    feats = np.asarray(data.user_features)
    with threadpool_limits(limits=1):
        t1 = time.perf_counter()
        for u in range(100):
            blend.score_history(data.interactions[u], feats[u : u + 1])
        full_ms = (time.perf_counter() - t1) / 100 * 1000
    return {
        "members": sorted(members),
        "ms_score_one_user_all_items": round(full_ms, 3),
        "peak_rss_mb": round(_rss_mb(), 1),
    }


def run_task(task: str, n_interactions: int, n_items: int, device: str | None) -> dict[str, Any]:
    """``task`` in a fresh child process (its own peak memory); a failure is recorded, not raised."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_child, args=(task, n_interactions, n_items, device, out))
    t0 = time.perf_counter()
    proc.start()
    proc.join()
    if proc.exitcode != 0 or out.empty():
        return {
            "error": f"child exited with code {proc.exitcode}",
            "wall_s": round(time.perf_counter() - t0, 1),
        }
    result: dict[str, Any] = out.get()
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    _log(f"[scale] {task}: {result}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interactions", type=int, default=10_000_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--device", default=None, help="also fit on this torch device, e.g. cuda")
    parser.add_argument("--json", type=Path, default=ROOT / "reports" / "scale_benchmark.json")
    args = parser.parse_args(argv)
    if args.device is not None:
        from recommender.trainer import resolve_device

        resolve_device(args.device)  # fails clearly without a GPU
    tasks = ["popularity", "ridge_map", "dlae", "denoising_net_epoch_estimate"]
    if args.device is not None and args.device.startswith("cuda"):
        tasks.append("dlae_exact_cuda")
    t0 = time.perf_counter()
    results = {task: run_task(task, args.interactions, args.items, args.device) for task in tasks}
    out = {
        "interactions_requested": args.interactions,
        "items": args.items,
        "device": args.device or "cpu",
        "tasks": results,
        "environment": {"python": platform.python_version(), "cpu_count": os.cpu_count()},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    text = json.dumps(out, indent=2)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
