"""One topic space for knowledge items and finance/insurance products (LSA).

The bridge between what people learn and what a bank or insurer sells is vocabulary: a course on index
funds and a wealth product both talk about "portfolio", "diversification" and "risk"; a family budgeting
e-book and a life policy both talk about "children" and "family protection". Fitting TF-IDF and a
truncated SVD on course *and* product texts together puts both in the same low-dimensional topic space,
so a learner's course history can be compared with products they never interacted with. That is what
lets the recommender serve users who are cold in the product domain.

Topic vectors are L2-normalised, so dot products are cosine similarities. SVD components have an
arbitrary sign; each is flipped so that its largest term loading is positive, which makes topic labels
(top positive terms) readable and results deterministic.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from itertools import pairwise

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, TfidfVectorizer
from threadpoolctl import threadpool_limits


@dataclass(frozen=True)
class ProductAssociation:
    """What links a product to the knowledge catalogue.

    ``courses``: (course index, cosine similarity) best first; ``keywords``: terms the product shares with
    those courses (its own strongest terms as a fallback); ``topics``: (topic label, product weight).
    """

    courses: list[tuple[int, float]]
    keywords: list[str]
    topics: list[tuple[str, float]]

    def to_dict(self) -> dict[str, object]:
        return {
            "courses": [{"course_index": c, "similarity": s} for c, s in self.courses],
            "keywords": list(self.keywords),
            "topics": [{"topic": t, "weight": w} for t, w in self.topics],
        }


#: Catalogue words that describe the medium or marketing, not the subject; left in, they form topics
#: such as "course / video / beginner" that would match every learner to every product equally.
# fmt: off
FORMAT_STOP_WORDS: frozenset[str] = frozenset(
    (
        "course", "courses", "learn", "learning", "learner", "learners", "lesson", "lessons", "lecture",
        "lectures", "series", "video", "videos", "audio", "ebook", "book", "books", "workbook", "companion",
        "handbook", "podcast", "listen", "vol", "volume", "guide", "guides", "practical", "explained",
        "introduction", "intro", "beginner", "beginners", "level", "levels", "intermediate", "advanced",
        "expert", "master", "masterclass", "complete", "ultimate", "step", "steps", "scratch", "basics",
        "basic", "fundamentals", "days", "day", "hour", "hours", "minutes", "create", "build", "make",
        "start", "started", "getting", "easy", "quick", "fast", "simple", "new", "best", "free", "topics",
        "include", "includes", "explores", "relevant", "confident", "ways", "way", "tips", "tricks",
        "secrets", "using", "use", "need", "know", "want", "pro", "e-book", "e-books",
    )
)
# fmt: on
STOP_WORDS: frozenset[str] = frozenset(ENGLISH_STOP_WORDS) | FORMAT_STOP_WORDS


_PHRASE_BREAK = re.compile(r"[,.;:!?()\[\]{}\"|/+&]+|\s-\s")
_TOKEN = re.compile(r"(?u)\b[a-z][a-z0-9\-]+\b")


def analyze(text: str, stop_words: frozenset[str]) -> list[str]:
    """Unigrams and bigrams *within* phrases: punctuation ends a phrase, so a list such as "medical
    costs, fitness" yields "medical costs" but not the accidental bigram "costs fitness". Stop words are
    dropped before bigrams are formed (as scikit-learn does)."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    grams: list[str] = []
    for phrase in _PHRASE_BREAK.split(text):
        tokens = [t for t in _TOKEN.findall(phrase) if t not in stop_words]
        grams.extend(tokens)
        grams.extend(f"{a} {b}" for a, b in pairwise(tokens))
    return grams


def _l2_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


def _top_term_mask(components: np.ndarray, n_terms: int) -> sp.csr_matrix:
    """Boolean (rows, vocab) matrix marking each row's ``n_terms`` strongest positive terms."""
    n_rows, n_vocab = components.shape
    k = min(n_terms, n_vocab)
    top = np.argpartition(-components, k - 1, axis=1)[:, :k]
    rows = np.repeat(np.arange(n_rows), k)
    cols = top.ravel()
    positive = components[rows, cols] > 0
    return sp.csr_matrix(
        (np.ones(int(positive.sum())), (rows[positive], cols[positive])), shape=(n_rows, n_vocab)
    )


def dedupe_terms(candidates: Sequence[str], k: int) -> list[str]:
    """Keep the first ``k`` terms, skipping a term whose words are all covered by terms already kept
    (so "fund" is dropped after "index fund"; "index fund" is still kept after "fund")."""
    chosen: list[str] = []
    covered: set[str] = set()
    for term in candidates:
        words = set(term.split())
        if words <= covered:
            continue
        chosen.append(term)
        covered |= words
        if len(chosen) >= k:
            break
    return chosen


