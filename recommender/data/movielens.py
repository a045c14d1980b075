"""MovieLens-100k, read at run time from the ``recbole`` wheel, and the Microsoft Recommenders split.

MovieLens may not be redistributed, so the repository never holds it: the first use downloads the
``recbole==1.2.1`` wheel (which ships ``dataset_example/ml-100k``) with ``pip download --no-deps`` into
the cache directory and reads the files straight out of the wheel, which is a zip archive. A fresh
machine with access to PyPI therefore needs no manual step; a machine without it gets
:class:`MovieLensUnavailable`, which tests turn into a skip.

The split re-implements ``recommenders.datasets.python_splitters.python_stratified_split`` so that the
numbers are comparable with the published Microsoft Recommenders benchmark (SAR 0.394, BPR 0.445,
BiVAE 0.469 nDCG@10 on the ``filter_by="item"`` split with seed 42).
"""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommender import paths
from recommender.models.base import InteractionData

RECBOLE_VERSION = "1.2.1"
_WHEEL_NAME = f"recbole-{RECBOLE_VERSION}-py3-none-any.whl"
_MEMBER = "recbole/dataset_example/ml-100k/ml-100k.{}"

#: The 19 MovieLens genre labels, in the order used for the genre feature matrix.
GENRES: tuple[str, ...] = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)


class MovieLensUnavailable(RuntimeError):
    """The recbole wheel carrying MovieLens-100k could not be found or downloaded."""


def cache_dir() -> Path:
    """Where downloaded wheels live: ``KNOWLEDGER_CACHE_DIR`` or ``~/.cache/knowledger``."""
    return paths.cache_dir()


def recbole_wheel(download: bool = True) -> Path:
    """Path of the cached recbole wheel, downloading it with ``pip download`` on first use."""
    target = cache_dir()
    wheel = target / _WHEEL_NAME
    if wheel.is_file():
        return wheel
    if not download:
        raise MovieLensUnavailable(f"{wheel} is not cached and download=False")
    target.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        f"recbole=={RECBOLE_VERSION}",
        "-d",
        str(target),
        "--quiet",
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MovieLensUnavailable(f"could not run pip download for recbole: {exc}") from exc
    if proc.returncode != 0 or not wheel.is_file():
        raise MovieLensUnavailable(
            f"pip download recbole=={RECBOLE_VERSION} failed (exit {proc.returncode}): "
            f"{proc.stderr.strip()[-500:]}"
        )
    return wheel


def _read_member(kind: str) -> pd.DataFrame:
    with zipfile.ZipFile(recbole_wheel()) as zf:
        raw = zf.read(_MEMBER.format(kind)).decode("latin-1")
    frame = pd.read_csv(io.StringIO(raw), sep="\t", dtype=str, keep_default_na=False)
    frame.columns = [c.split(":")[0] for c in frame.columns]
    return frame


@lru_cache(maxsize=1)
def _ratings_cached() -> pd.DataFrame:
    frame = _read_member("inter")
    return pd.DataFrame(
        {
            "userID": frame["user_id"].astype(np.int64),
            "itemID": frame["item_id"].astype(np.int64),
            "rating": frame["rating"].astype(np.float64),
            "timestamp": frame["timestamp"].astype(np.float64).astype(np.int64),
        }
    )


def load_ratings() -> pd.DataFrame:
    """All 100,000 ratings as ``userID, itemID, rating, timestamp``, in the original ``u.data`` order.

    The order matters: the stratified split draws one random number per row in file order.
    """
    return _ratings_cached().copy()


@lru_cache(maxsize=1)
def _items_cached() -> pd.DataFrame:
    frame = _read_member("item")
    out = pd.DataFrame(
        {
            "itemID": frame["item_id"].astype(np.int64),
            "title": frame["movie_title"],
            "year": pd.to_numeric(frame["release_year"], errors="coerce"),
            "genres": frame["class"].str.split(" "),
        }
    )
    return out


def load_items() -> pd.DataFrame:
    """Movies as ``itemID, title, year, genres`` (``genres`` is a list of labels from :data:`GENRES`)."""
    return _items_cached().copy()


def genre_matrix(item_ids: np.ndarray) -> np.ndarray:
    """Multi-hot (len(item_ids), 19) genre matrix, rows in the order of ``item_ids``."""
    items = _items_cached().set_index("itemID")
    out = np.zeros((len(item_ids), len(GENRES)), dtype=np.float32)
    col = {g: j for j, g in enumerate(GENRES)}
    for row, iid in enumerate(item_ids):
        for g in items.at[int(iid), "genres"]:
            if g in col:
                out[row, col[g]] = 1.0
    return out


