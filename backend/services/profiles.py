"""Profiles that follow the learner's events, without retraining, in the space of the model that serves them.

After events are stored, :meth:`ProfileRefresher.refresh` recomputes the profiles of the learners they
concern with the profile builder the served model was trained with (:class:`recommender.profiles.
ProfileBuilder`): the topic-interest vector and behaviour features from every event the learner has, the
nearest segment and the propensity per product kind. Recency is measured from now. Events on items the
served model does not know yet (ingested after it was trained) are kept and count once a model trained on
the newer catalogue is served.

A stored profile names the model version it was built for (its topics, course rows and product rows are
that model's). A request served by another version (just after a promotion, or by a process that has not
swapped yet) derives the learner's profile again for its own version first (:meth:`ProfileRefresher.
for_model`), so no request mixes two models. The products a learner holds are kept across versions
(mapped through each version's product ids) and grow with the conversions reported for them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from backend.errors import ProfileOutdated
from backend.models import Conversion, ConversionState, LearningEvent, Profile, User, utcnow
from backend.services.model import ModelSlot, ServedModel
from recommender.profiles import BEHAVIOUR_FEATURES
from recommender.profiles import Profile as LearnerProfile

CHUNK = 2_000
#: Conversions that say the learner holds the product.
HELD = (ConversionState.PENDING, ConversionState.SUBMITTING, ConversionState.SETTLED, ConversionState.FINAL)
#: A version's product ids (its rows), or None if the version is unknown.
ProductRowsOf = Callable[[str], Sequence[str] | None]


@dataclass(frozen=True)
class StoredProfile:
    """What the recommender reads of a learner: the profile's fields and the rows, in one model's space."""

    data: dict[str, Any]
    course_indices: list[int]
    product_indices: list[int]
    model_version: str | None


class ProfileRefresher:
    def __init__(self, engine: Engine, model: ModelSlot, product_rows_of: ProductRowsOf) -> None:
        self._engine = engine
        self._model = model
        self._product_rows_of = product_rows_of

    @property
    def ready(self) -> bool:
        """Whether the served model carries a profile builder (profiles can follow events)."""
        return self._model.profiles is not None

    def refresh(
        self, user_ids: Iterable[str], now: dt.datetime | None = None, served: ServedModel | None = None
    ) -> int:
        """Recompute and store the profiles of ``user_ids`` (internal ids) for ``served`` (default: the
        served model); returns how many were stored."""
        served = served or self._model.served
        if served is None or served.profiles is None:
            return 0
        ids = sorted(set(user_ids))
        as_of = pd.Timestamp(now or utcnow())
        done = 0
        for start in range(0, len(ids), CHUNK):
            with Session(self._engine) as s:
                done += len(self._build(s, ids[start : start + CHUNK], as_of, served))
                s.commit()
        return done

    def for_model(self, user_id: str, stored: StoredProfile, served: ServedModel) -> StoredProfile:
        """``stored`` if it was built for ``served``; otherwise the learner's profile derived again, from
        their events, for ``served`` (and stored). Raises ``ProfileOutdated`` (409) when that cannot be done:
        an uploaded profile of a learner without events."""
        if stored.model_version in (None, served.version):
            return stored
        if served.profiles is not None:
            with Session(self._engine) as s:
                has_events = s.exec(
                    select(LearningEvent.id).where(col(LearningEvent.user_id) == user_id).limit(1)
                ).first()
                if has_events is not None:
                    built = self._build(s, [user_id], pd.Timestamp(utcnow()), served)
                    s.commit()
                    if user_id in built:
                        return built[user_id]
        raise ProfileOutdated(
            f"the learner's profile was uploaded for model {stored.model_version}, and model "
            f"{served.version} serves now: upload it again (PUT /api/v1/users/{{id}}/profile) or send the "
            "learner's events",
            profile_version=stored.model_version,
            served_version=served.version,
        )

    def users_with_events(self) -> list[str]:
        with Session(self._engine) as s:
            return list(s.exec(select(LearningEvent.user_id).distinct()).all())

    # ------------------------------------------------------------------ building
    def _held(self, s: Session, pseudonyms: dict[str, str]) -> dict[str, set[str]]:
        """Products each learner converted on (and did not have reversed)."""
        by_pseudonym = {p: uid for uid, p in pseudonyms.items()}
        rows = s.exec(
            select(col(Conversion.pseudonym), col(Conversion.product_id)).where(
                col(Conversion.pseudonym).in_(list(by_pseudonym)),
                col(Conversion.product_id).is_not(None),
                col(Conversion.state).in_([str(h) for h in HELD]),
            )
        ).all()
        held: dict[str, set[str]] = {}
        for pseudo, product in rows:
            held.setdefault(by_pseudonym[pseudo], set()).add(str(product))
        return held

    def _carried(self, row: Profile | None, served: ServedModel) -> list[str]:
        """The products ``row`` says are held, as ids (through the row's own model version's rows)."""
        if row is None or not row.product_indices:
            return []
        ids = (
            served.product_ids
            if row.model_version in (None, served.version)
            else self._product_rows_of(str(row.model_version))
        )
        if ids is None:
            return []
        return [ids[i] for i in row.product_indices if 0 <= i < len(ids)]

    def _build(
        self, s: Session, ids: Sequence[str], as_of: pd.Timestamp, served: ServedModel
    ) -> dict[str, StoredProfile]:
        builder = served.profiles
        assert builder is not None
        rows = served.course_index or {}
        events = [
            tuple(row)  # plain tuples: pandas builds a frame from them without probing row attributes
            for row in s.connection().execute(
                sa_select(
                    col(LearningEvent.user_id),
                    col(LearningEvent.item_id),
                    col(LearningEvent.event),
                    col(LearningEvent.value),
                    col(LearningEvent.occurred_at),
                ).where(col(LearningEvent.user_id).in_(ids))
            )
        ]
        pseudonyms = {
            str(uid): str(p)
            for uid, p in s.exec(
                select(col(User.id), col(User.pseudonym)).where(
                    col(User.id).in_(ids), col(User.erased_at).is_(None)
                )
            ).all()
        }
        frame = pd.DataFrame(events, columns=["user_id", "item_id", "event", "value", "timestamp"])
        frame = frame[frame["item_id"].isin(rows)]
        if len(frame):
            frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        features = builder.transform(frame, list(ids), as_of=as_of)
        segments = builder.assign_segments(features)
        propensities = builder.predict_propensities(features)
        names = builder.segment_names
        k = builder.knowledge.n_topics
        courses = frame.groupby("user_id")["item_id"].unique() if len(frame) else pd.Series(dtype=object)
        existing = {p.user_id: p for p in s.exec(select(Profile).where(col(Profile.user_id).in_(ids))).all()}
        held = self._held(s, pseudonyms)
        products = served.product_index
        built: dict[str, StoredProfile] = {}
        for i, uid in enumerate(ids):
            if uid not in pseudonyms:
                continue
            learner = LearnerProfile(
                user_id=pseudonyms[uid],
                topics=features[i, :k].copy(),
                behaviour=dict(zip(BEHAVIOUR_FEATURES, map(float, features[i, k:]), strict=True)),
                segment=int(segments[i]),
                segment_name=names[int(segments[i])],
                propensities={str(c): float(v) for c, v in propensities.iloc[i].items()},
                n_segments=len(names),
            )
            row = existing.get(uid) or Profile(user_id=uid, data={}, product_indices=[])
            owned = set(self._carried(row, served)) | held.get(uid, set())
            row.data = learner.to_dict()
            row.course_indices = sorted(rows[c] for c in courses.get(uid, np.array([])))
            row.product_indices = sorted(products[p] for p in owned if p in products)
            row.model_version = served.version
            row.updated_at = utcnow()
            s.add(row)
            built[uid] = StoredProfile(row.data, row.course_indices, row.product_indices, row.model_version)
        return built