class KnowledgeSpace:
    """TF-IDF + truncated SVD fitted jointly on course texts and product texts.

    "Courses" means every knowledge item (course, e-book, audio lecture), in the order given to
    :meth:`fit`; their topic rows are :attr:`course_topics`. Products likewise in :attr:`product_topics`.
    """

    def __init__(
        self,
        vectorizer: TfidfVectorizer,
        components: np.ndarray,
        course_tfidf: sp.csr_matrix,
        product_tfidf: sp.csr_matrix,
        seed: int,
    ) -> None:
        self.vectorizer = vectorizer
        self.components = components  # (n_topics, n_terms), sign-normalised
        self.terms = np.asarray(vectorizer.get_feature_names_out(), dtype=object)
        self.course_tfidf = course_tfidf
        self.product_tfidf = product_tfidf
        self.seed = seed
        self.course_topics = self._project(course_tfidf)
        self.product_topics = self._project(product_tfidf)
        self._labels = self._make_labels()
        self._pole_labels = self._make_labels(self.pole_components)
        self._topic_masks: dict[int, sp.csr_matrix] = {}
        self._pole_masks: dict[int, sp.csr_matrix] = {}

    # ------------------------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        course_texts: Sequence[str],
        product_texts: Sequence[str],
        n_topics: int = 32,
        seed: int = 0,
        min_df: int | None = None,
    ) -> KnowledgeSpace:
        """Fit on both corpora. ``n_topics`` is clamped to what the corpus supports (fewer than the
        number of documents and of terms). ``min_df`` defaults to 2 for corpora of 50+ documents (drops
        one-off tokens such as foreign-language words) and 1 for small ones."""
        course_texts = [str(t) for t in course_texts]
        product_texts = [str(t) for t in product_texts]
        if not course_texts or not product_texts:
            raise ValueError("KnowledgeSpace.fit needs at least one course text and one product text")
        if n_topics < 1:
            raise ValueError(f"n_topics must be >= 1, got {n_topics}")
        docs = course_texts + product_texts
        if min_df is None:
            min_df = 2 if len(docs) >= 50 else 1
        vectorizer = TfidfVectorizer(
            analyzer=partial(analyze, stop_words=STOP_WORDS),
            min_df=min_df,
            sublinear_tf=True,
        )
        try:
            matrix = sp.csr_matrix(vectorizer.fit_transform(docs), dtype=np.float64)
        except ValueError as exc:  # empty vocabulary
            raise ValueError(f"KnowledgeSpace.fit: texts have no usable vocabulary ({exc})") from exc
        n_terms = matrix.shape[1]
        k = max(1, min(n_topics, n_terms - 1, len(docs) - 1))
        svd = TruncatedSVD(n_components=k, algorithm="randomized", n_iter=7, random_state=seed)
        # the matrices are small (thousands x tens): BLAS threads would cost more than they save, and on a
        # busy machine oversubscription makes them much slower
        with threadpool_limits(limits=1):
            svd.fit(matrix)
        components = np.asarray(svd.components_, dtype=np.float64).copy()
        signs = np.sign(components[np.arange(k), np.abs(components).argmax(axis=1)])
        signs[signs == 0] = 1.0
        components *= signs[:, None]
        n_courses = len(course_texts)
        return cls(vectorizer, components, matrix[:n_courses], matrix[n_courses:], seed)

    # ------------------------------------------------------------------------------------------------
    @property
    def n_topics(self) -> int:
        return int(self.components.shape[0])

    @property
    def n_courses(self) -> int:
        return int(self.course_topics.shape[0])

    @property
    def n_products(self) -> int:
        return int(self.product_topics.shape[0])

    def _project(self, tfidf: sp.spmatrix) -> np.ndarray:
        return _l2_rows(np.asarray(tfidf @ self.components.T, dtype=np.float64))

    def tfidf(self, texts: Sequence[str]) -> sp.csr_matrix:
        """TF-IDF rows for new texts (same vocabulary)."""
        return sp.csr_matrix(self.vectorizer.transform([str(t) for t in texts]), dtype=np.float64)

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised topic vectors (n_texts, n_topics); all-zero for a text with no known terms."""
        if isinstance(texts, str):
            raise TypeError("transform expects a sequence of texts, not a single string")
        return self._project(self.tfidf(texts))

    @property
    def pole_components(self) -> np.ndarray:
        """The topics split into poles, (2 * n_topics, n_terms): rows ``t`` are topic ``t``'s positive
        loadings, rows ``n_topics + t`` its negative loadings (sign flipped).

        LSA topics are signed axes: "personal finance vs music" is one topic. Explanations work on poles so
        that a product and a learner who both sit on the finance end of that axis are explained by the
        finance terms, never by the label of the other end."""
        return np.vstack([np.clip(self.components, 0.0, None), np.clip(-self.components, 0.0, None)])

    @staticmethod
    def poles(topic_vectors: np.ndarray) -> np.ndarray:
        """Topic vectors (..., T) as non-negative pole weights (..., 2T), matching :attr:`pole_components`."""
        v = np.asarray(topic_vectors, dtype=np.float64)
        return np.concatenate([np.clip(v, 0.0, None), np.clip(-v, 0.0, None)], axis=-1)

    def pole_labels(self) -> list[str]:
        """A readable label per pole (see :attr:`pole_components`): its strongest terms."""
        return list(self._pole_labels)

    def _make_labels(self, components: np.ndarray | None = None, n_terms: int = 3) -> list[str]:
        labels = []
        for row in self.components if components is None else components:
            order = np.argsort(-row, kind="stable")
            candidates = [str(self.terms[i]) for i in order[: 4 * n_terms] if row[i] > 0]
            labels.append(" / ".join(dedupe_terms(candidates, n_terms)))
        return labels

    def topic_labels(self) -> list[str]:
        """A readable label per topic: its top positive terms, e.g. ``"retirement / pension / savings"``."""
        return list(self._labels)

    def topic_terms(self, topic: int, k: int = 10) -> list[str]:
        """The ``k`` strongest positive terms of one topic."""
        row = self.components[topic]
        order = np.argsort(-row, kind="stable")
        return [str(self.terms[i]) for i in order[:k] if row[i] > 0]

    def topic_term_mask(self, n_terms: int = 20) -> sp.csr_matrix:
        """Boolean (n_topics, n_terms_vocab) matrix marking each topic's ``n_terms`` strongest positive
        terms (cached): lets explanations test "is this keyword part of that topic" for many products at
        once with one sparse product."""
        if n_terms not in self._topic_masks:
            self._topic_masks[n_terms] = _top_term_mask(self.components, n_terms)
        return self._topic_masks[n_terms]

    def pole_term_mask(self, n_terms: int = 20) -> sp.csr_matrix:
        """:meth:`topic_term_mask` for the poles, (2 * n_topics, n_terms_vocab)."""
        if n_terms not in self._pole_masks:
            self._pole_masks[n_terms] = _top_term_mask(self.pole_components, n_terms)
        return self._pole_masks[n_terms]

    def keywords(self, text_or_index: str | int, k: int = 8, kind: str = "product") -> list[str]:
        """Top TF-IDF terms of a text, or of product/course number ``text_or_index`` (``kind`` says
        which catalogue an index refers to)."""
        if isinstance(text_or_index, str):
            row = self.tfidf([text_or_index])
        else:
            row = self._tfidf_row(int(text_or_index), kind)
        return self._top_terms(row, k)

    def _tfidf_row(self, index: int, kind: str) -> sp.csr_matrix:
        if kind == "product":
            matrix, n = self.product_tfidf, self.n_products
        elif kind == "course":
            matrix, n = self.course_tfidf, self.n_courses
        else:
            raise ValueError(f"kind must be 'product' or 'course', got {kind!r}")
        if not 0 <= index < n:
            raise IndexError(f"{kind} index {index} out of range 0..{n - 1}")
        return matrix[index]

    def _top_terms(self, row: sp.spmatrix, k: int) -> list[str]:
        row = sp.csr_matrix(row)
        if row.nnz == 0:
            return []
        order = np.lexsort((row.indices, -row.data))
        return dedupe_terms([str(self.terms[row.indices[i]]) for i in order], k)

    def course_similarities(self, product_index: int) -> np.ndarray:
        """Cosine similarity of every course to one product (n_courses,)."""
        return np.asarray(self.course_topics @ self.product_topics[product_index], dtype=np.float64)

    def associations(self, product_index: int, k_courses: int = 5, k_keywords: int = 8) -> ProductAssociation:
        """The courses closest to a product, the keywords they share with it, and its main topics.

        Keywords rank terms by product TF-IDF x mean TF-IDF over the associated courses (shared
        vocabulary first), then fill up with the product's own strongest terms, so every product
        gets keywords even when its text shares little with the catalogue.
        """
        if not 0 <= product_index < self.n_products:
            raise IndexError(f"product index {product_index} out of range 0..{self.n_products - 1}")
        sims = self.course_similarities(product_index)
        k_c = min(k_courses, self.n_courses)
        top = np.lexsort((np.arange(self.n_courses), -sims))[:k_c]
        courses = [(int(i), float(sims[i])) for i in top]

        prod_row = np.asarray(self.product_tfidf[product_index].toarray()).ravel()
        course_mean = (
            np.asarray(self.course_tfidf[top].mean(axis=0)).ravel() if k_c else np.zeros_like(prod_row)
        )
        shared = prod_row * course_mean
        shared_idx = np.flatnonzero(shared > 0)
        shared_order = shared_idx[np.lexsort((shared_idx, -shared[shared_idx]))]
        own_idx = np.flatnonzero(prod_row > 0)
        own_order = own_idx[np.lexsort((own_idx, -prod_row[own_idx]))]
        ranked = [str(self.terms[i]) for i in shared_order] + [str(self.terms[i]) for i in own_order]
        keywords = dedupe_terms(list(dict.fromkeys(ranked)), k_keywords)

        weights = self.poles(self.product_topics[product_index])
        order = np.lexsort((np.arange(weights.shape[0]), -weights))[: min(3, weights.shape[0])]
        topics = [(self._pole_labels[i], float(weights[i])) for i in order if weights[i] > 0]
        return ProductAssociation(courses=courses, keywords=keywords, topics=topics)

    def all_associations(self, k_courses: int = 5, k_keywords: int = 8) -> list[ProductAssociation]:
        """:meth:`associations` for every product (the catalogue-level knowledge map)."""
        return [self.associations(p, k_courses, k_keywords) for p in range(self.n_products)]
