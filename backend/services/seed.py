"""Seed the demo world into an empty service: two partners (a bank and an insurer) with their notices
published on chain, the course catalogue and the products, the learners with their pseudonyms and
profiles, and an active revenue-split agreement per partner (platform 60 %, course creator 40 %).

Local chains only: the agreements are accepted with the devnet's well-known keys.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from backend.bootstrap import StartupError
from backend.chain import AgreementTerms, ChainTarget, ConsentRegistryClient, Party, currency_code
from backend.core.security import key_hash, new_secret
from backend.models import KnowledgeItem, LearningEvent, Partner, Product, Profile, User, utcnow
from backend.privacy import new_user_key, pseudonym
from backend.services.accounts import Roles
from backend.services.agreements import AgreementService
from backend.services.directory import Directory
from backend.services.gateway import ChainGateway
from backend.services.profiles import ProfileRefresher
from recommender.data.demo import DemoSplit, demo_interaction_data, generate_demo_world

log = logging.getLogger("knowledger.seed")
DAY = 86_400

PARTNER_KINDS = {
    "bank": ("Harbour Bank", "bank", ("wealth", "pension")),
    "insurer": ("Evergreen Insurance", "insurer", ("health", "life", "property", "accident")),
}
NOTICES = {
    "bank": "Harbour Bank uses your learning profile only to suggest savings, investment and pension "
    "products. It never sees which courses you took, and stops the moment you revoke.",
    "insurer": "Evergreen Insurance uses your learning profile only to suggest health, life, property "
    "and accident cover. It never sees which courses you took, and stops the moment you revoke.",
}


@dataclass
class SeedResult:
    partner_keys: dict[str, str]
    users: int
    agreements: dict[str, int]


def demo_split(seed: int = 0) -> DemoSplit:
    return demo_interaction_data(generate_demo_world(seed=seed), seed=seed)


def seed_if_empty(
    engine: Engine,
    gateway: ChainGateway,
    registry: ConsentRegistryClient,
    roles: Roles,
    directory: Directory,
    agreements: AgreementService,
    state_dir: Path,
    refresher: ProfileRefresher,
    split: DemoSplit | None = None,
    n_users: int | None = None,
) -> SeedResult | None:
    """:func:`seed` into a database without partners (a database already in use is left alone)."""
    with Session(engine) as s:
        if s.exec(select(Partner.id)).first() is not None:
            return None
    return seed(
        engine, gateway, registry, roles, directory, agreements, state_dir, refresher, split, n_users=n_users
    )


def seed(
    engine: Engine,
    gateway: ChainGateway,
    registry: ConsentRegistryClient,
    roles: Roles,
    directory: Directory,
    agreements: AgreementService,
    state_dir: Path,
    refresher: ProfileRefresher,
    split: DemoSplit | None = None,
    *,
    n_users: int | None = None,
) -> SeedResult:
    """Partners with notices on chain, the catalogue, learners with pseudonyms, their attributes, their
    course events and profiles, and an active agreement per partner accepted by every party (local chains
    only: the parties' keys are the devnet's). The partner keys are written to
    ``<state_dir>/partner-keys.json``.

    The learners' events are stored as the platform would have sent them, moved in time so that the demo
    world's history ends now; their profiles are then built from those events by the served model's
    profile builder, as ingested events are (or, with no model yet, taken from the demo world)."""
    named = roles.named
    if gateway.client.target is ChainTarget.RPC or named is None:
        raise StartupError("KNOWLEDGER_SEED_DEMO: the demo world is seeded on local chains only")
    split = split or demo_split()
    wallets = {"bank": named.partner, "insurer": roles.extra[0] if roles.extra else named.outsider}
    keys: dict[str, str] = {}
    agreement_ids: dict[str, int] = {}
    ds = split.train_dataset
    with Session(engine, expire_on_commit=False) as s:
        for pid, (name, kind, _) in PARTNER_KINDS.items():
            api_key = new_secret("pk")
            keys[pid] = api_key
            address = wallets[pid]
            gateway.run(
                "publishing the partner notice",
                lambda a=address: registry.set_partner_notice_version(a, 1, sender=roles.admin),  # type: ignore[misc]
            )
            s.add(
                Partner(
                    id=pid,
                    name=name,
                    kind=kind,
                    address=address,
                    notice_text=NOTICES[pid],
                    notice_version=1,
                    api_key_hash=key_hash(api_key),
                )
            )
        s.commit()
        owner = {k: pid for pid, (_, _, kinds) in PARTNER_KINDS.items() for k in kinds}
        for row in ds.products.itertuples():
            s.add(
                Product(
                    id=row.product_id,
                    partner_id=owner[row.kind],
                    name=row.name,
                    kind=row.kind,
                    description=row.description,
                    risk_level=int(row.risk_level),
                )
            )
        course_row = {cid: i for i, cid in enumerate(ds.items["item_id"])}
        for row in ds.items.itertuples():
            s.add(
                KnowledgeItem(
                    id=row.item_id,
                    position=course_row[row.item_id],
                    kind=row.kind,
                    title=row.title,
                    category=row.category,
                    level=row.level,
                )
            )
        s.commit()
        history = ds.interactions.groupby("user_id")["item_id"].unique()
        users = split.user_ids if n_users is None else split.user_ids[:n_users]
        attributes = ds.users.set_index("user_id")
        profiles = []
        internal: dict[str, str] = {}
        for u, user_id in enumerate(users):
            key = new_user_key()
            subject = pseudonym(key, user_id)
            uid = "u_" + secrets.token_hex(8)
            internal[user_id] = uid
            attrs = attributes.loc[user_id] if user_id in attributes.index else None
            s.add(
                User(
                    id=uid,
                    platform_user_id=user_id,
                    pseudonym="0x" + subject.hex(),
                    user_key=key,
                    token_hash=None,
                    age_band=_attribute(attrs, "age_band"),
                    region=_attribute(attrs, "region"),
                    life_stage=_attribute(attrs, "life_stage"),
                )
            )
            profile = split.profiles.profile(user_id).to_dict()
            profile["user_id"] = "0x" + subject.hex()  # the stored profile carries the pseudonym only
            courses = [course_row[c] for c in history.get(user_id, []) if c in course_row]
            profiles.append(
                Profile(
                    user_id=uid,
                    data=profile,
                    course_indices=courses,
                    product_indices=split.train.interactions[u].indices.tolist(),
                )
            )
        s.flush()
        s.add_all(profiles)
        s.commit()
        _store_events(s, ds.interactions, internal, split.cutoff)
        s.commit()
        refresher.refresh(internal.values())
        now = gateway.run("reading the chain's clock", gateway.client.now)
        for pid in PARTNER_KINDS:
            partner = s.get(Partner, pid)
            assert partner is not None
            terms = AgreementTerms(
                parties=(
                    Party(named.platform, 600_000),
                    Party(named.creator, 400_000),
                    Party(partner.address, 0),
                ),
                partner=partner.address,
                reporter=roles.reporter,
                commission_rate=80_000 if pid == "bank" else 120_000,
                attribution_window=30 * DAY,
                validation_window=14 * DAY,
                valid_from=now - DAY,
                valid_until=now + 365 * DAY,
                currency=currency_code("CNY"),
            )
            agreement = agreements.propose_terms(s, partner, terms, sender=named.platform)
            for party in (named.creator, partner.address):
                agreements.accept_as(agreement.id, terms, party)
            agreement.status = "active"
            s.add(agreement)
            s.commit()
            agreement_ids[pid] = agreement.id
    directory.changed()
    keys_file = state_dir / "partner-keys.json"
    keys_file.write_text(json.dumps(keys, indent=2), encoding="utf-8")
    keys_file.chmod(0o600)
    log.info("seeded %d learners, %d partners", len(users), len(keys))
    return SeedResult(keys, len(users), agreement_ids)


def _attribute(attrs: Any, name: str) -> str | None:
    value = None if attrs is None else attrs.get(name)
    return None if value is None or pd.isna(value) else str(value)


def _store_events(s: Session, events: Any, internal: dict[str, str], cutoff: Any) -> None:
    """The demo learners' course events, moved so that the world's history ends now."""
    frame = events[events["user_id"].isin(internal)]
    shift = pd.Timestamp(utcnow()) - pd.Timestamp(cutoff)
    when = pd.to_datetime(frame["timestamp"], utc=True) + shift
    values = frame["value"].astype(object).where(frame["value"].notna(), None)
    rows = [
        {
            "event_id": f"demo-{i}",
            "user_id": internal[user],
            "item_id": item,
            "event": kind,
            "value": value,
            "occurred_at": at.to_pydatetime(),
            "ingested_at": utcnow(),
        }
        for i, user, item, kind, value, at in zip(
            frame.index, frame["user_id"], frame["item_id"], frame["event"], values, when, strict=True
        )
    ]
    if rows:
        s.connection().execute(insert(LearningEvent), rows)


def train_with_progress(
    console: Any, split: DemoSplit, path: Any, epochs: int, seed: int, *, label: str, transient: bool = False
) -> Any:
    """:func:`train_model` behind a rich progress bar (one tick per tuned model family) on ``console``."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn(label),
        BarColumn(),
        TextColumn("step {task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=transient,
    ) as progress:
        task = progress.add_task("train", total=None)
        return train_model(
            split,
            path,
            epochs=epochs,
            seed=seed,
            progress=lambda done, total: progress.update(task, completed=done, total=total),
        )


