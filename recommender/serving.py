"""Serving: load a versioned model artifact and rank products for one profile, in plain numpy.

Any registered model can be served (:mod:`recommender.models.registry`): the artifact holds the model's
spec and fitted arrays, :class:`ProductRanker` rebuilds it and scores a user **from a history** (the
products the learner already holds) and the learner's profile feature vector (the course-domain profile
from :mod:`recommender.profiles`; topic interests first). This is what the backend calls after it has
checked consent on chain. Scoring uses numpy arrays only, so there is no torch import, and a
1,000-product catalogue is scored well under a millisecond on one CPU core (measured by
``scripts/bench_recommender.py``). Each returned product carries an explanation from
:mod:`recommender.explain` when the artifact includes the topic space. The non-personalised baseline
(the A/B control) ranks by the training popularity stored with the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommender.artifacts import (
    ArtifactError,
    ArtifactMetadata,
    data_fingerprint,
    default_version,
    load_artifact,
    save_artifact,
)
from recommender.explain import explain_many
from recommender.knowledge import KnowledgeSpace
from recommender.models.base import InteractionData, Recommender, as_history, popularity_prior
from recommender.models.registry import describe, restore, state_arrays

MODEL_PREFIX = "model/"
SERVING_PREFIX = "serving/"
KNOWLEDGE_PREFIX = "knowledge/"
#: The key of the non-personalised baseline scores in :attr:`ProductRanker.arrays`.
BASELINE = "item_bias"


class _StoredVocabulary:
    """Stands in for the fitted ``TfidfVectorizer`` of a :class:`KnowledgeSpace` restored from arrays.

    Explanations only need the vocabulary, the LSA components and the stored TF-IDF rows; transforming
    new text would need the analyser and is not part of serving, so it fails clearly.
    """

    def __init__(self, terms: np.ndarray) -> None:
        self._terms = np.asarray(terms, dtype=object)

    def get_feature_names_out(self) -> np.ndarray:
        return self._terms

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        raise NotImplementedError("a KnowledgeSpace restored from an artifact cannot embed new text")


def _csr_arrays(prefix: str, matrix: sp.spmatrix) -> dict[str, np.ndarray]:
    m = sp.csr_matrix(matrix)
    return {
        f"{prefix}_data": np.asarray(m.data, dtype=np.float64),
        f"{prefix}_indices": np.asarray(m.indices, dtype=np.int64),
        f"{prefix}_indptr": np.asarray(m.indptr, dtype=np.int64),
        f"{prefix}_shape": np.asarray(m.shape, dtype=np.int64),
    }


def _csr_from(arrays: dict[str, np.ndarray], prefix: str) -> sp.csr_matrix:
    shape = tuple(int(v) for v in arrays[f"{prefix}_shape"])
    return sp.csr_matrix(
        (arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"]), shape=shape
    )


def knowledge_arrays(knowledge: KnowledgeSpace) -> dict[str, np.ndarray]:
    """The parts of a topic space explanations need, as plain arrays (unicode vocabulary, CSR parts)."""
    out = {
        "components": np.asarray(knowledge.components, dtype=np.float64),
        "terms": np.asarray([str(t) for t in knowledge.terms], dtype=str),
        "seed": np.asarray([knowledge.seed], dtype=np.int64),
    }
    out.update(_csr_arrays("course_tfidf", knowledge.course_tfidf))
    out.update(_csr_arrays("product_tfidf", knowledge.product_tfidf))
    return out


def knowledge_from_arrays(arrays: dict[str, np.ndarray]) -> KnowledgeSpace:
    """Rebuild a :class:`KnowledgeSpace` (for explanations only) from :func:`knowledge_arrays`."""
    vocabulary = _StoredVocabulary(arrays["terms"])
    return KnowledgeSpace(
        vocabulary,
        np.asarray(arrays["components"], dtype=np.float64),
        _csr_from(arrays, "course_tfidf"),
        _csr_from(arrays, "product_tfidf"),
        int(arrays["seed"][0]),
    )


def save_model_artifact(
    model: Recommender,
    data: InteractionData,
    root: str | Path,
    knowledge: KnowledgeSpace | None = None,
    version: str | None = None,
    metrics: dict[str, Any] | None = None,
    item_ids: Sequence[str] | None = None,
    overwrite: bool = False,
    params: dict[str, Any] | None = None,
) -> Path:
    """Save any fitted registered model (and optionally its topic space) as a versioned artifact.

    ``data`` is the training data (its fingerprint, feature width and popularity are recorded);
    ``params`` adds JSON facts to the metadata's ``params`` next to the model's ``spec``.
    """
    if model.n_items is None:
        raise ArtifactError("the model is not fitted: nothing to save")
    n_items = int(model.n_items)
    if data.n_items != n_items:
        raise ArtifactError(f"data has {data.n_items} items, the model {n_items}")
    if item_ids is not None and len(item_ids) != n_items:
        raise ArtifactError(f"item_ids has {len(item_ids)} entries, the model scores {n_items} items")
    if knowledge is not None and knowledge.n_products != n_items:
        raise ArtifactError(
            f"knowledge has {knowledge.n_products} products, the model scores {n_items} items"
        )
    try:
        spec = describe(model)
    except ValueError as exc:
        raise ArtifactError(str(exc)) from None
    fingerprint = data_fingerprint(data)
    arrays = {MODEL_PREFIX + k: np.asarray(v) for k, v in state_arrays(model).items()}
    arrays[SERVING_PREFIX + BASELINE] = popularity_prior(data.interactions)
    if knowledge is not None:
        arrays.update({KNOWLEDGE_PREFIX + k: v for k, v in knowledge_arrays(knowledge).items()})
    if item_ids is None:
        meta_ids = data.meta.get("item_ids")
        item_ids = [str(i) for i in meta_ids] if meta_ids is not None and len(meta_ids) == n_items else None
    user_dim = 0 if data.user_features is None else int(np.asarray(data.user_features).shape[1])
    metadata = ArtifactMetadata(
        model_name=spec["name"],
        version=version or default_version(fingerprint),
        created_at=_now_iso(),
        data_fingerprint=fingerprint,
        feature_dims={
            "user_features": user_dim,
            "item_features": 0
            if data.item_features is None
            else int(np.asarray(data.item_features).shape[1]),
            "n_items": n_items,
            "topic_dim": 0 if knowledge is None else knowledge.n_topics,
        },
        seed=spec["params"].get("seed"),
        metrics=dict(metrics or {}),
        item_ids=None if item_ids is None else [str(i) for i in item_ids],
        params={**dict(params or {}), "spec": spec},
    )
    return save_artifact(root, arrays, metadata, overwrite=overwrite)


def _now_iso() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class RankedProduct:
    """One recommended product: catalogue index, id, score and (if available) its explanation."""

    index: int
    product_id: str
    score: float
    explanation: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "product_id": self.product_id,
            "score": self.score,
            "explanation": self.explanation,
        }


class ProductRanker:
    """Numpy-only ranker over a saved model artifact: ``ProductRanker.load(path).rank(profile)``.

    ``arrays`` holds the model's fitted arrays (under ``model/``) and the baseline scores
    (:data:`BASELINE`); ``metadata.params["spec"]`` says which model they belong to.
    """

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        metadata: ArtifactMetadata,
        knowledge: KnowledgeSpace | None = None,
    ) -> None:
        spec = metadata.params.get("spec")
        if not isinstance(spec, dict):
            raise ArtifactError("artifact metadata lacks the model spec (params.spec)")
        if BASELINE not in arrays:
            raise ArtifactError(f"artifact lacks the baseline array {BASELINE!r}")
        state = {k[len(MODEL_PREFIX) :]: v for k, v in arrays.items() if k.startswith(MODEL_PREFIX)}
        try:
            self.model = restore(spec, state)
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(
                f"the artifact's {spec.get('name')!r} model cannot be rebuilt: {exc}"
            ) from None
        self.arrays = arrays
        self.metadata = metadata
        self.knowledge = knowledge
        self.n_products = int(self.model.n_items or 0)
        if np.asarray(arrays[BASELINE]).shape != (self.n_products,):
            raise ArtifactError(
                f"the baseline has shape {np.asarray(arrays[BASELINE]).shape}, not ({self.n_products},)"
            )
        self.feature_dim = int(metadata.feature_dims.get("user_features", 0))
        ids = metadata.item_ids
        self.product_ids = list(ids) if ids is not None else [str(i) for i in range(self.n_products)]

    @classmethod
    def load(cls, path: str | Path) -> ProductRanker:
        """Load an artifact directory written by :func:`save_model_artifact`."""
        raw, metadata = load_artifact(path)
        arrays = {k: v for k, v in raw.items() if k.startswith(MODEL_PREFIX)}
        if SERVING_PREFIX + BASELINE in raw:
            arrays[BASELINE] = raw[SERVING_PREFIX + BASELINE]
        know = {k[len(KNOWLEDGE_PREFIX) :]: v for k, v in raw.items() if k.startswith(KNOWLEDGE_PREFIX)}
        knowledge = knowledge_from_arrays(know) if know else None
        return cls(arrays, metadata, knowledge)

    def _check_features(self, profile_features: np.ndarray) -> np.ndarray:
        feats = np.asarray(profile_features, dtype=np.float32)
        if feats.ndim == 1:
            feats = feats[None, :]
        if feats.ndim != 2 or feats.shape[1] != self.feature_dim:
            raise ValueError(
                f"profile_features must have {self.feature_dim} columns (the model's feature dimension), "
                f"got shape {np.asarray(profile_features).shape}"
            )
        if not np.isfinite(feats).all():
            raise ValueError("profile_features contains NaN or infinite values")
        return feats

    def _history_row(self, history: Sequence[int] | None, n_rows: int) -> sp.csr_matrix:
        idx = [] if history is None else list(history)
        return as_history([idx] * n_rows, self.n_products)

    def score_batch(self, history: Any, profile_features: np.ndarray | None = None) -> np.ndarray:
        """Scores (n, n_products) for ``n`` users: ``history`` as for
        :meth:`~recommender.models.base.Recommender.score_history`, ``profile_features`` (n, feature_dim)."""
        # the values (ratings) of a history pass on: the model binarises them unless it reads them
        hist = as_history(history, self.n_products, binary=False)
        feats = None
        if self.feature_dim:
            if profile_features is None:
                raise ValueError(
                    f"profile_features is required: the model was trained with {self.feature_dim}"
                )
            feats = self._check_features(profile_features)
            if feats.shape[0] != hist.shape[0]:
                raise ValueError(f"profile_features has {feats.shape[0]} rows, history {hist.shape[0]}")
        return self.model.score_history(hist, feats)

    def score(self, profile_features: np.ndarray, history: Sequence[int] | None = None) -> np.ndarray:
        """Scores over all products: (n_products,) for one profile, (n, n_products) for a batch of profiles
        that share ``history``."""
        feats = self._check_features(profile_features)
        out = self.model.score_history(
            self._history_row(history, len(feats)), feats if self.feature_dim else None
        )
        return out[0] if np.asarray(profile_features).ndim == 1 else out

    def rank(
        self,
        profile_features: np.ndarray,
        k: int = 10,
        history: Sequence[int] | None = None,
        course_indices: Sequence[int] = (),
        explain: bool = True,
        candidates: Sequence[int] | None = None,
        baseline: bool = False,
    ) -> list[RankedProduct]:
        """The top-``k`` products for one profile, best first; products in ``history`` are left out, and
        only ``candidates`` (catalogue indices, e.g. one partner's products) are ranked when given.

        ``course_indices`` (the learner's courses, as rows of the artifact's topic space) let the
        explanation cite them; ``explain=False`` skips explanations (the pure scoring path).
        ``baseline=True`` ranks by the non-personalised baseline instead of the model: the training
        popularity stored in the artifact (:data:`BASELINE`), ties broken by catalogue index; the score is
        that popularity, and history, candidates and explanations apply as usual (the A/B control for
        personalisation).
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        profile = np.asarray(profile_features)
        if profile.ndim != 1:
            raise ValueError(f"rank takes one profile (a 1-D vector), got shape {profile.shape}")
        if baseline:
            self._check_features(profile)
            owned = np.asarray([] if history is None else list(history), dtype=np.int64)
            if owned.size and (owned.min() < 0 or owned.max() >= self.n_products):
                raise ValueError(
                    f"history holds product indices outside 0..{self.n_products - 1}: {owned.tolist()}"
                )
            scores = np.array(self.arrays[BASELINE], dtype=np.float64).reshape(self.n_products)
        else:
            scores = np.asarray(self.score(profile, history), dtype=np.float64)
        if history:
            scores[np.asarray(list(history), dtype=np.int64)] = -np.inf
        if candidates is not None:
            allowed = np.asarray(list(candidates), dtype=np.int64)
            if allowed.size and (allowed.min() < 0 or allowed.max() >= self.n_products):
                raise ValueError(f"candidates hold product indices outside 0..{self.n_products - 1}")
            keep = np.full(self.n_products, -np.inf)
            keep[allowed] = 0.0
            scores = scores + keep
        kk = min(k, int(np.isfinite(scores).sum()))
        if kk == 0:
            return []
        if baseline:  # a full stable sort: equal biases keep catalogue order, also at the cut-off
            top = np.argsort(-scores, kind="stable")[:kk]
        else:
            top = np.argpartition(-scores, kk - 1)[:kk]
            top = top[np.argsort(-scores[top], kind="stable")]
        explanations: list[dict[str, Any] | None] = [None] * kk
        if explain and self.knowledge is not None and profile.shape[0] >= self.knowledge.n_topics:
            found = explain_many(
                profile[: self.knowledge.n_topics], top, self.knowledge, list(course_indices)
            )
            explanations = [e.to_dict() for e in found]
        return [
            RankedProduct(int(i), self.product_ids[int(i)], float(scores[i]), explanations[j])
            for j, i in enumerate(top)
        ]