def python_stratified_split(
    data: pd.DataFrame,
    ratio: float = 0.75,
    min_rating: int = 1,
    filter_by: str = "user",
    col_user: str = "userID",
    col_item: str = "itemID",
    seed: int = 42,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified random split, faithful to Microsoft Recommenders' ``python_stratified_split``.

    Per user (or item, ``filter_by``): draw ``np.random.seed(seed); np.random.rand(n_rows)`` in row
    order, sort by (group, random), and keep the first ``round(ratio * n)`` rows of each group of ``n``
    rows in train, the rest in test. ``round`` is Python's/numpy's (half to even), as in Recommenders:
    ``split_pandas_data_with_ratios`` cuts each shuffled group at ``round(ratio * len(group))`` and the
    newer ``_do_stratification`` keeps ``rank <= round(ratio * count)``. Groups with fewer than
    ``min_rating`` rows are dropped first. Only the two-way split is supported (that is what the
    benchmark uses). On ml-100k (``filter_by="item"``, seed 42) this gives 75,066 training and 24,934
    test ratings, and every movie keeps at least one training rating.
    """
    if filter_by not in ("user", "item"):
        raise ValueError("filter_by should be either 'user' or 'item'.")
    if not isinstance(ratio, float) or not 0.0 < ratio < 1.0:
        raise ValueError(f"ratio must be a float strictly between 0 and 1, got {ratio!r}")
    if min_rating < 1:
        raise ValueError("min_rating should be integer and larger than or equal to 1.")
    for col, label in ((col_user, "user"), (col_item, "item")):
        if col not in data.columns:
            raise ValueError(f"Schema of data not valid. Missing {label} column {col!r}")
    split_by = col_user if filter_by == "user" else col_item
    data = data.copy()
    if min_rating > 1:
        data = data.groupby(split_by).filter(lambda x: len(x) >= min_rating)
    np.random.seed(seed)
    data["random"] = np.random.rand(data.shape[0])
    data = data.sort_values([split_by, "random"])
    groups = data.groupby(split_by)
    count = groups[split_by].transform("count").to_numpy()
    rank = groups.cumcount().to_numpy() + 1
    in_train = rank <= np.round(ratio * count)  # numpy rounds half to even, like Python's round
    data = data.drop(columns=["random"])
    return data[in_train], data[~in_train]


@dataclass(frozen=True)
class MovieLensSplit:
    """A split as matrices. Rows are every user of ml-100k, columns every movie.

    ``train`` carries the genre multi-hot as ``item_features``; ``test`` is the held-out binary matrix;
    ``recommendable`` marks items with at least one training interaction (the benchmark's models only
    know training items, so only those can be recommended); ``user_ids`` / ``item_ids`` map rows and
    columns back to MovieLens ids.
    """

    train: InteractionData
    test: sp.csr_matrix
    recommendable: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray


def frames_to_split(
    train_df: pd.DataFrame, test_df: pd.DataFrame, user_ids: np.ndarray, item_ids: np.ndarray
) -> MovieLensSplit:
    """Binarise two rating frames into a :class:`MovieLensSplit` over the given id universe; the training
    ratings and timestamps (where the frames have them) become ``values`` and ``times`` of ``train``."""
    uidx = {int(u): i for i, u in enumerate(user_ids)}
    iidx = {int(v): j for j, v in enumerate(item_ids)}
    shape = (len(user_ids), len(item_ids))

    def to_csr(frame: pd.DataFrame, column: str | None = None, dtype: type = np.float32) -> sp.csr_matrix:
        rows = frame["userID"].map(uidx).to_numpy()
        cols = frame["itemID"].map(iidx).to_numpy()
        vals = np.ones(len(frame)) if column is None else frame[column].to_numpy()
        mat = sp.csr_matrix((vals.astype(dtype), (rows, cols)), shape=shape)
        mat.sum_duplicates()
        if column is None:
            mat.data[:] = 1.0
        return mat

    train = to_csr(train_df)
    test = to_csr(test_df)
    recommendable = np.asarray(train.sum(axis=0)).ravel() > 0
    values = to_csr(train_df, "rating") if "rating" in train_df else None
    times = to_csr(train_df, "timestamp", np.float64) if "timestamp" in train_df else None
    data = InteractionData(
        interactions=train,
        item_features=genre_matrix(item_ids),
        meta={"dataset": "ml-100k", "genres": list(GENRES)},
        values=values,
        times=times,
    )
    return MovieLensSplit(data, test, recommendable, np.asarray(user_ids), np.asarray(item_ids))


def ml100k_split(ratio: float = 0.75, seed: int = 42, filter_by: str = "item") -> MovieLensSplit:
    """ml-100k under the Microsoft Recommenders benchmark split (``filter_by="item"``, seed 42)."""
    ratings = load_ratings()
    train_df, test_df = python_stratified_split(
        ratings, ratio=ratio, min_rating=1, filter_by=filter_by, seed=seed
    )
    user_ids = np.sort(ratings["userID"].unique())
    item_ids = np.sort(ratings["itemID"].unique())
    return frames_to_split(train_df, test_df, user_ids, item_ids)


def validation_split(
    train: sp.csr_matrix, ratio: float = 0.75, seed: int = 7
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Carve a validation split out of a training matrix with the same per-item stratified procedure.

    Hyperparameters are chosen on this split only; the test split is never looked at.
    """
    coo = train.tocoo()
    frame = pd.DataFrame({"userID": coo.row.astype(np.int64), "itemID": coo.col.astype(np.int64)})
    frame = frame.sort_values(["userID", "itemID"], kind="stable").reset_index(drop=True)
    fit_df, val_df = python_stratified_split(frame, ratio=ratio, filter_by="item", seed=seed)
    shape = train.shape

    def to_csr(f: pd.DataFrame) -> sp.csr_matrix:
        return sp.csr_matrix(
            (np.ones(len(f), dtype=np.float32), (f["userID"].to_numpy(), f["itemID"].to_numpy())),
            shape=shape,
        )

    return to_csr(fit_df), to_csr(val_df)
