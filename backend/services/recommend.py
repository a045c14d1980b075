"""Consent-gated recommendations: the chain first, then the profile, then the model.

Order matters and is the point of the product: the user row is looked up by pseudonym (no profile is read;
its id is then kept, and the profile's read checks again that the learner is not erased),
consent for profiling *and* product recommendation is checked on chain in this request, and only then is
the profile loaded and scored. A refusal or an unreachable chain stops the request before the profile.

While an A/B experiment runs (``KNOWLEDGER_EXPERIMENT_ARMS``), the learner's arm is a pure function of the
experiment name and the pseudonym (:func:`recommender.abtest.assign`, one SHA-256 of the pseudonym's 64 hex
digits, so it is sticky without storage): ``hybrid`` is the model, ``popularity`` the non-personalised
baseline (the model's item bias). The row records ``<experiment>:<arm>``; the response the arm.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import String, Text, any_, bindparam, cast, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Engine
from sqlmodel import col

from backend.chain import PURPOSE_NAMES, BlockHead
from backend.core.async_db import AsyncStatements, BatchedLookup
from backend.core.db import DriverReads
from backend.errors import ConsentRequired, NotFound, ServiceNotReady
from backend.models import Profile, User, utcnow
from backend.services.directory import Directory, PartnerAuth
from backend.services.gateway import ChainGateway, ConsentCheck
from backend.services.model import ModelSlot, ServedModel
from backend.services.profiles import ProfileRefresher, StoredProfile
from backend.services.serving_log import ServingLog
from recommender.abtest import assign
from recommender.profiles import Profile as LearnerProfile

# Built once: the hot path only binds parameters (no statement construction per request).
_USER_BY_PSEUDONYM = select(col(User.id)).where(
    col(User.pseudonym) == bindparam("pseudonym"), col(User.erased_at).is_(None)
)
#: The profile as stored text (decoded only when the ranking is not cached for exactly this text), of a
#: learner not erased (the learner's row is read in the same statement: a cached user id never outlives
#: an erasure).
_PROFILE_OF = (
    select(
        cast(col(Profile.data), Text),
        cast(col(Profile.course_indices), Text),
        cast(col(Profile.product_indices), Text),
        col(Profile.model_version),
    )
    .join(User, col(User.id) == col(Profile.user_id))
    .where(col(Profile.user_id) == bindparam("user_id"), col(User.erased_at).is_(None))
)

#: The same for many learners at once (PostgreSQL): the concurrent requests' profile reads of one turn of
#: the event loop are one statement (:class:`backend.core.async_db.BatchedLookup`), keyed by the learner.
#: Both tables are filtered by the keys, so the plan probes both primary keys whatever the statistics say
#: (with only the profile filtered, a planner that thinks the user table tiny scans it whole).
_USER_IDS = bindparam("user_ids", type_=ARRAY(String))
_PROFILES_OF = (
    select(col(Profile.user_id), *_PROFILE_OF.selected_columns)
    .join(User, col(User.id) == col(Profile.user_id))
    .where(
        col(Profile.user_id) == any_(_USER_IDS),
        col(User.id) == any_(_USER_IDS),
        col(User.erased_at).is_(None),
    )
)

#: Rankings kept (the oldest is forgotten first; a forgotten one is computed again when next needed).
MAX_RANKINGS = 50_000
#: Learners' ids kept by pseudonym (an id never changes; a forgotten one is read again).
MAX_USER_IDS = 200_000


def _profile_features(data: dict[str, Any]) -> np.ndarray:
    return LearnerProfile.from_dict(data).features()


@dataclass(frozen=True)
class _Ranking:
    """One learner's ranked products for one partner, model and catalogue, ready for the answer."""

    product_ids: list[str]
    products: list[dict[str, Any]]


