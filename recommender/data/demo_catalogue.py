"""The catalogues of the demo world: knowledge items built on the real Udemy catalogue, and products.

Courses are sampled from ``../shared/data/courses/udemy_courses.csv`` (titles, subjects, prices and
levels are real, messy language included); e-books and audio lectures are templated for the health and
planning topics the catalogue lacks, or derived from sampled courses. Products are drawn per kind from the
tables in :mod:`recommender.data.demo_tables`. Every description uses the vocabulary of the item's themes,
which is the only bridge between the course and the product domain that models get.

Each function draws from the generator it is given, in a fixed order, so a world is a function of its seed.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from recommender.data.demo_tables import (
    BRANDS,
    CATALOGUE_TEXT,
    PRODUCT_KINDS,
    STAGES,
    SUBJECT_VOCABULARY,
    THEMES,
    TOPICS,
)
from recommender.paths import DATA_DIR_ENV, data_dir

UDEMY_RELATIVE = Path("courses") / "udemy_courses.csv"
_TEXT = CATALOGUE_TEXT
_LEVELS = _TEXT.levels
_FINANCE_TITLE = _TEXT.finance_title
_TEMPLATES = _TEXT.description_templates


@lru_cache(maxsize=4)
def _load_udemy(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    needed = {"course_id", "course_title", "price", "level", "subject", "num_subscribers"}
    missing = needed - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: expected columns {sorted(needed)}, missing {sorted(missing)}")
    frame = frame.drop_duplicates("course_id").drop_duplicates("course_title")
    frame = frame[frame["level"].isin(list(_LEVELS))].reset_index(drop=True)
    return frame


def udemy_catalogue() -> pd.DataFrame:
    """The shared Udemy catalogue (deduplicated), or a clear error naming the expected path."""
    try:
        base = data_dir()
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"the demo world needs the Udemy catalogue at ../shared/data/{UDEMY_RELATIVE.as_posix()} "
            f"({exc}); set {DATA_DIR_ENV} to the shared data folder"
        ) from exc
    path = base / UDEMY_RELATIVE
    if not path.is_file():
        raise FileNotFoundError(
            f"the demo world needs the Udemy catalogue at {path}, which is missing; "
            f"set {DATA_DIR_ENV} to the shared data folder that holds {UDEMY_RELATIVE.as_posix()}"
        )
    return _load_udemy(path.resolve()).copy()


def _theme_vec(weights: dict[str, float]) -> np.ndarray:
    vec = np.zeros(len(THEMES))
    for name, w in weights.items():
        vec[THEMES.index(name)] += w
    return vec


def _stage_vec(weights: dict[str, float]) -> np.ndarray:
    vec = np.zeros(len(STAGES))
    for name, w in weights.items():
        vec[STAGES.index(name)] += w
    return vec


def _course_theme(subject: str, title: str) -> dict[str, float]:
    if subject == "Web Development":
        return {"tech": 0.85, "business": 0.15}
    if subject == "Musical Instruments":
        return {"creative": 1.0}
    if subject == "Graphic Design":
        return {"creative": 0.8, "tech": 0.2}
    if _FINANCE_TITLE.search(title):
        return {"finance": 0.85, "business": 0.15}
    return {"business": 0.8, "finance": 0.2}


def _vocab_for(theme: str, category: str) -> tuple[str, ...]:
    if theme == "creative" and category in SUBJECT_VOCABULARY:
        return SUBJECT_VOCABULARY[category]
    return TOPICS[theme].vocabulary


def _theme_terms(rng: np.random.Generator, theme: np.ndarray, n_terms: int, category: str = "") -> list[str]:
    """``n_terms`` distinct terms drawn from the theme vocabularies in proportion to ``theme``."""
    probs = theme / theme.sum()
    chosen: list[str] = []
    for _ in range(n_terms * 4):
        t = THEMES[int(rng.choice(len(THEMES), p=probs))]
        vocab = _vocab_for(t, category)
        term = vocab[int(rng.integers(len(vocab)))]
        if term not in chosen:
            chosen.append(term)
        if len(chosen) >= n_terms:
            break
    return chosen


def _describe(
    rng: np.random.Generator, title: str, theme: np.ndarray, category: str, n_terms: int = 5
) -> str:
    """A catalogue blurb: the title plus vocabulary drawn from the item's themes (mostly the main one)."""
    chosen = _theme_terms(rng, theme, n_terms, category)
    terms = ", ".join(chosen[:-1]) + f" and {chosen[-1]}" if len(chosen) > 1 else chosen[0]
    template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
    return template.format(title=title, terms=terms)


