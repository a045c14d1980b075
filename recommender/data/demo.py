"""A synthetic KnowLedger world with known ground truth, built around a real course catalogue.

Why synthetic: no public data set links what people learn to which financial products they buy, and a
model can only be judged against a truth it did not see. The world is generated from latent variables
that are kept (:class:`DemoTruth`), so tests and benchmarks can check that the pipeline recovers them.

Why real titles: course titles, subjects, prices and levels are sampled from the Udemy catalogue in
``../shared/data/courses/udemy_courses.csv`` so the text side (TF-IDF/LSA) faces real, messy language
(including non-English titles). Health and family topics are missing from that catalogue, so e-books and
audio lectures on them are derived from templates; other e-books/audio are derived from sampled courses.

The generative story:

* each user has a life stage and latent interests over five themes (Dirichlet, stage-dependent), plus an
  activity level;
* course behaviour follows interests: views (popularity x interest), purchase, completion and rating
  (more likely when the item matches the user's interests), with increasing timestamps;
* each product has a theme profile and a life-stage profile, and its description uses the vocabulary of
  its kind and of its themes (that shared vocabulary is the only bridge models get); the true affinity
  of a user to a product is ``6 * interests @ product_themes + 2 * stage_affinity + product quality``;
  the number of conversions is Poisson with a rate that grows with course activity, and the products
  are drawn without replacement with probabilities ``softmax(affinity)``.

Everything is vectorised numpy driven by one seed, so a world is deterministic and takes about a second.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommender.data.loader import KnowledgeDataset, validate_dataset
from recommender.knowledge import KnowledgeSpace
from recommender.models.base import InteractionData
from recommender.paths import DATA_DIR_ENV, data_dir
from recommender.profiles import ProfileBuilder, UserProfiles

UDEMY_RELATIVE = Path("courses") / "udemy_courses.csv"

THEMES: tuple[str, ...] = ("finance", "business", "tech", "creative", "health")
STAGES: tuple[str, ...] = ("student", "young_professional", "family", "pre_retirement")

#: Weights of the true product affinity: interests x product themes, life stage x product stage profile.
THEME_WEIGHT = 6.0
STAGE_WEIGHT = 2.0
#: Scale of the stage-dependent Dirichlet concentrations: below 1 makes interests peakier.
INTEREST_CONCENTRATION = 0.45

WORLD_START = pd.Timestamp("2022-01-01T00:00:00Z")
WORLD_END = pd.Timestamp("2024-01-01T00:00:00Z")


@dataclass(frozen=True)
class TopicDefinition:
    """A latent theme: its name, a readable label and the vocabulary its texts draw on."""

    name: str
    label: str
    vocabulary: tuple[str, ...]


TOPICS: dict[str, TopicDefinition] = {
    t.name: t
    for t in (
        TopicDefinition(
            "finance",
            "personal finance & investing",
            (
                "investing",
                "index fund",
                "stock market",
                "portfolio",
                "diversification",
                "compound interest",
                "retirement",
                "savings",
                "risk",
                "dividends",
                "bonds",
                "asset allocation",
                "financial planning",
                "budgeting",
                "wealth",
                "tax",
                "pension",
                "inflation",
                "passive income",
                "emergency fund",
            ),
        ),
        TopicDefinition(
            "business",
            "entrepreneurship & business",
            (
                "entrepreneurship",
                "startup",
                "small business",
                "marketing",
                "sales",
                "management",
                "leadership",
                "cash flow",
                "business plan",
                "negotiation",
                "growth",
                "strategy",
                "accounting",
                "bookkeeping",
                "founders",
                "self-employed",
                "invoicing",
                "business owners",
            ),
        ),
        TopicDefinition(
            "tech",
            "tech careers",
            (
                "programming",
                "web development",
                "javascript",
                "career",
                "software",
                "coding",
                "freelancing",
                "python",
                "databases",
                "developer",
                "remote work",
                "html",
                "css",
                "technology",
                "laptop",
                "salary",
                "digital skills",
            ),
        ),
        TopicDefinition(
            "creative",
            "creative arts & music",
            (
                "music",
                "guitar",
                "piano",
                "songwriting",
                "design",
                "photoshop",
                "illustration",
                "drawing",
                "creativity",
                "portfolio",
                "freelance artist",
                "practice",
                "instruments",
                "studio",
                "royalties",
                "performance",
                "hands",
                "chords",
                "logo",
                "typography",
            ),
        ),
        TopicDefinition(
            "health",
            "health & family",
            (
                "health",
                "family",
                "wellbeing",
                "nutrition",
                "fitness",
                "parenting",
                "critical illness",
                "medical costs",
                "family protection",
                "children",
                "elderly care",
                "mortgage",
                "home",
                "safety",
                "accident",
                "stress",
                "hospital",
                "injury",
                "first aid",
            ),
        ),
    )
}

#: Dirichlet concentration of interests per life stage (rows: STAGES, columns: THEMES).
_STAGE_INTEREST = (
    np.array(
        [
            [0.6, 0.8, 2.0, 2.0, 0.3],  # student
            [1.2, 1.5, 1.5, 0.8, 0.4],  # young professional
            [1.2, 0.6, 0.6, 0.8, 2.0],  # family
            [2.5, 0.6, 0.3, 0.6, 1.5],  # pre-retirement
        ]
    )
    * INTEREST_CONCENTRATION
)
_STAGE_PROB = np.array([0.2, 0.35, 0.3, 0.15])
_STAGE_AGE_BANDS = {
    "student": (("18-24", 0.85), ("25-34", 0.15)),
    "young_professional": (("25-34", 0.75), ("18-24", 0.1), ("35-44", 0.15)),
    "family": (("35-44", 0.55), ("25-34", 0.25), ("45-54", 0.2)),
    "pre_retirement": (("55-64", 0.7), ("45-54", 0.25), ("65+", 0.05)),
}
_REGIONS = ("north", "south", "east", "west", "central")

_FINANCE_TITLE = re.compile(
    r"invest|stock|trad|forex|option|crypto|bitcoin|retire|wealth|money|portfolio|dividend|fund|bond|"
    r"real estate|personal financ|budget|saving|credit|futures|market|chart|price action|etf|pension",
    re.IGNORECASE,
)
_LEVELS = {
    "All Levels": "all_levels",
    "Beginner Level": "beginner",
    "Intermediate Level": "intermediate",
    "Expert Level": "expert",
}

# Templated knowledge items for topics the real catalogue lacks: (topic, theme mix, category).
_HEALTH_TOPICS = (
    "Healthy Eating on a Budget",
    "Family Wellbeing",
    "Preventive Health Checkups",
    "Managing Stress at Work",
    "Parenting Through the Early Years",
    "Caring for Ageing Parents",
    "Living with a Chronic Condition",
    "Fitness After Forty",
    "Sleep and Recovery",
    "First Aid at Home",
    "Understanding Critical Illness",
    "Planning for a Growing Family",
    "Raising Money-Smart Children",
    "Mental Health Basics",
    "Nutrition for Busy Families",
    "Safe Cycling and Sports Injuries",
)
_PLANNING_TOPICS = (
    "Retirement Planning",
    "Pension Basics",
    "Saving for Retirement in Your Fifties",
    "Index Fund Investing for Beginners",
    "Understanding Annuities",
    "Building an Emergency Fund",
    "Protecting Your Family's Finances",
    "Mortgage Basics for First-Time Buyers",
    "Estate Planning and Wills",
    "Insurance Explained",
)
_EBOOK_FORMS = ("{}: A Practical Guide", "The {} Handbook", "{} Explained", "{} in 30 Days")
_AUDIO_FORMS = ("{} (Audio Course)", "{}: Lecture Series", "Talks on {}", "{}: The Podcast Course")
_DERIVED_EBOOK = ("{}: The Companion E-book", "{} - Workbook")
_DERIVED_AUDIO = ("{} (Audio Lectures)", "{} - Listen and Learn")


@dataclass(frozen=True)
class _ProductVariant:
    name: str
    sentence: str
    theme_delta: dict[str, float] = field(default_factory=dict)
    stage_delta: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _ProductKind:
    kind: str
    share: float
    themes: dict[str, float]
    stages: dict[str, float]
    risk: tuple[int, int]
    premium: tuple[float, float]
    generic: tuple[str, ...]
    vocabulary: tuple[str, ...]
    variants: tuple[_ProductVariant, ...]


_V = _ProductVariant
_PRODUCT_KINDS: tuple[_ProductKind, ...] = (
    _ProductKind(
        "wealth",
        0.25,
        {"finance": 1.0, "business": 0.4},
        {"young_professional": 0.6, "pre_retirement": 0.3, "family": 0.2, "student": 0.1},
        (2, 5),
        (100.0, 1000.0),
        (
            "Diversification keeps risk in check while compound interest grows your wealth.",
            "Suited to long-term investing; returns are not guaranteed and capital is at risk.",
        ),
        (
            "index fund",
            "portfolio",
            "diversification",
            "risk",
            "returns",
            "savings",
            "wealth management",
            "compound interest",
            "stock market",
            "asset allocation",
            "dividends",
        ),
        (
            _V(
                "Global Index Fund",
                "A low-cost index fund tracking global stock markets for long-term investing.",
            ),
            _V(
                "Balanced Growth Portfolio",
                "A diversified portfolio of stocks and bonds rebalanced to your risk profile.",
            ),
            _V(
                "Dividend Income Fund",
                "Invests in dividend-paying companies to build a passive income stream.",
            ),
            _V(
                "Sustainable Equity Fund",
                "An equity fund investing in companies with strong sustainability records.",
            ),
            _V(
                "Tech Innovators Fund",
                "Invests in technology and software companies driving digital innovation.",
                {"tech": 0.7},
            ),
            _V(
                "Entrepreneur Growth Account",
                "A savings and investment account for founders, freelancers and "
                "small business owners with irregular cash flow.",
                {"business": 0.9},
            ),
            _V(
                "Creative Royalties Account",
                "A flexible investment account for freelance artists, musicians and "
                "designers who want to invest irregular royalty income.",
                {"creative": 0.8},
            ),
            _V(
                "Active Trading Account",
                "A brokerage account for active trading of stocks, options and ETFs with "
                "charting and research tools.",
                {"finance": 0.4},
            ),
        ),
    ),
    _ProductKind(
        "pension",
        0.15,
        {"finance": 0.8, "health": 0.3},
        {"pre_retirement": 1.2, "young_professional": 0.3, "family": 0.3},
        (2, 3),
        (50.0, 500.0),
        (
            "Contributions benefit from tax relief and are invested until you retire.",
            "Plan ahead for retirement with regular savings and a clear income goal.",
        ),
        (
            "retirement",
            "pension",
            "annuity",
            "savings",
            "tax relief",
            "long-term",
            "retirement income",
            "compound interest",
            "inflation",
        ),
        (
            _V(
                "Retirement Savings Plan",
                "A personal pension plan that builds retirement savings over the long term.",
            ),
            _V(
                "Lifetime Annuity",
                "Turns your pension pot into a guaranteed retirement income for life.",
                stage_delta={"pre_retirement": 0.5},
            ),
            _V(
                "Target-Date Pension Fund",
                "A pension fund that shifts from stocks to bonds as your retirement date approaches.",
            ),
            _V(
                "Freelancer Pension",
                "A flexible pension for the self-employed and freelancers with variable income.",
                {"business": 0.5, "creative": 0.3, "tech": 0.3},
                {"young_professional": 0.3},
            ),
            _V(
                "Early Career Pension",
                "Start retirement saving early with small monthly contributions and compound interest.",
                {"tech": 0.2},
                {"young_professional": 0.6},
            ),
        ),
    ),
    _ProductKind(
        "health",
        0.17,
        {"health": 1.0},
        {"family": 0.7, "pre_retirement": 0.7, "young_professional": 0.2},
        (1, 2),
        (15.0, 120.0),
        (
            "Covers hospital treatment, specialists and medical costs.",
            "Protects your health and wellbeing when you need care most.",
        ),
        (
            "health",
            "medical costs",
            "hospital",
            "critical illness",
            "wellbeing",
            "family",
            "treatment",
            "health insurance",
            "nutrition",
            "fitness",
        ),
        (
            _V(
                "Critical Illness Cover",
                "Pays a lump sum on diagnosis of a critical illness such as cancer, heart attack or stroke.",
            ),
            _V(
                "Family Health Plan",
                "Private medical insurance covering hospital treatment for the whole family and children.",
                stage_delta={"family": 0.6},
            ),
            _V(
                "Wellbeing Health Insurance",
                "Health insurance with rewards for fitness, nutrition and preventive checkups.",
            ),
            _V(
                "Senior Care Health Plan",
                "Covers medical costs, elderly care and chronic conditions in later life.",
                stage_delta={"pre_retirement": 0.6},
            ),
            _V(
                "Mental Health Support Plan",
                "Covers therapy, counselling and stress management support.",
                {"tech": 0.3, "creative": 0.3},
                {"young_professional": 0.4},
            ),
        ),
    ),
    _ProductKind(
        "life",
        0.17,
        {"health": 0.8, "finance": 0.3},
        {"family": 1.2, "young_professional": 0.3},
        (1, 2),
        (10.0, 80.0),
        (
            "Gives your family financial protection if the worst happens.",
            "Choose the cover amount and term that match your mortgage and children.",
        ),
        (
            "family protection",
            "life cover",
            "children",
            "mortgage",
            "income protection",
            "critical illness",
            "family",
            "term",
            "beneficiaries",
        ),
        (
            _V(
                "Family Term Life",
                "Term life insurance that protects your family and children if you die during the term.",
            ),
            _V(
                "Mortgage Protection Life",
                "Life cover that pays off your mortgage so your family keeps the home.",
            ),
            _V(
                "Income Protection Plan",
                "Replaces part of your income if illness or injury stops you working.",
                {"tech": 0.3, "business": 0.3},
                {"young_professional": 0.5},
            ),
            _V(
                "Whole of Life Cover",
                "Guaranteed life cover for estate planning and leaving an inheritance.",
                {"finance": 0.4},
                {"pre_retirement": 0.8},
            ),
            _V(
                "Key Person Insurance",
                "Life and critical illness cover for founders and key staff of a small business.",
                {"business": 1.0},
            ),
        ),
    ),
    _ProductKind(
        "property",
        0.13,
        {"health": 0.4, "finance": 0.4, "business": 0.1},
        {"family": 0.8, "young_professional": 0.4},
        (1, 2),
        (8.0, 60.0),
        (
            "Protects your home and belongings against fire, flood and theft.",
            "Fast claims and cover for accidental damage at home.",
        ),
        ("home", "mortgage", "property", "contents", "buildings", "theft", "flood", "family", "safety"),
        (
            _V("Home & Contents Insurance", "Buildings and contents insurance for your family home."),
            _V(
                "Renters Contents Cover",
                "Contents insurance for tenants covering laptops, instruments and personal belongings.",
                {"tech": 0.4, "creative": 0.4},
                {"student": 0.8, "young_professional": 0.4},
            ),
            _V(
                "Landlord Property Insurance",
                "Insurance for buy-to-let property investors covering rental income and buildings.",
                {"finance": 0.7, "business": 0.4},
                {"pre_retirement": 0.5},
            ),
            _V(
                "Home Office & Equipment Cover",
                "Covers computers, cameras and studio equipment used for freelance work at home.",
                {"tech": 0.6, "creative": 0.6},
            ),
            _V(
                "First Home Buyer Pack",
                "Home insurance bundled with mortgage advice for first-time buyers.",
                stage_delta={"young_professional": 0.5},
            ),
        ),
    ),
    _ProductKind(
        "accident",
        0.13,
        {"health": 0.5, "creative": 0.3, "tech": 0.3},
        {"student": 0.9, "young_professional": 0.5},
        (1, 2),
        (5.0, 40.0),
        (
            "Pays out for accidental injury, hospital stays and recovery time.",
            "Simple accident cover with no medical questions.",
        ),
        ("accident", "injury", "sports", "travel", "safety", "hospital", "recovery", "fitness"),
        (
            _V("Personal Accident Cover", "Pays out for accidental injury and time off work."),
            _V(
                "Sports & Fitness Accident Cover",
                "Accident insurance for active lifestyles, sports injuries and fitness.",
            ),
            _V(
                "Student Accident & Travel",
                "Accident and travel cover for students studying or travelling abroad.",
                stage_delta={"student": 0.8},
            ),
            _V(
                "Musician Hand & Injury Cover",
                "Accident cover for musicians protecting against hand and arm injuries "
                "that stop you playing instruments.",
                {"creative": 1.0},
            ),
            _V(
                "Commuter Accident Protection",
                "Accident cover for daily commuting, cycling and travel to work.",
                {"tech": 0.3, "business": 0.3},
                {"young_professional": 0.5},
            ),
        ),
    ),
)
_BRANDS = (
    "Harbor",
    "Summit",
    "Evergreen",
    "Cornerstone",
    "Beacon",
    "Meridian",
    "Northstar",
    "Oakridge",
    "Bluewater",
    "Keystone",
    "Lighthouse",
    "Redwood",
)


@dataclass(frozen=True)
class DemoTruth:
    """The latent variables the demo world was drawn from (never visible to models).

    ``interests`` (n_users, n_themes) rows sum to 1; ``product_affinity`` (n_users, n_products) are the
    logits used to draw conversions; ``conversion_rate`` the Poisson rate of conversions per user.
    """

    themes: tuple[str, ...]
    topics: dict[str, TopicDefinition]
    stages: tuple[str, ...]
    interests: np.ndarray
    life_stage: np.ndarray
    activity: np.ndarray
    item_themes: np.ndarray
    product_themes: np.ndarray
    product_stage_affinity: np.ndarray
    product_quality: np.ndarray
    product_affinity: np.ndarray
    conversion_rate: np.ndarray


@dataclass(frozen=True)
class DemoWorld:
    """A generated dataset and the truth behind it."""

    dataset: KnowledgeDataset
    truth: DemoTruth
    seed: int


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


#: Subject-specific vocabulary, so a guitar course talks about chords and not about logos.
_SUBJECT_VOCAB: dict[str, tuple[str, ...]] = {
    "Musical Instruments": (
        "music",
        "guitar",
        "piano",
        "songwriting",
        "chords",
        "practice",
        "instruments",
        "studio",
        "royalties",
        "performance",
        "hands",
        "rhythm",
        "gigs",
    ),
    "Graphic Design": (
        "design",
        "photoshop",
        "illustration",
        "drawing",
        "creativity",
        "portfolio",
        "freelance artist",
        "clients",
        "logo",
        "typography",
        "studio",
        "colour",
    ),
}
_TEMPLATES = (
    "{title}. Explores {terms}.",
    "{title}. You will work through {terms}.",
    "{title}. Practical lessons on {terms}.",
    "{title}. From first steps to confident practice: {terms}.",
    "{title}. Topics include {terms}.",
)


def _vocab_for(theme: str, category: str) -> tuple[str, ...]:
    if theme == "creative" and category in _SUBJECT_VOCAB:
        return _SUBJECT_VOCAB[category]
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


def _items(
    rng: np.random.Generator, catalogue: pd.DataFrame, n_courses: int
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
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
        topic = _PLANNING_TOPICS[j % len(_PLANNING_TOPICS)]
        templated.append((topic, _theme_vec({"finance": 0.7, "health": 0.3}), "Personal Finance"))
    for j in range(n_health):
        topic = _HEALTH_TOPICS[j % len(_HEALTH_TOPICS)]
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
        forms = _EBOOK_FORMS if kind == "ebook" else _AUDIO_FORMS
        plain = j < min(n_planning, len(_PLANNING_TOPICS))  # first pass: the plain topic as title
        title = topic if plain else forms[int(rng.integers(len(forms)))].format(topic)
        price = float(rng.choice([0.0, 4.99, 9.99, 14.99, 19.99]))
        level = "beginner" if rng.random() < 0.6 else "all_levels"
        add(kind, title, theme, category, price, level, float(rng.uniform(4.0, 7.0)))
    for kind in ("ebook", "audio"):
        remaining = max(0, budget[kind] - counters[kind])
        sources = rng.choice(n_courses, size=min(remaining, n_courses), replace=False)
        derived_forms = _DERIVED_EBOOK if kind == "ebook" else _DERIVED_AUDIO
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


def _products(rng: np.random.Generator, n_products: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    counts = _allocate(n_products, np.array([k.share for k in _PRODUCT_KINDS]))
    rows: list[dict[str, object]] = []
    themes: list[np.ndarray] = []
    stages: list[np.ndarray] = []
    names: set[str] = set()
    for spec, count in zip(_PRODUCT_KINDS, counts, strict=True):
        for j in range(int(count)):
            variant = spec.variants[j % len(spec.variants)]
            name = ""
            for b in rng.permutation(len(_BRANDS)):
                name = f"{_BRANDS[int(b)]} {variant.name}"
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


def _pseudonym(seed: int, i: int) -> str:
    return "u_" + hashlib.sha256(f"knowledger-demo:{seed}:{i}".encode()).hexdigest()[:12]


def _gumbel_topk(
    rng: np.random.Generator, logits: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``counts[u]`` distinct columns per row with probabilities softmax(logits) (Gumbel top-k).

    Returns (rows, cols) of the chosen pairs, in sampling order per row.
    """
    noisy = logits + rng.gumbel(size=logits.shape)
    order = np.argsort(-noisy, axis=1, kind="stable")
    counts = np.minimum(counts, logits.shape[1])
    take = np.arange(logits.shape[1])[None, :] < counts[:, None]
    rows = np.repeat(np.arange(logits.shape[0]), counts)
    cols = order[take]
    return rows, cols


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def generate_demo_world(
    seed: int = 0, n_users: int = 2000, n_courses: int = 600, n_products: int = 60
) -> DemoWorld:
    """Draw a world (dataset + truth) deterministically from ``seed``. See the module docstring."""
    if n_users < 1 or n_courses < 1 or n_products < len(_PRODUCT_KINDS):
        raise ValueError(
            f"need n_users >= 1, n_courses >= 1 and n_products >= {len(_PRODUCT_KINDS)} "
            f"(one per product kind); got {n_users}, {n_courses}, {n_products}"
        )
    catalogue = udemy_catalogue()
    root = np.random.default_rng(seed)
    rng_items, rng_prod, rng_users, rng_course, rng_conv = root.spawn(5)

    items, item_themes, item_pop = _items(rng_items, catalogue, n_courses)
    products, product_themes, product_stages = _products(rng_prod, n_products)

    # ---- users
    stage_idx = rng_users.choice(len(STAGES), size=n_users, p=_STAGE_PROB)
    interests = np.vstack([rng_users.dirichlet(_STAGE_INTEREST[s]) for s in stage_idx])
    activity = rng_users.lognormal(mean=0.0, sigma=0.6, size=n_users)
    life_stage = np.array([STAGES[s] for s in stage_idx], dtype=object)
    age_bands = []
    for s in life_stage:
        bands, probs = zip(*_STAGE_AGE_BANDS[str(s)], strict=True)
        age_bands.append(bands[int(rng_users.choice(len(bands), p=np.asarray(probs) / sum(probs)))])
    disclosed = rng_users.random(n_users) > 0.15
    users = pd.DataFrame(
        {
            "user_id": [_pseudonym(seed, i) for i in range(n_users)],
            "age_band": age_bands,
            "region": [_REGIONS[int(r)] for r in rng_users.integers(len(_REGIONS), size=n_users)],
            "life_stage": [str(st) if d else None for st, d in zip(life_stage, disclosed, strict=True)],
        }
    )

    # ---- course behaviour
    theme_unit = item_themes / np.linalg.norm(item_themes, axis=1, keepdims=True)
    match = interests @ theme_unit.T  # (n_users, n_items) in [0, 1]
    pop = (item_pop - item_pop.mean()) / (item_pop.std() + 1e-9)
    view_logits = 6.0 * match + 0.5 * pop[None, :]
    n_views = 1 + rng_course.poisson(6.0 * activity)
    v_user, v_item = _gumbel_topk(rng_course, view_logits, n_views)
    m = match[v_user, v_item]
    span = (WORLD_END - WORLD_START).total_seconds()
    join = rng_course.uniform(0.0, 0.7 * span, size=n_users)
    # views spread over the user's remaining time; gaps keep the sampling order
    rank_in_user = np.arange(len(v_user)) - np.repeat(np.cumsum(n_views) - n_views, n_views)
    per_view = (span - join) / (n_views + 1) * 0.8
    t_view = join[v_user] + (rank_in_user + rng_course.uniform(0.2, 1.0, size=len(v_user))) * per_view[v_user]
    prices = items["price"].to_numpy(dtype=np.float64)
    p_buy = _sigmoid(-1.2 + 4.0 * m - 0.004 * prices[v_item])
    bought = rng_course.random(len(v_user)) < p_buy
    p_done = _sigmoid(-0.8 + 3.5 * m[bought] + 0.4 * np.log(activity[v_user[bought]]))
    done = rng_course.random(int(bought.sum())) < p_done
    rated = rng_course.random(int(done.sum())) < 0.6

    b_user, b_item = v_user[bought], v_item[bought]
    t_buy = t_view[bought] + rng_course.exponential(2 * 86400.0, size=len(b_user))
    c_user, c_item = b_user[done], b_item[done]
    t_done = t_buy[done] + rng_course.exponential(20 * 86400.0, size=len(c_user))
    r_user, r_item = c_user[rated], c_item[rated]
    t_rate = t_done[rated] + rng_course.exponential(86400.0, size=len(r_user))
    rating = np.clip(
        np.round(1.8 + 3.8 * match[r_user, r_item] + rng_course.normal(0, 0.7, len(r_user))), 1, 5
    )

    ev_user = np.concatenate([v_user, b_user, c_user, r_user])
    ev_item = np.concatenate([v_item, b_item, c_item, r_item])
    ev_kind = np.concatenate(
        [np.zeros(len(v_user)), np.ones(len(b_user)), np.full(len(c_user), 2), np.full(len(r_user), 3)]
    ).astype(int)
    ev_time = np.concatenate([t_view, t_buy, t_done, t_rate])
    ev_value = np.concatenate(
        [np.full(len(v_user), np.nan), prices[b_item], np.full(len(c_user), np.nan), rating]
    )
    keep = ev_time < span
    order = np.lexsort((ev_kind[keep], ev_time[keep]))
    ev_user, ev_item, ev_kind = ev_user[keep][order], ev_item[keep][order], ev_kind[keep][order]
    ev_time, ev_value = ev_time[keep][order], ev_value[keep][order]
    interactions = pd.DataFrame(
        {
            "user_id": users["user_id"].to_numpy()[ev_user],
            "item_id": items["item_id"].to_numpy()[ev_item],
            "event": np.array(["view", "purchase", "completion", "rating"], dtype=object)[ev_kind],
            "value": ev_value,
            "timestamp": WORLD_START + pd.to_timedelta(np.floor(ev_time), unit="s"),
        }
    )

    # ---- product conversions
    quality = rng_conv.normal(0.0, 0.3, size=len(products))
    affinity = (
        THEME_WEIGHT * interests @ product_themes.T
        + STAGE_WEIGHT * product_stages[:, stage_idx].T
        + quality[None, :]
    )
    rate = 0.25 + 1.0 * (1.0 - np.exp(-activity))
    n_conv = rng_conv.poisson(rate)
    cv_user, cv_prod = _gumbel_topk(rng_conv, affinity, n_conv)
    first_view = np.full(n_users, span)
    np.minimum.at(first_view, v_user, t_view)
    t_conv = first_view[cv_user] + (span - first_view[cv_user]) * rng_conv.beta(2.0, 1.5, size=len(cv_user))
    premiums = products["min_premium"].to_numpy(dtype=np.float64)[cv_prod]
    value = np.round(premiums * rng_conv.lognormal(0.2, 0.4, size=len(cv_user)), 2)
    order = np.lexsort((cv_prod, t_conv))
    conversions = pd.DataFrame(
        {
            "user_id": users["user_id"].to_numpy()[cv_user[order]],
            "product_id": products["product_id"].to_numpy()[cv_prod[order]],
            "timestamp": WORLD_START + pd.to_timedelta(np.floor(t_conv[order]), unit="s"),
            "value": value[order],
        }
    )

    dataset = validate_dataset(
        KnowledgeDataset(
            users=users, items=items, interactions=interactions, products=products, conversions=conversions
        )
    )
    truth = DemoTruth(
        themes=THEMES,
        topics=dict(TOPICS),
        stages=STAGES,
        interests=interests,
        life_stage=life_stage.astype(str),
        activity=activity,
        item_themes=item_themes,
        product_themes=product_themes,
        product_stage_affinity=product_stages,
        product_quality=quality,
        product_affinity=affinity,
        conversion_rate=rate,
    )
    return DemoWorld(dataset=dataset, truth=truth, seed=seed)