class RankingCache:
    """Rankings keyed by everything they depend on, so an entry can never be stale, only unused:

    - the learner's stored profile, by a BLAKE2b digest of its stored text (profile, course rows, held
      product rows, the model version it was built for): an uploaded or refreshed profile is a new key;
    - the served model's version: a promotion is a new key;
    - the directory's generation (partners, products, names): a catalogue change is a new key;
    - the partner, ``k`` and the experiment arm.

    Consent is never cached here: every request checks it on chain before the profile is read."""

    def __init__(self, max_entries: int = MAX_RANKINGS) -> None:
        self._max = max_entries
        self._entries: dict[tuple[Any, ...], _Ranking] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[Any, ...]) -> _Ranking | None:
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def put(self, key: tuple[Any, ...], ranking: _Ranking) -> None:
        with self._lock:
            if len(self._entries) >= self._max:
                self._entries.pop(next(iter(self._entries)))
            self._entries[key] = ranking

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class RecommendationService:
    """The consent-gated hot path: chain, then profile, then model, then the serving log."""

    def __init__(
        self,
        engine: Engine,
        gateway: ChainGateway,
        directory: Directory,
        model: ModelSlot,
        profiles: ProfileRefresher,
        experiment_name: str,
        experiment: tuple[tuple[str, ...], tuple[float, ...]],
        serving_log: ServingLog | None = None,
    ) -> None:
        self._reads = DriverReads(engine, user=_USER_BY_PSEUDONYM, profile=_PROFILE_OF)
        # on PostgreSQL against a chain on the network, the request awaits its reads on the event loop
        self._async_reads = (
            None
            if gateway.in_process
            else AsyncStatements.for_engine(engine, user=_USER_BY_PSEUDONYM, profiles=_PROFILES_OF)
        )
        self._profiles_read = (
            None if self._async_reads is None else BatchedLookup(self._async_reads, "profiles", "user_ids")
        )
        #: The chain this service checks consent on (the route asks it whether the chain is in process).
        self.gateway = gateway
        self._directory = directory
        self._model = model
        self._profiles = profiles
        self._experiment_name = experiment_name
        self._arms, self._weights = experiment
        self.serving_log = serving_log or ServingLog(
            engine, inline=gateway.in_process, awaits=self._async_reads is not None
        )
        self.rankings = RankingCache()
        #: Learner id by pseudonym: an id never changes, and the profile's read checks the learner is not
        #: erased, so a cached id saves a read per request and can never serve an erased learner.
        self._user_ids: dict[str, str] = {}
        self._ids_lock = threading.Lock()

    def recommend(self, partner: PartnerAuth, subject_hex: str, k: int) -> dict[str, Any]:
        """:meth:`answer`, then the row committed (from a worker thread or a script; the route awaits the
        commit on the event loop instead)."""
        body, row = self.answer(partner, subject_hex, k)
        self.serving_log.write_sync(row)
        return body

    def answer(self, partner: PartnerAuth, subject_hex: str, k: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """Products for one learner, only if the chain says, now, that the learner allows profiling and
        product recommendation for this partner (403 otherwise, 503 if the chain cannot be asked).

        Returns the body of :class:`backend.schemas.recommendations.RecommendationPublic` as plain JSON
        values (the hot path skips building and re-validating a model per request; the route declares the
        schema and a test checks every answer against it) and the serving-log row, which the caller must
        commit (:class:`ServingLog`) before the body leaves."""
        served = self._served()
        subject, pseudonym = _subject(subject_hex)
        # no database connection is held while the chain is asked (it would sit idle for a round trip)
        cached = user_id = self._user_ids.get(pseudonym)
        if user_id is None:
            with self._reads.cursor() as cur:
                user_id = self._known(pseudonym, self._reads.first(cur, "user", pseudonym=pseudonym))

        # 1. consent, on chain, now (raises 403 ConsentRequired or 503 ChainUnavailable)
        try:
            check = self.gateway.require_consent(subject, partner.address)
        except ConsentRequired:
            if cached:  # an erased learner (erasure revokes) is unknown, as to a process that never saw it
                with self._reads.cursor() as cur:
                    self._known(pseudonym, self._reads.first(cur, "user", pseudonym=pseudonym))
            raise

        # 2. only now the profile
        with self._reads.cursor() as cur:
            row = self._reads.first(cur, "profile", user_id=user_id)
            if row is None:  # erased since its id was cached, or no profile yet: which one, for the answer
                self._known(pseudonym, self._reads.first(cur, "user", pseudonym=pseudonym))
        return self._answer(served, partner, subject, pseudonym, user_id, row, check, k)

    def _known(self, pseudonym: str, found: tuple[Any, ...] | None) -> str:
        """The learner's id from its row (404 when there is none, and the cached id forgotten)."""
        if found is None:
            self._user_ids.pop(pseudonym, None)
            raise NotFound(f"unknown user {pseudonym}", subject=pseudonym)
        user_id = str(found[0])
        with self._ids_lock:
            if len(self._user_ids) >= MAX_USER_IDS:
                self._user_ids.pop(next(iter(self._user_ids)), None)
            self._user_ids[pseudonym] = user_id
        return user_id

    @property
    def awaits(self) -> bool:
        """Whether :meth:`answer_async` serves requests (PostgreSQL and a chain on the network)."""
        return self._async_reads is not None

    async def answer_async(
        self, partner: PartnerAuth, subject_hex: str, k: int, head: Awaitable[BlockHead] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """:meth:`answer` on the event loop: the same steps in the same order, each wait awaited (the two
        reads on this loop's connections, the chain's head shared with every concurrent request; ``head``,
        from ``gateway.head_soon()``, is one the route started reading when the request arrived)."""
        reads, profiles = self._async_reads, self._profiles_read
        if reads is None or profiles is None:
            raise RuntimeError("answer_async needs PostgreSQL and a chain on the network (see awaits)")
        served = self._served()
        subject, pseudonym = _subject(subject_hex)
        cached = user_id = self._user_ids.get(pseudonym)
        if user_id is None:
            user_id = self._known(pseudonym, await reads.first("user", pseudonym=pseudonym))
        # 1. consent, on chain, now (raises 403 ConsentRequired or 503 ChainUnavailable)
        try:
            check = await self.gateway.require_consent_async(subject, partner.address, head=head)
        except ConsentRequired:
            if cached:
                self._known(pseudonym, await reads.first("user", pseudonym=pseudonym))
            raise
        # 2. only now the profile (read with the profiles of the other requests that ask in this turn)
        row = await profiles.get(user_id)
        if row is None:
            self._known(pseudonym, await reads.first("user", pseudonym=pseudonym))
        return self._answer(served, partner, subject, pseudonym, user_id, row, check, k)

    async def aclose(self) -> None:
        """Close this event loop's connections (at the app's shutdown)."""
        if self._async_reads is not None:
            await self._async_reads.aclose()
        await self.serving_log.aclose()

    def _served(self) -> ServedModel:
        served = self._model.served  # one model from here to the answer, even if another is promoted
        if served is None:
            raise ServiceNotReady("no recommendation model is loaded: run `knowledger train`")
        return served

    def _answer(
        self,
        served: ServedModel,
        partner: PartnerAuth,
        subject: bytes,
        pseudonym: str,
        user_id: str,
        row: tuple[Any, ...] | None,
        check: ConsentCheck,
        k: int,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The ranking for the profile ``row`` read after ``check``, the body and the serving-log row."""
        if row is None:
            raise NotFound(f"user {pseudonym} has no learning profile yet", subject=pseudonym)
        arm = self._arm(subject)
        data_text, courses_text, owned_text, built_for = row
        digest = hashlib.blake2b(
            "\x00".join((data_text, courses_text, owned_text, built_for or "")).encode(), digest_size=16
        ).digest()
        key = (user_id, digest, served.version, self._directory.generation, partner.id, k, arm)
        ranking = self.rankings.get(key)
        if ranking is None:
            stored = StoredProfile(
                json.loads(data_text), json.loads(courses_text), json.loads(owned_text), built_for
            )
            ranking, reusable = self._rank(user_id, stored, served, partner, k, arm)
            if reusable:
                self.rankings.put(key, ranking)
        version = served.ranker.metadata.version
        rec_id = "rec_" + secrets.token_hex(10)
        log_row = dict(
            id=rec_id,
            pseudonym=pseudonym,
            partner_id=partner.id,
            products=ranking.product_ids,
            model_version=version,
            consent_block=check.head.number,
            served_at=check.head.timestamp,
            created_at=utcnow(),
            arm=None if arm is None else f"{self._experiment_name}:{arm}",
        )
        return self._body(rec_id, pseudonym, partner, version, arm, check, ranking), log_row

    def _rank(
        self,
        user_id: str,
        stored: StoredProfile,
        served: ServedModel,
        partner: PartnerAuth,
        k: int,
        arm: str | None,
    ) -> tuple[_Ranking, bool]:
        """The ranking for ``stored``, and whether it may be cached under the stored profile's key (not when
        the profile had to be derived again for ``served``: the next request reads the new one)."""
        current = self._profiles.for_model(user_id, stored, served)
        ranked = served.ranker.rank(
            _profile_features(current.data),
            k=k,
            history=current.product_indices or None,
            course_indices=current.course_indices or (),
            candidates=self._directory.partner_products(partner.id, served),
            baseline=arm == "popularity",
        )
        products = [
            {
                "product_id": r.product_id,
                "name": self._directory.product_name(r.product_id),
                "score": round(r.score, 6),
                "explanation": _explanation(r.explanation),
            }
            for r in ranked
        ]
        return _Ranking([r.product_id for r in ranked], products), current is stored

    @staticmethod
    def _body(
        rec_id: str,
        pseudonym: str,
        partner: PartnerAuth,
        version: str,
        arm: str | None,
        check: ConsentCheck,
        ranking: _Ranking,
    ) -> dict[str, Any]:
        return {
            "recommendation_id": rec_id,
            "subject": pseudonym,
            "partner_id": partner.id,
            "model_version": version,
            "arm": arm,
            "consent": {
                "verified_at_block": check.head.number,
                "block_hash": check.head.hash,
                "purposes": sorted(PURPOSE_NAMES[p] for p in check.held),
            },
            "products": ranking.products,
        }

    def _arm(self, subject: bytes) -> str | None:
        """The learner's arm in the running experiment, or None when no experiment runs."""
        if not self._arms:
            return None
        return assign(subject.hex(), self._experiment_name, self._arms, self._weights)


def _subject(subject_hex: str) -> tuple[bytes, str]:
    subject = bytes.fromhex(subject_hex.removeprefix("0x"))
    return subject, "0x" + subject.hex()


def _explanation(why: dict[str, Any] | None) -> dict[str, Any]:
    """Topics and keywords only: course indices stay inside (they would describe the learner's history)."""
    if not why:
        return {"topics": [], "keywords": []}
    return {
        "topics": [
            {"topic": t.get("topic"), "contribution": round(float(t.get("contribution", 0.0)), 4)}
            for t in why.get("topics", [])
        ],
        "keywords": list(why.get("keywords", []))[:5],
    }