def draw_items(
    rng: np.random.Generator, catalogue: pd.DataFrame, n_courses: int
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The knowledge catalogue: ``n_courses`` sampled courses plus templated and derived e-books and audio.

    Returns the items table (schema columns), their theme vectors (n_items, n_themes) and popularity
    logits (n_items,).
    """
    if n_courses > len(catalogue):
        raise ValueError(f"n_courses={n_courses} exceeds the {len(catalogue)} courses in the catalogue")
    sample = catalogue.iloc[np.sort(rng.choice(len(catalogue), size=n_courses, replace=False))]
    rows: list[dict[str, object]] = []
    themes: list[np.ndarray] = []
    pops: list[float] = []
    for rec in sample.itertuples(index=False):
        theme = _theme_vec(_course_theme(str(rec.subject), str(rec.course_title)))
        title = str(rec.course_title).strip()
        rows.append(
            {
                "item_id": f"udemy-{int(rec.course_id)}",
                "kind": "course",
                "title": title,
                "description": _describe(rng, title, theme, str(rec.subject)),
                "category": str(rec.subject),
                "price": float(rec.price),
                "level": _LEVELS[str(rec.level)],
            }
        )
        themes.append(theme)
        pops.append(float(np.log1p(rec.num_subscribers)))

    n_ebooks = max(4, n_courses // 4)
    n_audio = max(3, n_courses // 6)
    n_health = max(6, n_courses // 12)
    n_planning = max(4, n_courses // 24)
    # every planning topic appears at least once when the world is large enough (tests rely on
    # "Retirement Planning" existing); the rest of the budget goes to derived and health items
    templated: list[tuple[str, np.ndarray, str]] = []
    for j in range(n_planning):
        topic = _TEXT.planning_topics[j % len(_TEXT.planning_topics)]
        templated.append((topic, _theme_vec({"finance": 0.7, "health": 0.3}), "Personal Finance"))
    for j in range(n_health):
        topic = _TEXT.health_topics[j % len(_TEXT.health_topics)]
        templated.append((topic, _theme_vec({"health": 0.9, "finance": 0.1}), "Health & Family"))
    used_titles = {str(r["title"]) for r in rows}
    counters = {"ebook": 0, "audio": 0}
    budget = {"ebook": n_ebooks, "audio": n_audio}

    def add(
        kind: str, title: str, theme: np.ndarray, category: str, price: float, level: str, pop: float
    ) -> None:
        base = title
        n = 2
        while title in used_titles:
            title = f"{base} (Vol. {n})"
            n += 1
        used_titles.add(title)
        counters[kind] += 1
        prefix = "E" if kind == "ebook" else "A"
        rows.append(
            {
                "item_id": f"{prefix}{counters[kind]:04d}",
                "kind": kind,
                "title": title,
                "description": _describe(rng, title, theme, category),
                "category": category,
                "price": price,
                "level": level,
            }
        )
        themes.append(theme)
        pops.append(pop)

    for j, (topic, theme, category) in enumerate(templated):
        kind = "ebook" if j % 2 == 0 else "audio"
        forms = _TEXT.ebook_forms if kind == "ebook" else _TEXT.audio_forms
        plain = j < min(n_planning, len(_TEXT.planning_topics))  # first pass: the plain topic as title
        title = topic if plain else forms[int(rng.integers(len(forms)))].format(topic)
        price = float(rng.choice([0.0, 4.99, 9.99, 14.99, 19.99]))
        level = "beginner" if rng.random() < 0.6 else "all_levels"
        add(kind, title, theme, category, price, level, float(rng.uniform(4.0, 7.0)))
    for kind in ("ebook", "audio"):
        remaining = max(0, budget[kind] - counters[kind])
        sources = rng.choice(n_courses, size=min(remaining, n_courses), replace=False)
        derived_forms = _TEXT.derived_ebook_forms if kind == "ebook" else _TEXT.derived_audio_forms
        factor = 0.3 if kind == "ebook" else 0.2
        for s in np.sort(sources):
            src = rows[int(s)]
            title = derived_forms[int(rng.integers(len(derived_forms)))].format(src["title"])
            src_price = float(str(src["price"]))
            price = round(max(2.99, src_price * factor), 2) if src_price > 0 else 0.0
            add(
                kind,
                title,
                themes[int(s)],
                str(src["category"]),
                price,
                str(src["level"]),
                pops[int(s)] - 1.0,
            )
    return pd.DataFrame(rows), np.vstack(themes), np.asarray(pops)


def _allocate(n: int, shares: np.ndarray) -> np.ndarray:
    raw = shares / shares.sum() * n
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    return counts


def draw_products(rng: np.random.Generator, n_products: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """``n_products`` products spread over the kinds by their shares, each a branded variant of its kind.

    Returns the products table, their theme vectors (unit length) and life-stage profiles.
    """
    counts = _allocate(n_products, np.array([k.share for k in PRODUCT_KINDS]))
    rows: list[dict[str, object]] = []
    themes: list[np.ndarray] = []
    stages: list[np.ndarray] = []
    names: set[str] = set()
    for spec, count in zip(PRODUCT_KINDS, counts, strict=True):
        for j in range(int(count)):
            variant = spec.variants[j % len(spec.variants)]
            name = ""
            for b in rng.permutation(len(BRANDS)):
                name = f"{BRANDS[int(b)]} {variant.name}"
                if name not in names:
                    break
            n = 2
            base = name
            while name in names:
                name = f"{base} {n}"
                n += 1
            names.add(name)
            terms = rng.choice(len(spec.vocabulary), size=min(4, len(spec.vocabulary)), replace=False)
            vocab = ", ".join(spec.vocabulary[int(t)] for t in terms)
            generic = spec.generic[int(rng.integers(len(spec.generic)))]
            theme = _theme_vec(spec.themes) + _theme_vec(variant.theme_delta)
            theme = theme / np.linalg.norm(theme)
            # who the product is for, in the vocabulary of its themes: what links it to the catalogue
            audience = _theme_terms(rng, theme, 3)
            description = (
                f"{variant.sentence} {generic} Relevant to {vocab}. "
                f"Popular with learners of {', '.join(audience[:-1])} and {audience[-1]}."
            )
            stage = _stage_vec(spec.stages) + _stage_vec(variant.stage_delta)
            lo, hi = spec.premium
            rows.append(
                {
                    "product_id": f"P{len(rows) + 1:03d}",
                    "kind": spec.kind,
                    "name": name,
                    "description": description,
                    "risk_level": int(rng.integers(spec.risk[0], spec.risk[1] + 1)),
                    "min_premium": float(round(np.exp(rng.uniform(np.log(lo), np.log(hi))), 0)),
                }
            )
            themes.append(theme)
            stages.append(stage)
    frame = pd.DataFrame(rows)
    frame["risk_level"] = frame["risk_level"].astype("int64")
    return frame, np.vstack(themes), np.vstack(stages)
