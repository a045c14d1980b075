"""Why a product was recommended, in the learner's own terms.

A recommendation a bank shows to a learner must be explainable (and a regulator will ask). Because
profiles and products share one topic space (:mod:`recommender.knowledge`), the score decomposes: the
cosine between a profile's topic vector ``u`` and a product's ``p`` is ``sum_t u_t p_t``, so the topics
with the largest ``u_t p_t`` are the reasons. The explanation adds the product keywords that belong to
those topics or to the learner's own courses ("retirement", "index fund"), and the learner's courses most
similar to the product ("because you completed *Retirement Planning*").

:func:`explain_many` does the work for a whole recommendation list with a few matrix products, so serving
can explain every item it returns without a per-item loop over the vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import scipy.sparse as sp

from recommender.knowledge import KnowledgeSpace, dedupe_terms

#: How many of a topic's strongest terms count as "belonging" to it when selecting keywords.
TOPIC_TERMS = 20


@dataclass(frozen=True)
class Explanation:
    """Reasons for recommending ``product_index``: topics with their contribution to the score, shared
    keywords, and the user's own courses (course index, cosine similarity) closest to the product."""

    product_index: int
    topics: list[tuple[str, float]]
    keywords: list[str]
    courses: list[tuple[int, float]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "product_index": self.product_index,
            "topics": [{"topic": t, "contribution": c} for t, c in self.topics],
            "keywords": list(self.keywords),
            "courses": [{"course_index": i, "similarity": s} for i, s in self.courses],
        }


def _validate(
    profile_topics: np.ndarray, product_indices: np.ndarray, knowledge: KnowledgeSpace, courses: np.ndarray
) -> np.ndarray:
    u = np.asarray(profile_topics, dtype=np.float64).ravel()
    if u.shape[0] < knowledge.n_topics:
        raise ValueError(
            f"profile_topics has {u.shape[0]} entries, the knowledge space has {knowledge.n_topics} topics"
        )
    # a full feature row (topics then behaviour) is accepted: only the topic part is used
    u = u[: knowledge.n_topics]
    if len(product_indices) and (product_indices.min() < 0 or product_indices.max() >= knowledge.n_products):
        raise IndexError(f"product indices must be in 0..{knowledge.n_products - 1}")
    if len(courses) and (courses.min() < 0 or courses.max() >= knowledge.n_courses):
        raise IndexError(f"course indices must be in 0..{knowledge.n_courses - 1}")
    return u


def _label_in_product(
    pole: np.ndarray, term_idx: np.ndarray, term_weights: np.ndarray, terms: np.ndarray, n: int = 3
) -> str:
    """A topic pole as it shows in one product: the product's own terms that load most on the pole.

    A global label is the pole's strongest terms over the whole corpus ("guitar / fund / trading" for an
    axis that separates finance and music from web development); in a pension's explanation the learner
    should read the part of that topic the pension actually shares ("fund / retirement / savings")."""
    strength = pole[term_idx] * term_weights
    keep = strength > 0
    if not keep.any():
        return ""
    idx, val = term_idx[keep], strength[keep]
    ranked = [str(terms[i]) for i in idx[np.lexsort((idx, -val))]]
    return " / ".join(dedupe_terms(ranked, n))


def _dense_pole_mask(knowledge: KnowledgeSpace) -> np.ndarray:
    """The pole → term mask of :data:`TOPIC_TERMS` terms as a dense float array, kept on the space."""
    cache = knowledge.__dict__.setdefault("_explain_dense_masks", {})
    if TOPIC_TERMS not in cache:
        cache[TOPIC_TERMS] = (knowledge.pole_term_mask(TOPIC_TERMS).toarray() > 0).astype(np.float64)
    return cast(np.ndarray, cache[TOPIC_TERMS])


def _label_cache(knowledge: KnowledgeSpace) -> dict[tuple[int, int], str]:
    return cast(dict[tuple[int, int], str], knowledge.__dict__.setdefault("_explain_labels", {}))


