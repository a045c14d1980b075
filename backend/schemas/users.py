"""Learners: who they are to the service (pseudonym, wallet), export and erasure."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from recommender.profiles import BEHAVIOUR_FEATURES, PROFILE_FORMAT_VERSION

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]

#: A profile's behaviour block: one finite number per :data:`recommender.profiles.BEHAVIOUR_FEATURES`.
Behaviour = create_model(
    "Behaviour",
    __config__=ConfigDict(extra="forbid"),
    **{name: (FiniteFloat, ...) for name in BEHAVIOUR_FEATURES},  # type: ignore[call-overload]
)


class ProfileData(BaseModel):
    """A learner's derived profile, as ``recommender.profiles.Profile.to_dict()`` writes it."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[PROFILE_FORMAT_VERSION] = PROFILE_FORMAT_VERSION  # type: ignore[valid-type]
    user_id: str = Field(min_length=1, max_length=120)
    #: The learner's topic vector (the model's topic space).
    topics: list[FiniteFloat] = Field(min_length=1, max_length=10_000)
    behaviour: Behaviour  # type: ignore[valid-type]
    segment: int | None = Field(default=None, ge=0, le=10_000)
    segment_name: str | None = Field(default=None, max_length=120)
    propensities: dict[str, FiniteFloat] = Field(default_factory=dict, max_length=100)
    #: How many segments the model's profile builder has (the width of the segment columns it ranks on).
    n_segments: int | None = Field(default=None, ge=1, le=10_000)


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


class ExportDisclosure(BaseModel):
    """A partner received the learner's features (``data_export``) or the learner was in one of its
    marketing audiences (``audience``), with the block at which the chain held the learner's consent."""

    kind: Literal["data_export", "audience"]
    id: str
    partner_id: str
    campaign: str | None
    consent_block: int
    at: str


class Export(BaseModel):
    """Everything the service holds about the learner."""

    user: ExportUser
    profile: ExportProfile | None
    consent_history: list[dict[str, Any]]
    recommendations: list[ExportRecommendation]
    conversions: list[ExportConversion]
    #: The partners that received the learner's data or could contact them, and when.
    disclosures: list[ExportDisclosure] = []


class Revoked(BaseModel):
    partner_id: str
    purpose: str
    tx_hash: str


class Erased(BaseModel):
    erased: bool
    revoked_on_chain: list[Revoked]
    wallet_consents: str | None
    kept: str


class CourseRef(BaseModel):
    item_id: str
    title: str


class LearnerTopic(BaseModel):
    topic: str
    weight: float


class ReasonedProduct(BaseModel):
    product_id: str
    name: str
    topics: list[str]
    keywords: list[str]
    #: The learner's own courses closest to the product (shown to the learner only).
    courses: list[CourseRef]


class LearnerRecommendations(BaseModel):
    partner_id: str
    partner_name: str
    #: The block at which the learner's consent to this partner was read.
    checked_at_block: int
    products: list[ReasonedProduct]


class LearnerProfileView(BaseModel):
    """What the service derives about the learner, as the learner sees it."""

    has_profile: bool
    segment: str | None
    topics: list[LearnerTopic]
    #: Estimated chance of taking up a product of each kind.
    propensities: dict[str, float]
    courses: list[CourseRef]
    #: Per partner the learner lets recommend products: what it would be shown, and why.
    recommendations: list[LearnerRecommendations]
    note: str | None = None
    #: The model version that derived this view (None when no model is loaded).
    model_version: str | None = None