# ----------------------------------------------------------------------------------------------------
# train/test split in the product domain


@dataclass(frozen=True)
class DemoSplit:
    """Product-domain train/test split of a demo world.

    ``train.interactions``: users x products conversions before ``cutoff`` (binary);
    ``train.item_features``: product LSA topics; ``train.user_features``: course-domain profiles built
    from the training period only (topic-interest vector first, see :mod:`recommender.profiles`).
    ``test``: conversions at/after ``cutoff`` on products the user had not converted on before.
    ``cold_start[u]``: the user has no product history in train (the main case: knowledge is all we have).
    ``profile_builder`` is fitted on the training period and turns new course histories into profiles.
    """

    train: InteractionData
    test: sp.csr_matrix
    cold_start: np.ndarray
    cutoff: pd.Timestamp
    user_ids: list[str]
    product_ids: list[str]
    knowledge: KnowledgeSpace
    profiles: UserProfiles
    profile_builder: ProfileBuilder
    train_dataset: KnowledgeDataset

    @property
    def eval_users(self) -> np.ndarray:
        """Users with at least one held-out conversion."""
        return np.flatnonzero(np.diff(self.test.indptr) > 0)

    @property
    def cold_eval_users(self) -> np.ndarray:
        users = self.eval_users
        return users[self.cold_start[users]]

    @property
    def warm_eval_users(self) -> np.ndarray:
        users = self.eval_users
        return users[~self.cold_start[users]]