def explain_many(
    profile_topics: np.ndarray,
    product_indices: Sequence[int] | np.ndarray,
    knowledge: KnowledgeSpace,
    user_course_indices: Sequence[int] | np.ndarray,
    k: int = 3,
    k_keywords: int = 5,
) -> list[Explanation]:
    """:func:`explain` for several products of one user at once (vectorised over products and terms)."""
    products = np.asarray(product_indices, dtype=np.int64).ravel()
    courses = np.unique(np.asarray(user_course_indices, dtype=np.int64).ravel())
    u = _validate(profile_topics, products, knowledge, courses)
    if len(products) == 0:
        return []
    # topics: each topic's contribution to the cosine, largest first (ties by index). LSA topics are signed
    # axes, so they are split into poles (see KnowledgeSpace.pole_components): agreement on the negative
    # end of "finance vs music" is explained by the finance terms, not by the label of the other end.
    labels = knowledge.pole_labels()
    n_poles = len(labels)
    contrib = knowledge.poles(knowledge.product_topics[products]) * knowledge.poles(u)[None, :]  # (m, 2T)
    # take 3k poles: two poles may read the same in one product and are then merged into one reason
    order = np.lexsort((np.broadcast_to(np.arange(n_poles), contrib.shape), -contrib), axis=1)[:, : 3 * k]
    top_contrib = np.take_along_axis(contrib, order, axis=1)

    # keywords: product terms that are among the chosen topics' terms or occur in the user's courses
    # (dense over the vocabulary: a handful of products per call, so this beats sparse bookkeeping)
    chosen = np.zeros((len(products), n_poles))
    np.put_along_axis(chosen, order, (top_contrib > 0).astype(np.float64), axis=1)
    pole_mask = _dense_pole_mask(knowledge)
    in_topics = (chosen @ pole_mask) > 0  # (m, V)
    n_vocab = knowledge.product_tfidf.shape[1]
    in_courses = np.zeros(n_vocab)
    if len(courses):
        in_courses[np.unique(knowledge.course_tfidf[courses].indices)] = 1.0
    prod_tfidf = sp.csr_matrix(knowledge.product_tfidf[products])
    # score = product TF-IDF weight x (in a driving topic + in the user's courses): 0 means "not shared"
    scores = prod_tfidf.toarray() * (in_topics + in_courses[None, :])

    # courses: the user's own courses closest to each product
    if len(courses):
        sims = knowledge.product_topics[products] @ knowledge.course_topics[courses].T  # (m, n_uc)
        c_order = np.lexsort((np.broadcast_to(courses, sims.shape), -sims), axis=1)[:, :k]
        c_sims = np.take_along_axis(sims, c_order, axis=1)
    out: list[Explanation] = []
    terms = knowledge.terms
    label_cache = _label_cache(knowledge)
    poles: np.ndarray | None = None
    for row in range(len(products)):
        p_start, p_stop = prod_tfidf.indptr[row], prod_tfidf.indptr[row + 1]
        p_terms, p_weights = prod_tfidf.indices[p_start:p_stop], prod_tfidf.data[p_start:p_stop]
        merged: dict[str, float] = {}
        for t, c in zip(order[row], top_contrib[row], strict=True):
            if c > 0:
                # a pole's label in a product depends on the two only: computed once, then remembered
                key = (int(t), int(products[row]))
                label = label_cache.get(key)
                if label is None:
                    if poles is None:
                        poles = knowledge.pole_components
                    label = label_cache[key] = _label_in_product(poles[int(t)], p_terms, p_weights, terms)
                label = label or labels[int(t)]
                merged[label] = merged.get(label, 0.0) + float(c)
        topics = sorted(merged.items(), key=lambda kv: -kv[1])[:k]
        idx = np.flatnonzero(scores[row])
        val = scores[row, idx]
        ranked = idx[np.lexsort((idx, -val))]
        keywords = dedupe_terms([str(terms[i]) for i in ranked], k_keywords)
        course_list = (
            [(int(courses[c]), float(s)) for c, s in zip(c_order[row], c_sims[row], strict=True)]
            if len(courses)
            else []
        )
        out.append(Explanation(int(products[row]), topics, keywords, course_list))
    return out


def explain(
    profile_topics: np.ndarray,
    product_index: int,
    knowledge: KnowledgeSpace,
    user_course_indices: Sequence[int] | np.ndarray,
    k: int = 3,
    k_keywords: int = 5,
) -> Explanation:
    """Explain one product for one user: top-``k`` contributing topics, up to ``k_keywords`` shared
    keywords, and the user's ``k`` courses most similar to the product."""
    return explain_many(profile_topics, [product_index], knowledge, user_course_indices, k, k_keywords)[0]
