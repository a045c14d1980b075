"""The operator (the platform, which is also the consent registrar): partners, users and sign-in tokens,
profiles, agreements, and the settlement and indexing rounds on demand."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from sqlmodel import select

from backend.api.deps import OperatorDep, RuntimeDep, SessionDep
from backend.errors import BadRequest, Conflict, NotFound, ServiceNotReady
from backend.models import (
    NoticeUpdate,
    Partner,
    PartnerCreate,
    PartnerCreated,
    Product,
    Profile,
    ProfileUpdate,
    User,
    UserCreate,
    UserCreated,
    utcnow,
)
from backend.services import users as user_service
from backend.services.runtime import key_hash, new_secret
from backend.services.settlement import outbox_counts
from recommender.profiles import Profile as LearnerProfile

router = APIRouter(prefix="/api/v1", tags=["operator"])


@router.post("/partners", status_code=201, response_model=PartnerCreated)
def create_partner(
    body: PartnerCreate, _: OperatorDep, runtime: RuntimeDep, session: SessionDep
) -> dict[str, Any]:
    """Register a partner and publish its notice (version 1) on chain. The API key is shown once."""
    from backend.chain.types import checksum

    if session.get(Partner, body.id) is not None:
        raise Conflict(f"partner {body.id!r} exists", field="id")
    address = checksum(body.address)
    if session.exec(select(Partner.id).where(Partner.address == address)).first():
        raise Conflict(f"address {address} already belongs to a partner", field="address")
    d = runtime.deployment
    current = runtime.gateway.run(
        "reading the partner notice", lambda: d.consent.partner_notice_version(address)
    )
    version = current + 1
    runtime.gateway.run(
        "publishing the partner notice",
        lambda: d.consent.set_partner_notice_version(address, version, sender=runtime.roles.admin),
    )
    key = new_secret("pk")
    partner = Partner(
        **body.model_dump(exclude={"address"}),
        address=address,
        notice_version=version,
        api_key_hash=key_hash(key),
    )
    session.add(partner)
    session.commit()
    runtime.refresh_caches()
    return {**partner.model_dump(), "api_key": key}


@router.put("/partners/{partner_id}/notice")
def update_notice(
    partner_id: str, body: NoticeUpdate, _: OperatorDep, runtime: RuntimeDep, session: SessionDep
) -> dict[str, Any]:
    """A new notice text: the version goes up on chain and every earlier consent for this partner stops
    counting until the user grants again."""
    partner = session.get(Partner, partner_id)
    if partner is None:
        raise NotFound(f"unknown partner {partner_id!r}")
    version = partner.notice_version + 1
    runtime.gateway.run(
        "publishing the partner notice",
        lambda: runtime.deployment.consent.set_partner_notice_version(
            partner.address, version, sender=runtime.roles.admin
        ),
    )
    partner.notice_text, partner.notice_version = body.notice_text, version
    session.add(partner)
    session.commit()
    return {"partner_id": partner.id, "notice_version": version}


@router.post("/partners/{partner_id}/api-key", status_code=201)
def rotate_partner_key(
    partner_id: str, _: OperatorDep, runtime: RuntimeDep, session: SessionDep
) -> dict[str, str]:
    partner = session.get(Partner, partner_id)
    if partner is None:
        raise NotFound(f"unknown partner {partner_id!r}")
    key = new_secret("pk")
    partner.api_key_hash = key_hash(key)
    session.add(partner)
    session.commit()
    runtime.refresh_caches()
    return {"partner_id": partner.id, "api_key": key}


@router.post("/users", status_code=201, response_model=UserCreated)
def create_user(body: UserCreate, _: OperatorDep, session: SessionDep) -> dict[str, Any]:
    """Create a learner: a random per-user key and the pseudonym derived from it. The token is shown once."""
    user, token = user_service.create_user(session, body)
    return {**user.model_dump(), "token": token}


@router.get("/users")
def find_user(
    _: OperatorDep, session: SessionDep, platform_user_id: Annotated[str, Query(min_length=1, max_length=120)]
) -> dict[str, Any]:
    user = session.exec(select(User).where(User.platform_user_id == platform_user_id)).first()
    if user is None:
        raise NotFound(f"no user with platform_user_id {platform_user_id!r}")
    return {"id": user.id, "pseudonym": user.pseudonym, "wallet": user.wallet}


@router.post("/users/{user_id}/token", status_code=201)
def sign_in(
    user_id: Annotated[str, Path(max_length=40)], _: OperatorDep, session: SessionDep
) -> dict[str, str]:
    """Sign-in: the platform, having authenticated the learner, exchanges that for a fresh token."""
    return {"user_id": user_id, "token": user_service.issue_token(session, user_id)}


@router.put("/users/{user_id}/profile")
def put_profile(
    user_id: Annotated[str, Path(max_length=40)],
    body: ProfileUpdate,
    _: OperatorDep,
    runtime: RuntimeDep,
    session: SessionDep,
) -> dict[str, Any]:
    """Store a learner's derived profile (``recommender.profiles.Profile.to_dict()``)."""
    user = session.get(User, user_id)
    if user is None or user.erased_at is not None:
        raise NotFound(f"unknown user {user_id!r}")
    try:
        learner = LearnerProfile.from_dict(body.profile)
    except (ValueError, TypeError) as exc:
        raise BadRequest(str(exc), field="profile") from None
    if runtime.ranker is not None and learner.features().shape[0] != runtime.ranker.feature_dim:
        raise BadRequest(
            f"profile: {learner.features().shape[0]} features, the model takes {runtime.ranker.feature_dim}",
            field="profile",
        )
    index = runtime.product_index()
    unknown = [p for p in body.product_ids if p not in index]
    if unknown:
        raise BadRequest(f"product_ids: unknown products {unknown[:5]}", field="product_ids")
    course_row = runtime.course_index()
    unknown = [c for c in body.course_ids if c not in course_row]
    if unknown:
        raise BadRequest(f"course_ids: unknown courses {unknown[:5]}", field="course_ids")
    data = learner.to_dict() | {"user_id": user.pseudonym}
    profile = session.get(Profile, user.id) or Profile(user_id=user.id, data=data)
    profile.data = data
    profile.course_indices = [course_row[c] for c in body.course_ids]
    profile.product_indices = [index[p] for p in body.product_ids]
    profile.updated_at = utcnow()
    session.add(profile)
    session.commit()
    return {"user_id": user.id, "features": int(learner.features().shape[0])}


@router.get("/products")
def products(session: SessionDep, partner_id: str | None = None) -> dict[str, Any]:
    q = select(Product).order_by(Product.id)
    if partner_id:
        q = q.where(Product.partner_id == partner_id)
    return {"products": [p.model_dump() for p in session.exec(q).all()]}


@router.post("/operator/settle")
def settle(_: OperatorDep, runtime: RuntimeDep) -> dict[str, Any]:
    """Run one settlement round now (the settler also runs every ``KNOWLEDGER_SETTLE_INTERVAL_S``)."""
    stats = runtime.settle_round()
    runtime.indexer_run()
    last_error = runtime.settler.last_error if runtime.settler is not None else None
    return {"round": stats, "outbox": outbox_counts(runtime), "last_error": last_error}


@router.post("/operator/index")
def index(_: OperatorDep, runtime: RuntimeDep) -> dict[str, Any]:
    if runtime.indexer is None:
        raise ServiceNotReady("the indexer is not started")
    added = runtime.indexer.run_once()
    return {"added": added, "next_block": runtime.indexer.cursor()}
