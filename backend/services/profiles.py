"""Profiles that follow the learner's events, without retraining.

After events are stored, :meth:`ProfileRefresher.refresh` recomputes the profiles of the learners they
concern with the profile builder the served model was trained with (:class:`recommender.profiles.
ProfileBuilder`): the topic-interest vector and behaviour features from every event the learner has, the
nearest segment and the propensity per product kind. Recency is measured from now. Events on items the
served model does not know yet (ingested after it was trained) are kept and count once a model trained on
the newer catalogue is served.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from backend.models import LearningEvent, Profile, User, utcnow
from backend.services.model import ModelSlot
from recommender.profiles import BEHAVIOUR_FEATURES
from recommender.profiles import Profile as LearnerProfile

CHUNK = 2_000


class ProfileRefresher:
    def __init__(self, engine: Engine, model: ModelSlot) -> None:
        self._engine = engine
        self._model = model

    @property
    def ready(self) -> bool:
        """Whether the served model carries a profile builder (profiles can follow events)."""
        return self._model.profiles is not None

    def refresh(self, user_ids: Iterable[str], now: dt.datetime | None = None) -> int:
        """Recompute and store the profiles of ``user_ids`` (internal ids); returns how many were stored."""
        builder = self._model.profiles
        if builder is None:
            return 0
        ids = sorted(set(user_ids))
        as_of = pd.Timestamp(now or utcnow())
        done = 0
        for start in range(0, len(ids), CHUNK):
            done += self._refresh_chunk(ids[start : start + CHUNK], as_of)
        return done

    def _refresh_chunk(self, ids: Sequence[str], as_of: pd.Timestamp) -> int:
        builder = self._model.profiles
        assert builder is not None
        rows = {item: i for i, item in enumerate(builder.item_ids)}
        with Session(self._engine) as s:
            events = (
                s.connection()
                .execute(
                    sa_select(
                        col(LearningEvent.user_id),
                        col(LearningEvent.item_id),
                        col(LearningEvent.event),
                        col(LearningEvent.value),
                        col(LearningEvent.occurred_at),
                    ).where(col(LearningEvent.user_id).in_(ids))
                )
                .all()
            )
            pseudonyms = dict(
                s.exec(select(col(User.id), col(User.pseudonym)).where(col(User.id).in_(ids))).all()
            )
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
            stored = s.exec(select(Profile).where(col(Profile.user_id).in_(ids))).all()
            existing = {p.user_id: p for p in stored}
            for i, uid in enumerate(ids):
                if uid not in pseudonyms:
                    continue
                learner = LearnerProfile(
                    user_id=str(pseudonyms[uid]),
                    topics=features[i, :k].copy(),
                    behaviour=dict(zip(BEHAVIOUR_FEATURES, map(float, features[i, k:]), strict=True)),
                    segment=int(segments[i]),
                    segment_name=names[int(segments[i])],
                    propensities={str(c): float(v) for c, v in propensities.iloc[i].items()},
                )
                row = existing.get(uid) or Profile(user_id=uid, data={}, product_indices=[])
                row.data = learner.to_dict()
                row.course_indices = sorted(rows[c] for c in courses.get(uid, np.array([])))
                row.updated_at = utcnow()
                s.add(row)
            s.commit()
        return sum(1 for uid in ids if uid in pseudonyms)