def train_model(
    split: DemoSplit,
    path: Any,
    epochs: int = 20,
    seed: int = 0,
    progress: Any = None,
    version: str | None = None,
) -> Any:
    """Train the served model on a product-domain split (the demo world's or the platform's data: every
    candidate tuned on validation learners carved out of the training period, blended per route;
    ``epochs`` for its torch network) and save the artifact the service serves. Returns the artifact's
    path and the held-out metrics of the served model (``"hybrid"``), scored through the ranker, and of
    popularity, for the cold-start learners (all held-out learners when none is cold)."""
    from recommender.artifacts import record_metrics
    from recommender.evaluation.demo import served_setup
    from recommender.evaluator import evaluate_queries
    from recommender.models.popularity import Popularity
    from recommender.profile_store import save_profile_builder
    from recommender.serving import ProductRanker
    from recommender.training import train_served

    splitter, candidates = served_setup(split.train, epochs=epochs, seed=seed)
    total = len(candidates) + 1
    done = 0

    def step(_message: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(min(done, total - 1), total)

    cold = split.cold_eval_users if len(split.cold_eval_users) else split.eval_users
    history, target = split.train.interactions[cold], split.test[cold]
    features = None if split.train.user_features is None else split.train.user_features[cold]
    artifact, _fit = train_served(
        split.train,
        path,
        splitter,
        candidates,
        knowledge=split.knowledge,
        item_ids=split.product_ids,
        version=version,
        overwrite=True,
        log=step,
    )
    # the builder that turns new course events into profiles, beside the model it was trained with
    save_profile_builder(split.profile_builder, artifact)
    ranker = ProductRanker.load(artifact)
    popularity = Popularity().fit(split.train)
    metrics = {
        "hybrid": evaluate_queries(ranker.score_batch, history, features, target),
        "popularity": evaluate_queries(popularity.score_history, history, features, target),
    }
    record_metrics(artifact, metrics["hybrid"])
    if progress is not None:
        progress(total, total)
    return artifact, metrics


#: Training on any product-domain split (the platform's data included) is the same function.
train_on_split = train_model
