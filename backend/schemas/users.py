"""Learners: who they are to the service (pseudonym, wallet), export and erasure."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Me(BaseModel):
    id: str
    pseudonym: str
    wallet: str | None
    created_at: str


class UserFound(BaseModel):
    id: str
    pseudonym: str
    wallet: str | None


class TokenIssued(BaseModel):
    user_id: str
    #: Shown once; stored only as its SHA-256.
    token: str


class ProfileStored(BaseModel):
    user_id: str
    features: int


class ExportUser(BaseModel):
    id: str
    platform_user_id: str | None
    pseudonym: str
    wallet: str | None
    created_at: str


class ExportProfile(BaseModel):
    data: dict[str, Any]
    course_count: int
    products_held: int


class ExportRecommendation(BaseModel):
    id: str
    partner_id: str
    products: list[str]
    model_version: str
    consent_block: int
    served_at: int


class ExportConversion(BaseModel):
    id: int
    partner_id: str
    product_id: str | None
    value: int
    state: str
    tx_hash: str | None


class Export(BaseModel):
    """Everything the service holds about the learner."""

    user: ExportUser
    profile: ExportProfile | None
    consent_history: list[dict[str, Any]]
    recommendations: list[ExportRecommendation]
    conversions: list[ExportConversion]


class Revoked(BaseModel):
    partner_id: str
    purpose: str
    tx_hash: str


class Erased(BaseModel):
    erased: bool
    revoked_on_chain: list[Revoked]
    wallet_consents: str | None
    kept: str
