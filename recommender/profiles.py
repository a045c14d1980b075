"""Pseudonymous learner profiles derived from course behaviour.

A profile is what leaves the knowledge platform (after consent is checked on chain): a topic-interest
vector in the shared :class:`~recommender.knowledge.KnowledgeSpace` and a handful of behaviour features.
It is keyed by the pseudonymous user id only and contains no raw events, so a partner learns "interested
in retirement and index funds, engaged, completes what they start", not which lectures someone watched.

Feature layout (``UserProfiles.features`` and ``Profile.features()``), relied on by the models:

* columns ``0 .. n_topics-1``: topic interests, the engagement-weighted mean of the topic vectors of the
  items a user touched, L2-normalised (zero for users without history). Because it comes first and lives
  in the same space as product topics, :class:`~recommender.models.content.ContentCosine` can compare it
  with products directly;
* then :data:`BEHAVIOUR_FEATURES`: ``engagement`` = log(1 + events), ``spend`` = log(1 + amount paid),
  ``completion_rate`` = completed / purchased-or-completed items, ``recency`` = exp(-days since last event
  / 90), ``breadth`` = share of catalogue categories touched.

Engagement weights: view 1, purchase 2, completion 4, rating 1 per event, and the sum for a (user, item)
is scaled by mean rating / 3 when the item was rated, so a 5-star completion counts most and a 1-star
course counts little.

On top, k-means segments with readable names and one propensity per product kind
(:class:`~recommender.models.propensity.PropensityModel`, reusable on any feature table).

What the ranking models take (``UserProfiles.model_features`` and ``Profile.features()``) is that layout
followed by the segment and the propensities, so both feed the ranking: one propensity per product kind
(kinds in sorted order), then the segment one-hot (``n_segments`` columns). The segment and the
propensities are non-linear functions of the columns before them, which a linear ranker cannot form.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

from recommender.data.dataset import KnowledgeDataset
from recommender.data.schema import EVENTS
from recommender.knowledge import KnowledgeSpace
from recommender.models.propensity import PropensityModel

EVENT_WEIGHTS: dict[str, float] = {"view": 1.0, "purchase": 2.0, "completion": 4.0, "rating": 1.0}
BEHAVIOUR_FEATURES: tuple[str, ...] = ("engagement", "spend", "completion_rate", "recency", "breadth")
RECENCY_SCALE_DAYS = 90.0
#: Weight of the (standardised) behaviour block relative to the unit topic vector when clustering, so
#: segments are mostly about what people learn and secondarily about how much.
SEGMENT_BEHAVIOUR_WEIGHT = 0.25
PROFILE_FORMAT_VERSION = 1

_PERSONAS: tuple[tuple[str, str], ...] = (
    (r"retire|pension|annuit", "retirement planners"),
    (r"invest|stock|trad|forex|fund|portfolio|dividend|crypto|option|wealth|bond", "investors"),
    (r"financ|account|tax|bookkeep|budget|excel|valuation|money|saving", "finance learners"),
    (
        r"health|family|parent|child|nutrition|fitness|wellbeing|stress|illness|care|sleep|aid",
        "health & family carers",
    ),
    (r"guitar|piano|music|song|drum|chord|instrument|harmonica|violin|ukulele|bass|sing", "musicians"),
    (r"design|photoshop|illustrat|draw|logo|graphic|adobe|photo", "designers"),
    (
        r"web|javascript|html|css|php|develop|program|cod|wordpress|python|angular|react|node|app",
        "developers",
    ),
    (r"business|entrepreneur|startup|market|management|sales|leader", "entrepreneurs"),
)


@dataclass
class Profile:
    """One learner's derived profile: no raw events, keyed by pseudonym only."""

    user_id: str
    topics: np.ndarray
    behaviour: dict[str, float]
    segment: int | None = None
    segment_name: str | None = None
    propensities: dict[str, float] = field(default_factory=dict)
    #: How many segments the builder has (the width of the segment one-hot); None: no segment columns.
    n_segments: int | None = None

    def base_features(self) -> np.ndarray:
        """The profile's own vector: topics, then behaviour in :data:`BEHAVIOUR_FEATURES` order."""
        beh = np.array([self.behaviour[name] for name in BEHAVIOUR_FEATURES], dtype=np.float64)
        return np.concatenate([np.asarray(self.topics, dtype=np.float64), beh])

    def features(self) -> np.ndarray:
        """The ranking models' feature row: topics, behaviour in :data:`BEHAVIOUR_FEATURES` order, the
        propensities (kinds sorted), the segment one-hot."""
        beh = np.array([self.behaviour[name] for name in BEHAVIOUR_FEATURES], dtype=np.float64)
        props = np.array([self.propensities[k] for k in sorted(self.propensities)], dtype=np.float64)
        onehot = np.zeros(self.n_segments or 0, dtype=np.float64)
        if self.segment is not None and 0 <= self.segment < len(onehot):
            onehot[self.segment] = 1.0
        return np.concatenate([np.asarray(self.topics, dtype=np.float64), beh, props, onehot])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for storage (floats and lists only)."""
        return {
            "version": PROFILE_FORMAT_VERSION,
            "user_id": self.user_id,
            "topics": [float(x) for x in np.asarray(self.topics).ravel()],
            "behaviour": {k: float(self.behaviour[k]) for k in BEHAVIOUR_FEATURES},
            "segment": None if self.segment is None else int(self.segment),
            "segment_name": self.segment_name,
            "propensities": {k: float(v) for k, v in self.propensities.items()},
            "n_segments": self.n_segments,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """Inverse of :meth:`to_dict`, with errors naming the offending field."""
        if not isinstance(data, Mapping):
            raise ValueError(f"profile must be a mapping, got {type(data).__name__}")
        version = data.get("version", PROFILE_FORMAT_VERSION)
        if version != PROFILE_FORMAT_VERSION:
            raise ValueError(f"profile field 'version': unsupported version {version!r}")
        for key in ("user_id", "topics", "behaviour"):
            if key not in data:
                raise ValueError(f"profile field {key!r} is missing")
        user_id = data["user_id"]
        if not isinstance(user_id, str) or not user_id:
            raise ValueError("profile field 'user_id' must be a non-empty string")
        try:
            topics = np.asarray(data["topics"], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"profile field 'topics' must be a list of numbers ({exc})") from exc
        if topics.ndim != 1 or not np.all(np.isfinite(topics)):
            raise ValueError("profile field 'topics' must be a flat list of finite numbers")
        behaviour_in = data["behaviour"]
        if not isinstance(behaviour_in, Mapping):
            raise ValueError("profile field 'behaviour' must be a mapping")
        behaviour: dict[str, float] = {}
        for name in BEHAVIOUR_FEATURES:
            if name not in behaviour_in:
                raise ValueError(f"profile field 'behaviour.{name}' is missing")
            try:
                behaviour[name] = float(behaviour_in[name])
            except (TypeError, ValueError) as exc:
                raise ValueError(f"profile field 'behaviour.{name}' must be a number") from exc
        segment = data.get("segment")
        props = data.get("propensities") or {}
        if not isinstance(props, Mapping):
            raise ValueError("profile field 'propensities' must be a mapping")
        n_segments = data.get("n_segments")
        if n_segments is not None and (not isinstance(n_segments, int) or n_segments < 1):
            raise ValueError("profile field 'n_segments' must be a positive integer")
        if segment is not None and n_segments is not None and not 0 <= int(segment) < n_segments:
            raise ValueError(f"profile field 'segment': {segment} is not below n_segments ({n_segments})")
        return cls(
            user_id=user_id,
            topics=topics,
            behaviour=behaviour,
            segment=None if segment is None else int(segment),
            segment_name=data.get("segment_name"),
            propensities={str(k): float(v) for k, v in props.items()},
            n_segments=n_segments,
        )


@dataclass(frozen=True)
class UserProfiles:
    """Profiles of all users of a dataset, rows in the users-table order.

    ``features`` (n_users, n_topics + 5) is what models take as ``user_features``; ``segments`` holds a
    segment id per user and ``segment_names[segment_id]`` its name; ``propensities`` is a DataFrame
    indexed by user id with one probability column per product kind.
    """

    user_ids: list[str]
    features: np.ndarray
    feature_names: list[str]
    topic_dim: int
    segments: np.ndarray
    segment_names: list[str]
    propensities: pd.DataFrame

    @property
    def topics(self) -> np.ndarray:
        return self.features[:, : self.topic_dim]

    @cached_property
    def model_features(self) -> np.ndarray:
        """What the ranking models take: ``features``, the propensities (kinds sorted), the segment
        one-hot (see the module's docstring)."""
        kinds = sorted(self.propensities.columns)
        props = self.propensities[kinds].to_numpy(dtype=np.float64)
        onehot = np.zeros((len(self.user_ids), len(self.segment_names)), dtype=np.float64)
        onehot[np.arange(len(self.user_ids)), self.segments] = 1.0
        return np.hstack([self.features, props, onehot])

    @property
    def model_feature_names(self) -> list[str]:
        kinds = sorted(self.propensities.columns)
        segments = [f"segment_{i}" for i in range(len(self.segment_names))]
        return list(self.feature_names) + [f"propensity_{k}" for k in kinds] + segments

    @property
    def behaviour(self) -> np.ndarray:
        return self.features[:, self.topic_dim :]

    @cached_property
    def _positions(self) -> dict[str, int]:
        return {uid: i for i, uid in enumerate(self.user_ids)}

    def index_of(self, user_id: str) -> int:
        try:
            return self._positions[user_id]
        except KeyError:
            raise KeyError(f"no profile for user {user_id!r}") from None

    def profile(self, user_id: str) -> Profile:
        i = self.index_of(user_id)
        seg = int(self.segments[i])
        return Profile(
            user_id=user_id,
            topics=self.topics[i].copy(),
            behaviour=dict(zip(BEHAVIOUR_FEATURES, map(float, self.behaviour[i]), strict=True)),
            segment=seg,
            segment_name=self.segment_names[seg],
            propensities={str(k): float(v) for k, v in self.propensities.iloc[i].items()},
            n_segments=len(self.segment_names),
        )

    def segment_of(self, user_id: str) -> str:
        return self.segment_names[int(self.segments[self.index_of(user_id)])]


def _epoch_seconds(column: pd.Series, where: str) -> np.ndarray:
    """Epoch seconds (NaN when missing) from datetimes, epoch numbers or ISO 8601 strings."""
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        ts = pd.to_datetime(column, utc=True)
    elif pd.api.types.is_numeric_dtype(column.dtype):
        return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        ts = pd.to_datetime(
            column.astype(object).where(column.notna(), None), utc=True, format="ISO8601", errors="coerce"
        )
        bad = np.flatnonzero(ts.isna().to_numpy() & column.notna().to_numpy())
        if len(bad):
            i = int(bad[0])
            raise ValueError(
                f"{where} row {i + 1}, column 'timestamp': {column.iloc[i]!r} is not an ISO 8601 timestamp"
            )
    return (ts - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=np.float64, na_value=np.nan)


class ProfileBuilder:
    """Builds :class:`UserProfiles` for a dataset and single :class:`Profile` objects for new users.

    ``knowledge`` must have been fitted on the dataset's items in table order (its course rows are the
    items). After :meth:`fit`, :meth:`profile_for` turns any course history into a profile (segment and
    propensities included) without refitting: the cold-start path used at serving time.
    """

    def __init__(self, knowledge: KnowledgeSpace, n_segments: int = 6, seed: int = 0) -> None:
        if n_segments < 1:
            raise ValueError(f"n_segments must be >= 1, got {n_segments}")
        self.knowledge = knowledge
        self.n_segments = n_segments
        self.seed = seed
        self._fitted = False

    # ------------------------------------------------------------------------------------------------
    @property
    def feature_names(self) -> list[str]:
        return [f"topic_{i}" for i in range(self.knowledge.n_topics)] + list(BEHAVIOUR_FEATURES)

    def _features(
        self,
        user_codes: np.ndarray,
        item_codes: np.ndarray,
        events: np.ndarray,
        values: np.ndarray,
        times: np.ndarray,
        n_users: int,
        as_of: pd.Timestamp | None,
    ) -> np.ndarray:
        """Vectorised profile features for ``n_users`` from event arrays (codes index users and items)."""
        n_items = self.knowledge.n_courses
        is_rating = events == "rating"
        base = np.array([EVENT_WEIGHTS[e] for e in events], dtype=np.float64)
        # aggregate per (user, item) pair: summed event weights, scaled by mean rating / 3 if rated
        pair = user_codes.astype(np.int64) * n_items + item_codes.astype(np.int64)
        pairs, inverse = np.unique(pair, return_inverse=True)
        weight_sum = np.bincount(inverse, weights=base, minlength=len(pairs))
        rating_sum = np.bincount(
            inverse, weights=np.where(is_rating, np.nan_to_num(values), 0.0), minlength=len(pairs)
        )
        rating_cnt = np.bincount(inverse, weights=is_rating.astype(np.float64), minlength=len(pairs))
        factor = np.divide(rating_sum, 3.0 * rating_cnt, out=np.ones(len(pairs)), where=rating_cnt > 0)
        weights = sp.csr_matrix(
            (weight_sum * factor, (pairs // n_items, pairs % n_items)), shape=(n_users, n_items)
        )
        topics = np.asarray(weights @ self.knowledge.course_topics, dtype=np.float64)
        norms = np.linalg.norm(topics, axis=1, keepdims=True)
        topics = np.divide(topics, norms, out=np.zeros_like(topics), where=norms > 1e-12)

        n_events = np.bincount(user_codes, minlength=n_users).astype(np.float64)
        is_purchase = events == "purchase"
        paid = np.where(np.isnan(values), self._prices[item_codes], values)
        spend = np.bincount(user_codes, weights=np.where(is_purchase, paid, 0.0), minlength=n_users)
        is_completion = events == "completion"
        bought = sp.csr_matrix(
            (np.ones(int(is_purchase.sum())), (user_codes[is_purchase], item_codes[is_purchase])),
            shape=(n_users, n_items),
        )
        completed = sp.csr_matrix(
            (np.ones(int(is_completion.sum())), (user_codes[is_completion], item_codes[is_completion])),
            shape=(n_users, n_items),
        )
        bought.sum_duplicates()
        completed.sum_duplicates()
        n_completed = np.diff(completed.indptr).astype(np.float64)  # distinct completed items
        n_started = np.diff((bought + completed).tocsr().indptr).astype(np.float64)
        completion_rate = np.divide(n_completed, n_started, out=np.zeros(n_users), where=n_started > 0)

        recency = np.zeros(n_users)
        if len(times) and as_of is not None:
            secs = (as_of - pd.Timestamp(0, tz="UTC")).total_seconds()
            last = np.full(n_users, -np.inf)
            np.maximum.at(last, user_codes, times)
            has = np.isfinite(last)
            days = np.maximum(secs - last[has], 0.0) / 86400.0
            recency[has] = np.exp(-days / RECENCY_SCALE_DAYS)

        cats = sp.csr_matrix(
            (np.ones(len(item_codes)), (user_codes, self._category_codes[item_codes])),
            shape=(n_users, self._n_categories),
        )
        cats.sum_duplicates()
        breadth = np.diff(cats.indptr) / max(self._n_categories, 1)
        behaviour = np.column_stack([np.log1p(n_events), np.log1p(spend), completion_rate, recency, breadth])
        return np.hstack([topics, behaviour])

    def _event_arrays(
        self, frame: pd.DataFrame, where: str
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(item codes, events, values, epoch seconds) from an interactions-like frame, validated."""
        for col in ("item_id", "event"):
            if col not in frame.columns:
                raise ValueError(
                    f"{where}: column {col!r} is required (have {', '.join(map(str, frame.columns))})"
                )
        items = frame["item_id"].astype(str).to_numpy()
        codes = self._item_index.get_indexer(items)
        bad = np.flatnonzero(codes < 0)
        if len(bad):
            i = int(bad[0])
            raise ValueError(
                f"{where} row {i + 1}, column 'item_id': {items[i]!r} is not a known item"
                + (f" (and {len(bad) - 1} more unknown)" if len(bad) > 1 else "")
            )
        events = frame["event"].astype(str).to_numpy()
        bad_ev = np.flatnonzero(~np.isin(events, EVENTS))
        if len(bad_ev):
            i = int(bad_ev[0])
            raise ValueError(
                f"{where} row {i + 1}, column 'event': {events[i]!r} is not one of {', '.join(EVENTS)}"
            )
        if "value" in frame.columns:
            values = pd.to_numeric(frame["value"], errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
        else:
            values = np.full(len(frame), np.nan)
        if "timestamp" in frame.columns and len(frame):
            secs = _epoch_seconds(frame["timestamp"], where)
        else:
            secs = np.full(len(frame), np.nan)
        valid_t = ~np.isnan(secs)
        return codes, events, values, np.where(valid_t, secs, -np.inf)

    # ------------------------------------------------------------------------------------------------
    def fit(self, dataset: KnowledgeDataset, as_of: pd.Timestamp | None = None) -> UserProfiles:
        """Profiles, segments and propensities for every user in ``dataset``.

        ``as_of`` is the reference time for recency (default: the latest interaction).
        """
        items = dataset.items
        if len(items) != self.knowledge.n_courses:
            raise ValueError(
                f"knowledge space has {self.knowledge.n_courses} course rows but the dataset has "
                f"{len(items)} items; fit KnowledgeSpace on dataset.item_texts()"
            )
        self._item_index = pd.Index(items["item_id"].astype(str))
        self._prices = items["price"].to_numpy(dtype=np.float64)
        categories = pd.Index(sorted(items["category"].astype(str).unique()))
        self._category_codes = categories.get_indexer(items["category"].astype(str))
        self._n_categories = len(categories)
        inter = dataset.interactions
        self._as_of = (
            pd.Timestamp(as_of) if as_of is not None else (inter["timestamp"].max() if len(inter) else None)
        )
        if self._as_of is not None and self._as_of.tzinfo is None:
            self._as_of = self._as_of.tz_localize("UTC")

        user_ids = dataset.users["user_id"].astype(str).tolist()
        user_index = pd.Index(user_ids)
        features = self._transform(inter, user_ids, self._as_of, strict=True)

        # ---- segments
        k = self.knowledge.n_topics
        self._beh_mean = features[:, k:].mean(axis=0)
        self._beh_std = features[:, k:].std(axis=0)
        self._beh_std[self._beh_std < 1e-12] = 1.0
        seg_x = self._segment_space(features)
        n_clusters = max(1, min(self.n_segments, len(np.unique(seg_x.round(8), axis=0))))
        # single-threaded: for a few thousand rows thread start-up costs more than the work itself
        with threadpool_limits(limits=1):
            self._kmeans = KMeans(n_clusters=n_clusters, n_init=10, random_state=self.seed).fit(seg_x)
        segments = self._kmeans.labels_.astype(np.int64)
        self._segment_names = self._name_segments(self._kmeans.cluster_centers_)

        # ---- propensities
        self._kinds = [str(x) for x in pd.unique(dataset.products["kind"].astype(str))]
        prod_kind = dict(
            zip(dataset.products["product_id"].astype(str), dataset.products["kind"].astype(str), strict=True)
        )
        conv = dataset.conversions
        conv_users = user_index.get_indexer(conv["user_id"].astype(str))
        conv_kinds = conv["product_id"].astype(str).map(prod_kind).to_numpy()
        self._propensity_models: dict[str, PropensityModel] = {}
        for kind in self._kinds:
            y = np.zeros(len(user_ids), dtype=np.int64)
            y[conv_users[conv_kinds == kind]] = 1
            with threadpool_limits(limits=1):
                self._propensity_models[kind] = PropensityModel(Cs=(0.1,)).fit(features, y)
        self._fitted = True
        propensities = self.predict_propensities(features)
        propensities.index = pd.Index(user_ids, name="user_id")
        return UserProfiles(
            user_ids=user_ids,
            features=features,
            feature_names=self.feature_names,
            topic_dim=k,
            segments=segments,
            segment_names=list(self._segment_names),
            propensities=propensities,
        )

    def _transform(
        self, interactions: pd.DataFrame, user_ids: list[str], as_of: pd.Timestamp | None, strict: bool
    ) -> np.ndarray:
        user_index = pd.Index(user_ids)
        if user_index.has_duplicates:
            raise ValueError("user_ids must be unique")
        if "user_id" not in interactions.columns:
            raise ValueError("interactions: column 'user_id' is required")
        user_codes = user_index.get_indexer(interactions["user_id"].astype(str))
        unknown = user_codes < 0
        if unknown.any():
            if strict:
                i = int(np.flatnonzero(unknown)[0])
                raise ValueError(
                    f"interactions row {i + 1}, column 'user_id': {interactions['user_id'].iloc[i]!r} "
                    "is not in the users table"
                )
            interactions = interactions[~unknown]
            user_codes = user_codes[~unknown]
        frame = interactions.reset_index(drop=True)
        item_codes, events, values, secs = self._event_arrays(frame, "interactions")
        return self._features(user_codes, item_codes, events, values, secs, len(user_ids), as_of)

    def transform(
        self, interactions: pd.DataFrame, user_ids: Sequence[str], as_of: pd.Timestamp | None = None
    ) -> np.ndarray:
        """Feature rows for ``user_ids`` (in that order) from an interactions frame, with the fitted
        catalogue and reference time; events of other users are ignored. Vectorised counterpart of
        :meth:`profile_for` for many users (e.g. a held-out set)."""
        self._check_fitted()
        ref = self._as_of if as_of is None else pd.Timestamp(as_of)
        if ref is not None and ref.tzinfo is None:
            ref = ref.tz_localize("UTC")
        return self._transform(interactions, [str(u) for u in user_ids], ref, strict=False)

    # ------------------------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not self._fitted:
            raise RuntimeError("ProfileBuilder is not fitted; call fit(dataset) first")

    def _segment_space(self, features: np.ndarray) -> np.ndarray:
        k = self.knowledge.n_topics
        beh = (features[:, k:] - self._beh_mean) / self._beh_std
        return np.hstack([features[:, :k], SEGMENT_BEHAVIOUR_WEIGHT * beh])

    def _name_segments(self, centers: np.ndarray) -> list[str]:
        """Readable names from each centroid's strongest terms (mapped to personas) and its engagement."""
        k = self.knowledge.n_topics
        names: list[str] = []
        for center in centers:
            topic = center[:k]
            engagement_z = center[k + BEHAVIOUR_FEATURES.index("engagement")] / SEGMENT_BEHAVIOUR_WEIGHT
            if np.linalg.norm(topic) < 0.1:
                names.append("newcomers without course history")
                continue
            adjective = "engaged" if engagement_z > 0.25 else "casual" if engagement_z < -0.25 else "regular"
            term_weights = topic @ self.knowledge.components
            top = np.argsort(-term_weights, kind="stable")[:15]
            scores: dict[str, float] = {}
            for t in top:
                term = str(self.knowledge.terms[t])
                for pattern, persona in _PERSONAS:
                    if re.search(pattern, term):
                        scores[persona] = scores.get(persona, 0.0) + float(max(term_weights[t], 0.0))
                        break
            ranked = sorted(scores, key=lambda p: (-scores[p], p))
            persona = ranked[0] if ranked else f"{self.knowledge.terms[top[0]]} learners"
            name = f"{adjective} {persona}"
            if name in names:
                extra = ranked[1] if len(ranked) > 1 else str(self.knowledge.terms[top[0]])
                name = f"{name} ({extra})"
            n = 2
            base = name
            while name in names:
                name = f"{base} #{n}"
                n += 1
            names.append(name)
        return names

    def assign_segments(self, features: np.ndarray) -> np.ndarray:
        """Nearest segment per feature row."""
        self._check_fitted()
        with threadpool_limits(limits=1):
            return self._kmeans.predict(self._segment_space(np.atleast_2d(features))).astype(np.int64)

    @property
    def item_ids(self) -> list[str]:
        """The catalogue the builder was fitted on, in its topic space's row order."""
        self._check_fitted()
        return [str(x) for x in self._item_index]

    @property
    def segment_names(self) -> list[str]:
        self._check_fitted()
        return list(self._segment_names)

    @property
    def kinds(self) -> list[str]:
        self._check_fitted()
        return list(self._kinds)

    def model_features(self, features: np.ndarray) -> np.ndarray:
        """The ranking models' rows (:attr:`UserProfiles.model_features`) for rows of :meth:`transform`."""
        features = np.atleast_2d(np.asarray(features, dtype=np.float64))
        props = self.predict_propensities(features)
        segments = self.assign_segments(features)
        onehot = np.zeros((len(features), len(self._segment_names)), dtype=np.float64)
        onehot[np.arange(len(features)), segments] = 1.0
        return np.hstack([features, props[sorted(props.columns)].to_numpy(dtype=np.float64), onehot])

    def predict_propensities(self, features: np.ndarray) -> pd.DataFrame:
        """P(converts on a product of each kind) per feature row, columns = product kinds."""
        self._check_fitted()
        features = np.atleast_2d(np.asarray(features, dtype=np.float64))
        cols = {kind: model.predict_proba(features) for kind, model in self._propensity_models.items()}
        return pd.DataFrame(cols, columns=self._kinds)

    def profile_for(
        self, history: pd.DataFrame, user_id: str = "anonymous", as_of: pd.Timestamp | None = None
    ) -> Profile:
        """A full profile (segment and propensities included) from one user's course history alone.

        ``history`` has columns ``item_id`` and ``event`` (plus optional ``value``, ``timestamp`` and a
        ``user_id`` that, if present, must be a single user). This is the cold-start path: no product
        history and no refitting needed.
        """
        self._check_fitted()
        if "user_id" in history.columns and history["user_id"].nunique(dropna=True) > 1:
            raise ValueError("history: column 'user_id' holds more than one user; pass one user's history")
        item_codes, events, values, secs = self._event_arrays(history.reset_index(drop=True), "history")
        ref = self._as_of if as_of is None else pd.Timestamp(as_of)
        if ref is not None and ref.tzinfo is None:
            ref = ref.tz_localize("UTC")
        user_codes = np.zeros(len(item_codes), dtype=np.int64)
        features = self._features(user_codes, item_codes, events, values, secs, 1, ref)
        k = self.knowledge.n_topics
        segment = int(self.assign_segments(features)[0])
        props = self.predict_propensities(features).iloc[0]
        return Profile(
            user_id=user_id,
            topics=features[0, :k].copy(),
            behaviour=dict(zip(BEHAVIOUR_FEATURES, map(float, features[0, k:]), strict=True)),
            segment=segment,
            segment_name=self._segment_names[segment],
            propensities={str(kk): float(v) for kk, v in props.items()},
            n_segments=len(self._segment_names),
        )
