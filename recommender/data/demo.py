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
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recommender.data.dataset import KnowledgeDataset
from recommender.data.demo_catalogue import UDEMY_RELATIVE, draw_items, draw_products, udemy_catalogue
from recommender.data.demo_tables import (
    POPULATION,
    PRODUCT_KINDS,
    STAGES,
    THEMES,
    TOPICS,
    TopicDefinition,
)
from recommender.data.loader import validate_dataset
from recommender.data.split import ProductSplit, time_split

__all__ = [
    "INTEREST_CONCENTRATION",
    "STAGES",
    "STAGE_WEIGHT",
    "THEMES",
    "THEME_WEIGHT",
    "TOPICS",
    "UDEMY_RELATIVE",
    "WORLD_END",
    "WORLD_START",
    "DemoSplit",
    "DemoTruth",
    "DemoWorld",
    "TopicDefinition",
    "demo_interaction_data",
    "generate_demo_world",
    "udemy_catalogue",
]

#: Weights of the true product affinity: interests x product themes, life stage x product stage profile.
THEME_WEIGHT = 6.0
STAGE_WEIGHT = 2.0
#: Scale of the stage-dependent Dirichlet concentrations: below 1 makes interests peakier.
INTEREST_CONCENTRATION = 0.45

WORLD_START = pd.Timestamp("2022-01-01T00:00:00Z")
WORLD_END = pd.Timestamp("2024-01-01T00:00:00Z")

#: Dirichlet concentration of interests per life stage (rows: STAGES, columns: THEMES).
_STAGE_INTEREST = POPULATION.stage_interest * INTEREST_CONCENTRATION


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
    if n_users < 1 or n_courses < 1 or n_products < len(PRODUCT_KINDS):
        raise ValueError(
            f"need n_users >= 1, n_courses >= 1 and n_products >= {len(PRODUCT_KINDS)} "
            f"(one per product kind); got {n_users}, {n_courses}, {n_products}"
        )
    catalogue = udemy_catalogue()
    root = np.random.default_rng(seed)
    rng_items, rng_prod, rng_users, rng_course, rng_conv = root.spawn(5)

    items, item_themes, item_pop = draw_items(rng_items, catalogue, n_courses)
    products, product_themes, product_stages = draw_products(rng_prod, n_products)

    # ---- users
    stage_idx = rng_users.choice(len(STAGES), size=n_users, p=POPULATION.stage_probability)
    interests = np.vstack([rng_users.dirichlet(_STAGE_INTEREST[s]) for s in stage_idx])
    activity = rng_users.lognormal(mean=0.0, sigma=0.6, size=n_users)
    life_stage = np.array([STAGES[s] for s in stage_idx], dtype=object)
    age_bands = []
    for s in life_stage:
        bands, probs = zip(*POPULATION.stage_age_bands[str(s)], strict=True)
        age_bands.append(bands[int(rng_users.choice(len(bands), p=np.asarray(probs) / sum(probs)))])
    disclosed = rng_users.random(n_users) > 0.15
    regions = POPULATION.regions
    users = pd.DataFrame(
        {
            "user_id": [_pseudonym(seed, i) for i in range(n_users)],
            "age_band": age_bands,
            "region": [regions[int(r)] for r in rng_users.integers(len(regions), size=n_users)],
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

#: The demo world's split is the general one (:mod:`recommender.data.split`).
DemoSplit = ProductSplit


def demo_interaction_data(
    world: DemoWorld, test_fraction: float = 0.3, seed: int = 0, n_topics: int = 32
) -> DemoSplit:
    """:func:`recommender.data.split.time_split` of the world's tables."""
    return time_split(world.dataset, test_fraction=test_fraction, seed=seed, n_topics=n_topics)
