"""Training on the platform's own data: what was ingested, plus the conversions partners reported.

:func:`dataset_from_database` reads the service's tables into the documented schema (learners with their
coarse attributes, the catalogue, the course events, the partners' products, and as the product-domain
signal the conversions partners reported, those not reversed or rejected) and validates them with the
loader's rules. :class:`ModelTrainer` splits them in time (:func:`recommender.data.split.time_split`),
trains the served configuration on the earlier part (:func:`backend.services.seed.train_on_split`), scores
the new version *and the version serving now* on the held-out part, each through its own serving path
(:func:`recommender.evaluation.through_serving.score_on_split`), and registers the version as a
candidate with both scores: the quality gate reads them at promotion.

A training run is a job: its registry row is ``training`` with a progress until it is a ``candidate`` (or
``failed``, with the reason). One runs at a time in a process.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import secrets
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from backend.errors import Conflict, Unprocessable
from backend.models import (
    Conversion,
    KnowledgeItem,
    LearningEvent,
    ModelStatus,
    ModelVersion,
    Product,
    User,
)
from backend.services.lifecycle import ModelLifecycle
from backend.services.model import ModelSlot
from backend.services.profiles import HELD
from backend.services.registry import ModelRegistry, RegistryError, load_served
from recommender.data.dataset import KnowledgeDataset
from recommender.data.loader import DatasetError, validate_dataset
from recommender.data.schema import ITEM_LEVELS
from recommender.data.split import ProductSplit, time_split

log = logging.getLogger("knowledger.training")
#: Fewer reported conversions than this cannot be split into a training and a held-out period worth
#: judging a model on.
MIN_CONVERSIONS = 30
MIN_HELD_OUT_LEARNERS = 5


def dataset_from_database(engine: Engine) -> KnowledgeDataset:
    """The service's data in the documented schema, validated (``recommender.data.loader``'s rules)."""
    with Session(engine) as s:
        conn = s.connection()
        users = conn.execute(
            sa_select(col(User.id), col(User.age_band), col(User.region), col(User.life_stage)).where(
                col(User.erased_at).is_(None)
            )
        ).all()
        items = s.exec(select(KnowledgeItem)).all()
        products = s.exec(select(Product)).all()
        pseudonyms = dict(
            s.exec(select(col(User.pseudonym), col(User.id)).where(col(User.erased_at).is_(None))).all()
        )
        events = conn.execute(
            sa_select(
                col(LearningEvent.event_id),
                col(LearningEvent.user_id),
                col(LearningEvent.item_id),
                col(LearningEvent.event),
                col(LearningEvent.value),
                col(LearningEvent.occurred_at),
            )
        ).all()
        conversions = s.exec(
            select(
                col(Conversion.pseudonym),
                col(Conversion.product_id),
                col(Conversion.occurred_at),
                col(Conversion.value),
            ).where(
                col(Conversion.product_id).is_not(None), col(Conversion.state).in_([str(h) for h in HELD])
            )
        ).all()
    known_items = {i.id for i in items}
    known_products = {p.id for p in products}
    user_frame = pd.DataFrame(users, columns=["user_id", "age_band", "region", "life_stage"])
    item_frame = pd.DataFrame(
        [
            {
                "item_id": i.id,
                "kind": i.kind,
                "title": i.title,
                "description": i.description or None,
                "category": i.category or "general",
                "price": float(i.price),
                "level": i.level if i.level in ITEM_LEVELS else None,
            }
            for i in items
        ],
        columns=["item_id", "kind", "title", "description", "category", "price", "level"],
    )
    event_frame = pd.DataFrame(
        events, columns=["event_id", "user_id", "item_id", "event", "value", "timestamp"]
    )
    event_frame = event_frame[event_frame["item_id"].isin(known_items)]
    event_frame["timestamp"] = pd.to_datetime(event_frame["timestamp"], utc=True)
    product_frame = pd.DataFrame(
        [
            {
                "product_id": p.id,
                "kind": p.kind,
                "name": p.name,
                "description": p.description or None,
                "risk_level": int(min(max(p.risk_level, 1), 5)),
                "min_premium": float(p.min_premium),
            }
            for p in products
        ],
        columns=["product_id", "kind", "name", "description", "risk_level", "min_premium"],
    )
    conversion_frame = pd.DataFrame(
        [
            {
                "user_id": pseudonyms[pseudo],
                "product_id": product,
                "timestamp": pd.Timestamp(int(at), unit="s", tz="UTC"),
                "value": float(value) / 100.0,
            }
            for pseudo, product, at, value in conversions
            if pseudo in pseudonyms and product in known_products
        ],
        columns=["user_id", "product_id", "timestamp", "value"],
    )
    return validate_dataset(
        KnowledgeDataset(
            users=user_frame,
            items=item_frame,
            interactions=event_frame.reset_index(drop=True),
            products=product_frame,
            conversions=conversion_frame,
        )
    )


def split_fingerprint(split: ProductSplit) -> str:
    """Identifies a held-out split: its cutoff and the held-out (learner, product) pairs, by id."""
    digest = hashlib.sha256(str(split.cutoff).encode())
    rows, cols = split.test.nonzero()
    for r, c in sorted(zip(rows.tolist(), cols.tolist(), strict=True)):
        digest.update(f"|{split.user_ids[r]}:{split.product_ids[c]}".encode())
    return "sha256:" + digest.hexdigest()[:32]


def new_version(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


class ModelTrainer:
    def __init__(
        self,
        engine: Engine,
        registry: ModelRegistry,
        slot: ModelSlot,
        lifecycle: ModelLifecycle,
        model_root: Path,
    ) -> None:
        self._engine = engine
        self._registry = registry
        self._slot = slot
        self._lifecycle = lifecycle
        self._root = model_root
        self._busy = threading.Lock()
        self._thread: threading.Thread | None = None

    def prepare(self, seed: int = 0) -> tuple[KnowledgeDataset, ProductSplit]:
        """The data and its split, or a 422 saying what is missing."""
        try:
            ds = dataset_from_database(self._engine)
        except DatasetError as exc:
            raise Unprocessable(f"the stored data does not pass the schema's checks: {exc}") from None
        n_conv = len(ds.conversions)
        if n_conv < MIN_CONVERSIONS or ds.conversions["timestamp"].nunique() < 2:
            raise Unprocessable(
                f"training needs the conversions partners reported: {n_conv} usable, at least "
                f"{MIN_CONVERSIONS} at two or more times (report conversions with their product_id)",
                conversions=n_conv,
            )
        if ds.interactions.empty:
            raise Unprocessable("training needs the learners' course events: none are stored")
        split = time_split(ds, test_fraction=0.3, seed=seed)
        if len(split.eval_users) < MIN_HELD_OUT_LEARNERS:
            raise Unprocessable(
                f"the held-out period has {len(split.eval_users)} learners with a new conversion, at least "
                f"{MIN_HELD_OUT_LEARNERS} are needed to judge a model",
            )
        return ds, split

    def train(
        self,
        *,
        epochs: int = 20,
        seed: int = 0,
        version: str | None = None,
        progress: Any = None,
        prepared: tuple[KnowledgeDataset, ProductSplit] | None = None,
    ) -> ModelVersion:
        """Train, score and register a candidate now (in this thread); returns its registry row."""
        if not self._busy.acquire(blocking=False):
            raise Conflict("a training run is already going on in this process: wait for it")
        try:
            ds, split = prepared or self.prepare(seed)
            version = version or new_version()
            if self._registry.get(version) is None:
                self._registry.start_training(version, "hybrid", "ingested")
            try:
                return self._run(ds, split, version, epochs, seed, progress)
            except Exception as exc:
                log.exception("training %s failed", version)
                self._registry.fail(version, f"{type(exc).__name__}: {exc}")
                raise
        finally:
            self._busy.release()

    def submit(self, *, epochs: int = 20, seed: int = 0) -> ModelVersion:
        """Start a training run in the background; returns its registry row (``training``) at once, after
        checking the data is enough (422 otherwise)."""
        if self._busy.locked():
            raise Conflict("a training run is already going on in this process: wait for it")
        prepared = self.prepare(seed)
        version = new_version()
        row = self._registry.start_training(version, "hybrid", "ingested")

        def run() -> None:
            with contextlib.suppress(Exception):  # recorded on the row by train()
                self.train(epochs=epochs, seed=seed, version=version, prepared=prepared)

        self._thread = threading.Thread(target=run, name="knowledger-train", daemon=True)
        self._thread.start()
        return row

    def wait(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _run(
        self,
        ds: KnowledgeDataset,
        split: ProductSplit,
        version: str,
        epochs: int,
        seed: int,
        progress: Any,
    ) -> ModelVersion:
        from backend.services.seed import train_on_split  # imports torch: only when training

        def report(done: int, total: int) -> None:
            self._registry.set_progress(version, 0.9 * done / max(total, 1))
            if progress is not None:
                progress(done, total)

        with tempfile.TemporaryDirectory(prefix="knowledger-train-") as tmp:
            artifact, _ = train_on_split(split, Path(tmp), epochs, seed, report, version=version)
            candidate = load_served(Path(artifact))
            from recommender.evaluation.through_serving import score_on_split

            scores = {"candidate": _round(score_on_split(candidate.ranker, candidate.profiles, split))}
            served = self._slot.served
            if served is not None:
                try:
                    scores["served"] = _round(score_on_split(served.ranker, served.profiles, split))
                except ValueError as exc:  # a served model that cannot be scored here fails the gate
                    log.warning("the served model %s cannot be scored on this split: %s", served.version, exc)
            fingerprint = split_fingerprint(split)
            trained_on = {
                "source": "ingested",
                "learners": len(ds.users),
                "items": len(ds.items),
                "events": len(ds.interactions),
                "products": len(ds.products),
                "conversions": len(ds.conversions),
                "cutoff": split.cutoff.isoformat(),
                "held_out_learners": len(split.eval_users),
                "split": fingerprint,
            }
            gate = {
                "served_version": None if served is None else served.version,
                "split": fingerprint,
                "scores": scores,
            }
            try:
                row = self._registry.register(
                    Path(artifact),
                    source="ingested",
                    trained_on=trained_on,
                    metrics=scores["candidate"],
                    gate=gate,
                    status=ModelStatus.CANDIDATE,
                )
            except RegistryError as exc:
                raise Unprocessable(str(exc)) from None
        if progress is not None:
            progress(1, 1)
        return row


def _round(metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (round(float(v), 6) if isinstance(v, float | np.floating) else v)
        for k, v in metrics.items()
        if k != "eval_s"
    }
