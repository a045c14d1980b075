"""Consent-gated recommendations."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from backend.schemas.common import SUBJECT_PATTERN, JsonInt


class RecommendationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: The user's on-chain pseudonym (0x + 64 hex digits), as the user shared it with the partner.
    subject: str = Field(pattern=SUBJECT_PATTERN)
    #: How many products (1-20).
    k: JsonInt = Field(default=5, ge=1, le=20)


class TopicContribution(BaseModel):
    topic: str | None
    contribution: float


class Explanation(BaseModel):
    """Why a product was recommended: topics and keywords only (never the learner's courses)."""

    topics: list[TopicContribution]
    keywords: list[str]


class RecommendedProduct(BaseModel):
    product_id: str
    name: str
    score: float
    explanation: Explanation


class ConsentVerified(BaseModel):
    #: The block at which the chain held every purpose this answer relied on.
    verified_at_block: int
    block_hash: str
    purposes: list[str]


class RecommendationPublic(BaseModel):
    recommendation_id: str
    subject: str
    partner_id: str
    model_version: str
    #: The learner's arm while an A/B experiment runs, else null.
    arm: str | None
    consent: ConsentVerified
    products: list[RecommendedProduct]