def _binary_matrix(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    mat = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=shape)
    mat.sum_duplicates()
    mat.data[:] = 1.0
    return mat


def demo_interaction_data(
    world: DemoWorld, test_fraction: float = 0.3, seed: int = 0, n_topics: int = 32
) -> DemoSplit:
    """Split the world's conversions in time: the last ``test_fraction`` of conversions are held out.

    User features are the course-domain profiles from course events before the cutoff, so nothing from
    the test period leaks into features. Most held-out users convert for the first time after the cutoff,
    so most evaluation users are cold-start in the product domain, the case KnowLedger exists for.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    ds = world.dataset
    conv = ds.conversions
    if conv.empty:
        raise ValueError("the world has no conversions to split")
    times = conv["timestamp"].sort_values().reset_index(drop=True)
    cutoff = pd.Timestamp(times.iloc[int(np.floor((1.0 - test_fraction) * (len(times) - 1)))])
    if (conv["timestamp"] < cutoff).sum() == 0:
        cutoff = pd.Timestamp(times.iloc[-1])

    user_ids = ds.users["user_id"].tolist()
    product_ids = ds.products["product_id"].tolist()
    u_index = pd.Index(user_ids)
    p_index = pd.Index(product_ids)
    is_train = (conv["timestamp"] < cutoff).to_numpy()
    rows = u_index.get_indexer(conv["user_id"])
    cols = p_index.get_indexer(conv["product_id"])
    shape = (len(user_ids), len(product_ids))
    train_m = _binary_matrix(rows[is_train], cols[is_train], shape)
    test_m = _binary_matrix(rows[~is_train], cols[~is_train], shape)
    test_m = sp.csr_matrix(test_m - test_m.multiply(train_m))
    test_m.eliminate_zeros()

    train_ds = KnowledgeDataset(
        users=ds.users,
        items=ds.items,
        interactions=ds.interactions[ds.interactions["timestamp"] < cutoff].reset_index(drop=True),
        products=ds.products,
        conversions=conv[is_train].reset_index(drop=True),
    )
    knowledge = KnowledgeSpace.fit(ds.item_texts(), ds.product_texts(), n_topics=n_topics, seed=seed)
    builder = ProfileBuilder(knowledge, seed=seed)
    profiles = builder.fit(train_ds, as_of=cutoff)
    train = InteractionData(
        interactions=train_m,
        item_features=knowledge.product_topics.astype(np.float32),
        user_features=profiles.features.astype(np.float32),
        meta={
            "user_topic_dim": knowledge.n_topics,
            "user_feature_names": list(profiles.feature_names),
            "user_ids": user_ids,
            "item_ids": product_ids,
            "domain": "products",
        },
    )
    cold = np.diff(train_m.indptr) == 0
    return DemoSplit(
        train=train,
        test=test_m,
        cold_start=cold,
        cutoff=cutoff,
        user_ids=user_ids,
        product_ids=product_ids,
        knowledge=knowledge,
        profiles=profiles,
        profile_builder=builder,
        train_dataset=train_ds,
    )
