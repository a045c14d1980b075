"""Consent-gated recommendations: the chain first, then the profile, then the model.

Order matters and is the point of the product: the user row is looked up by pseudonym (no profile is read),
consent for profiling *and* product recommendation is checked on chain in this request, and only then is
the profile loaded and scored. A refusal or an unreachable chain stops the request before the profile.

While an A/B experiment runs (``KNOWLEDGER_EXPERIMENT_ARMS``), the learner's arm is a pure function of the
experiment name and the pseudonym (:func:`recommender.abtest.assign`, one SHA-256 of the pseudonym's 64 hex
digits, so it is sticky without storage): ``hybrid`` is the model, ``popularity`` the non-personalised
baseline (the model's item bias). The row records ``<experiment>:<arm>``; the response the arm.
"""

from __future__ import annotations

import secrets
from typing import Any

import numpy as np
from sqlalchemy import bindparam, insert, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from backend.chain import PURPOSE_NAMES
from backend.errors import NotFound, ServiceNotReady
from backend.models import Profile, Recommendation, User, utcnow
from backend.services.directory import Directory, PartnerAuth
from backend.services.gateway import ChainGateway
from backend.services.model import ModelSlot
from backend.services.profiles import ProfileRefresher, StoredProfile
from recommender.abtest import assign
from recommender.profiles import Profile as LearnerProfile

# Built once: the hot path only binds parameters (no statement construction per request).
_USER_BY_PSEUDONYM = select(col(User.id)).where(
    col(User.pseudonym) == bindparam("pseudonym"), col(User.erased_at).is_(None)
)
_PROFILE_OF = select(
    col(Profile.data), col(Profile.course_indices), col(Profile.product_indices), col(Profile.model_version)
).where(col(Profile.user_id) == bindparam("user_id"))
_INSERT_RECOMMENDATION = insert(Recommendation)


def _profile_features(data: dict[str, Any]) -> np.ndarray:
    return LearnerProfile.from_dict(data).features()


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
    ) -> None:
        self._engine = engine
        self._gateway = gateway
        self._directory = directory
        self._model = model
        self._profiles = profiles
        self._experiment_name = experiment_name
        self._arms, self._weights = experiment

    def recommend(self, partner: PartnerAuth, subject_hex: str, k: int) -> dict[str, Any]:
        """Products for one learner, only if the chain says, now, that the learner allows profiling and
        product recommendation for this partner (403 otherwise, 503 if the chain cannot be asked).

        Returns the body of :class:`backend.schemas.recommendations.RecommendationPublic` as plain JSON
        values (the hot path skips building and re-validating a model per request; the route declares the
        schema and a test checks every answer against it)."""
        served = self._model.served  # one model from here to the answer, even if another is promoted
        if served is None:
            raise ServiceNotReady("no recommendation model is loaded: run `knowledger train`")
        ranker = served.ranker
        subject = bytes.fromhex(subject_hex.removeprefix("0x"))
        pseudonym = "0x" + subject.hex()
        with self._engine.connect() as conn:
            user_id = conn.execute(_USER_BY_PSEUDONYM, {"pseudonym": pseudonym}).scalar_one_or_none()
        if user_id is None:
            raise NotFound(f"unknown user {pseudonym}", subject=pseudonym)

        # 1. consent, on chain, now (raises 403 ConsentRequired or 503 ChainUnavailable)
        check = self._gateway.require_consent(subject, partner.address)

        # 2. only now the profile
        with self._engine.connect() as conn:
            row = conn.execute(_PROFILE_OF, {"user_id": user_id}).first()
        if row is None:
            raise NotFound(f"user {pseudonym} has no learning profile yet", subject=pseudonym)
        stored = self._profiles.for_model(user_id, StoredProfile(*row), served)
        courses, owned = stored.course_indices, stored.product_indices
        features = _profile_features(stored.data)
        arm = self._arm(subject)
        ranked = ranker.rank(
            features,
            k=k,
            history=owned or None,
            course_indices=courses or (),
            candidates=self._directory.partner_products(partner.id, served),
            baseline=arm == "popularity",
        )
        rec_id = "rec_" + secrets.token_hex(10)
        with self._engine.begin() as conn:
            conn.execute(
                _INSERT_RECOMMENDATION,
                dict(
                    id=rec_id,
                    pseudonym=pseudonym,
                    partner_id=partner.id,
                    products=[r.product_id for r in ranked],
                    model_version=ranker.metadata.version,
                    consent_block=check.head.number,
                    served_at=check.head.timestamp,
                    created_at=utcnow(),
                    arm=None if arm is None else f"{self._experiment_name}:{arm}",
                ),
            )
        return {
            "recommendation_id": rec_id,
            "subject": pseudonym,
            "partner_id": partner.id,
            "model_version": ranker.metadata.version,
            "arm": arm,
            "consent": {
                "verified_at_block": check.head.number,
                "block_hash": check.head.hash,
                "purposes": sorted(PURPOSE_NAMES[p] for p in check.held),
            },
            "products": [
                {
                    "product_id": r.product_id,
                    "name": self._directory.product_name(r.product_id),
                    "score": round(r.score, 6),
                    "explanation": _explanation(r.explanation),
                }
                for r in ranked
            ],
        }

    def _arm(self, subject: bytes) -> str | None:
        """The learner's arm in the running experiment, or None when no experiment runs."""
        if not self._arms:
            return None
        return assign(subject.hex(), self._experiment_name, self._arms, self._weights)


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
