"""The operator (the platform, which is also the consent registrar): partners, users and sign-in tokens,
profiles, and the settlement and indexing rounds on demand."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from backend.api.deps import OperatorDep, PartnersDep, ProfilesDep, RoundsDep, SessionDep, UsersDep
from backend.models import NoticeUpdate, PartnerCreate, PartnerCreated, ProfileUpdate, UserCreate, UserCreated
from backend.schemas.common import errors
from backend.schemas.ops import IndexRound, SettleRound
from backend.schemas.partners import NoticePublished, PartnerKey, ProductList
from backend.schemas.users import ProfileStored, TokenIssued, UserFound

router = APIRouter(prefix="/api/v1", tags=["operator"])
_AUTH = (401, 403)
PartnerId = Annotated[str, Path(min_length=1, max_length=40)]
UserId = Annotated[str, Path(min_length=1, max_length=40)]


@router.post("/partners", status_code=201, response_model=PartnerCreated, responses=errors(*_AUTH, 409, 503))
def create_partner(
    body: PartnerCreate, _: OperatorDep, partners: PartnersDep, session: SessionDep
) -> PartnerCreated:
    """Register a partner and publish its notice (version 1) on chain. The API key is shown once."""
    return partners.create(session, body)


@router.put(
    "/partners/{partner_id}/notice", response_model=NoticePublished, responses=errors(*_AUTH, 404, 503)
)
def update_notice(
    partner_id: PartnerId, body: NoticeUpdate, _: OperatorDep, partners: PartnersDep, session: SessionDep
) -> NoticePublished:
    """A new notice text: the version goes up on chain and every earlier consent for this partner stops
    counting until the user grants again."""
    return partners.update_notice(session, partner_id, body)


@router.post(
    "/partners/{partner_id}/api-key",
    status_code=201,
    response_model=PartnerKey,
    responses=errors(*_AUTH, 404),
)
def rotate_partner_key(
    partner_id: PartnerId, _: OperatorDep, partners: PartnersDep, session: SessionDep
) -> PartnerKey:
    """A new API key for the partner (the old one stops working at once). Shown once."""
    return partners.rotate_key(session, partner_id)


@router.post("/users", status_code=201, response_model=UserCreated, responses=errors(*_AUTH, 409))
def create_user(body: UserCreate, _: OperatorDep, users: UsersDep, session: SessionDep) -> UserCreated:
    """Create a learner: a random per-user key and the pseudonym derived from it. The token is shown once."""
    return users.create(session, body)


@router.get("/users", response_model=UserFound, responses=errors(*_AUTH, 404))
def find_user(
    _: OperatorDep,
    users: UsersDep,
    session: SessionDep,
    platform_user_id: Annotated[str, Query(min_length=1, max_length=120)],
) -> UserFound:
    return users.find(session, platform_user_id)


@router.post(
    "/users/{user_id}/token", status_code=201, response_model=TokenIssued, responses=errors(*_AUTH, 404)
)
def sign_in(user_id: UserId, _: OperatorDep, users: UsersDep, session: SessionDep) -> TokenIssued:
    """Sign-in: the platform, having authenticated the learner, exchanges that for a fresh token."""
    return users.issue_token(session, user_id)


@router.put("/users/{user_id}/profile", response_model=ProfileStored, responses=errors(*_AUTH, 404))
def put_profile(
    user_id: UserId, body: ProfileUpdate, _: OperatorDep, profiles: ProfilesDep, session: SessionDep
) -> ProfileStored:
    """Store a learner's derived profile (``recommender.profiles.Profile.to_dict()``)."""
    return profiles.put(session, user_id, body)


@router.get("/products", response_model=ProductList, responses=errors())
def products(
    partners: PartnersDep,
    session: SessionDep,
    partner_id: Annotated[str | None, Query(max_length=40)] = None,
) -> ProductList:
    """The partners' products (public: what a learner may be recommended)."""
    return partners.products(session, partner_id)


@router.post("/operator/settle", response_model=SettleRound, responses=errors(*_AUTH))
def settle(_: OperatorDep, rounds: RoundsDep) -> SettleRound:
    """Run one settlement round now (the settler also runs every ``KNOWLEDGER_SETTLE_INTERVAL_S``)."""
    return rounds.settle()


@router.post("/operator/index", response_model=IndexRound, responses=errors(*_AUTH))
def index(_: OperatorDep, rounds: RoundsDep) -> IndexRound:
    """Run one indexing round now (the indexer also runs every ``KNOWLEDGER_INDEX_INTERVAL_S``)."""
    return rounds.index()
