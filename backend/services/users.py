"""Learners: creation (pseudonym + secret per-user key), sign-in tokens, their stored profile, export and
erasure."""

from __future__ import annotations

import secrets

from sqlalchemy import delete
from sqlmodel import Session, col, select

from backend.chain import PURPOSE_NAMES, ConsentRegistryClient, Purpose, Wallet, subject_for_wallet
from backend.core.security import key_hash, new_secret
from backend.errors import Conflict, NotFound, ServiceNotReady, Unprocessable
from backend.models import (
    ConsentEvent,
    Conversion,
    LearningEvent,
    Partner,
    Profile,
    ProfileUpdate,
    Recommendation,
    User,
    UserCreate,
    UserCreated,
    iso,
    utcnow,
)
from backend.privacy import new_user_key, pseudonym
from backend.schemas.users import (
    Erased,
    Export,
    ExportConversion,
    ExportProfile,
    ExportRecommendation,
    ExportUser,
    Me,
    ProfileStored,
    Revoked,
    TokenIssued,
    UserFound,
)
from backend.services.directory import Directory
from backend.services.erasure import ErasureRegister
from backend.services.gateway import ChainGateway
from backend.services.model import ModelSlot
from backend.services.sharing import disclosures_of
from recommender.profiles import Profile as LearnerProfile


def me(user: User) -> Me:
    return Me(id=user.id, pseudonym=user.pseudonym, wallet=user.wallet, created_at=iso(user.created_at))


def new_user(platform_user_id: str, wallet: str | None = None) -> tuple[User, str]:
    """A user row (not yet stored) and its sign-in token: a pseudonym under a fresh per-user key, or the
    wallet's own subject."""
    token = new_secret("usr")
    if wallet:
        subject, key = subject_for_wallet(wallet), None
    else:
        key = new_user_key()
        subject = pseudonym(key, platform_user_id)
    user = User(
        id="u_" + secrets.token_hex(8),
        platform_user_id=platform_user_id,
        pseudonym="0x" + subject.hex(),
        user_key=key,
        wallet=wallet,
        token_hash=key_hash(token),
    )
    return user, token


class UserService:
    def __init__(
        self,
        gateway: ChainGateway,
        registry: ConsentRegistryClient,
        registrar: Wallet,
        erasure: ErasureRegister,
    ) -> None:
        self._gateway = gateway
        self._registry = registry
        self._registrar = registrar
        self._erasure = erasure

    @staticmethod
    def create(session: Session, body: UserCreate) -> UserCreated:
        """Create a learner: a random per-user key and the pseudonym derived from it. The token is shown
        once."""
        if session.exec(select(User.id).where(User.platform_user_id == body.platform_user_id)).first():
            raise Conflict(
                f"platform_user_id {body.platform_user_id!r} already has a user", field="platform_user_id"
            )
        user, token = new_user(body.platform_user_id, body.wallet)
        if session.exec(select(User.id).where(User.pseudonym == user.pseudonym)).first():
            raise Conflict("this wallet already belongs to a user", field="wallet")
        session.add(user)
        session.commit()
        session.refresh(user)
        return UserCreated(**user.model_dump(), token=token)

    @staticmethod
    def find(session: Session, platform_user_id: str) -> UserFound:
        user = session.exec(select(User).where(User.platform_user_id == platform_user_id)).first()
        if user is None:
            raise NotFound(f"no user with platform_user_id {platform_user_id!r}")
        return UserFound(id=user.id, pseudonym=user.pseudonym, wallet=user.wallet)

    @staticmethod
    def issue_token(session: Session, user_id: str) -> TokenIssued:
        """Sign-in: the platform, having authenticated the learner, exchanges that for a fresh token."""
        user = session.get(User, user_id)
        if user is None or user.erased_at is not None:
            raise NotFound(f"unknown user {user_id!r}")
        token = new_secret("usr")
        user.token_hash = key_hash(token)
        session.add(user)
        session.commit()
        return TokenIssued(user_id=user.id, token=token)

    @staticmethod
    def by_token(session: Session, token: str) -> User | None:
        user = session.exec(select(User).where(User.token_hash == key_hash(token))).first()
        return None if user is None or user.erased_at is not None else user

    @staticmethod
    def export(session: Session, user: User) -> Export:
        """Everything the service holds about ``user`` (GDPR art. 15/20, PIPL art. 45)."""
        profile = session.get(Profile, user.id)
        recs = session.exec(select(Recommendation).where(Recommendation.pseudonym == user.pseudonym)).all()
        convs = session.exec(select(Conversion).where(Conversion.pseudonym == user.pseudonym)).all()
        events = session.exec(select(ConsentEvent).where(ConsentEvent.pseudonym == user.pseudonym)).all()
        return Export(
            user=ExportUser(
                id=user.id,
                platform_user_id=user.platform_user_id,
                pseudonym=user.pseudonym,
                wallet=user.wallet,
                created_at=iso(user.created_at),
            ),
            profile=None
            if profile is None
            else ExportProfile(
                data=profile.data,
                course_count=len(profile.course_indices),
                products_held=len(profile.product_indices),
            ),
            consent_history=[
                {k: v for k, v in e.model_dump().items() if k != "user_id"}
                | {"created_at": iso(e.created_at)}
                for e in events
            ],
            recommendations=[
                ExportRecommendation(
                    id=r.id,
                    partner_id=r.partner_id,
                    products=r.products,
                    model_version=r.model_version,
                    consent_block=r.consent_block,
                    served_at=r.served_at,
                )
                for r in recs
            ],
            conversions=[
                ExportConversion(
                    id=c.id or 0,
                    partner_id=c.partner_id,
                    product_id=c.product_id,
                    value=c.value,
                    state=c.state,
                    tx_hash=c.tx_hash,
                )
                for c in convs
            ],
            disclosures=disclosures_of(session, user.pseudonym),
        )

    def erase(self, session: Session, user: User) -> Erased:
        """Revoke what the registrar granted, then delete the profile and the per-user key: the on-chain
        pseudonym can no longer be linked to anyone. Settlement records keep the bare pseudonym (an audit
        trail that identifies nobody). With the chain away nothing is deleted (503)."""
        revoked: list[Revoked] = []
        if user.platform_user_id is not None:
            # the register's key is read (or made, in a transaction of its own) before this one writes:
            # on SQLite a second writer would wait for this transaction, which waits for it
            self._erasure.digest(user.platform_user_id)
        if not user.wallet:
            subject = bytes.fromhex(user.pseudonym.removeprefix("0x"))
            for partner in session.exec(select(Partner)).all():
                check = self._gateway.verify_consent(subject, partner.address, frozenset(Purpose))
                for purpose in sorted(check.held):
                    address = partner.address
                    tx = self._gateway.run(
                        "revoking consent before erasure",
                        lambda p=purpose, a=address: self._registry.revoke(  # type: ignore[misc]
                            subject, a, p, sender=self._registrar
                        ),
                    )
                    revoked.append(
                        Revoked(partner_id=partner.id, purpose=PURPOSE_NAMES[purpose], tx_hash=tx.tx_hash)
                    )
        profile = session.get(Profile, user.id)
        if profile is not None:
            session.delete(profile)
        session.exec(delete(LearningEvent).where(col(LearningEvent.user_id) == user.id))
        if user.platform_user_id is not None:  # its events are refused from now on, and nothing re-links it
            self._erasure.record(session, user.platform_user_id)
        for e in session.exec(select(ConsentEvent).where(ConsentEvent.user_id == user.id)).all():
            e.user_id = None
            session.add(e)
        user.user_key = None
        user.platform_user_id = None
        user.token_hash = None
        user.erased_at = utcnow()
        session.add(user)
        session.commit()
        return Erased(
            erased=True,
            revoked_on_chain=revoked,
            wallet_consents="revoke them with your wallet" if user.wallet else None,
            kept="settlement records under the bare pseudonym, which no longer links to you",
        )


class ProfileService:
    """Learners' derived profiles, as the served model reads them."""

    def __init__(self, directory: Directory, model: ModelSlot) -> None:
        self._directory = directory
        self._model = model

    def put(self, session: Session, user_id: str, body: ProfileUpdate) -> ProfileStored:
        """Store a learner's derived profile (``recommender.profiles.Profile.to_dict()``), the courses
        behind it and the products already held, after checking each against the model and catalogue."""
        user = session.get(User, user_id)
        if user is None or user.erased_at is not None:
            raise NotFound(f"unknown user {user_id!r}")
        learner = LearnerProfile.from_dict(body.profile.model_dump())  # the schema checked every field
        served = self._model.served
        if served is None:
            raise ServiceNotReady("no model is loaded: a profile is stored for the served model")
        features = learner.features().shape[0]
        if features != served.ranker.feature_dim:
            raise Unprocessable(
                f"profile: {features} features, the model takes {served.ranker.feature_dim}", field="profile"
            )
        index = served.product_index
        unknown = [p for p in body.product_ids if p not in index]
        if unknown:
            raise Unprocessable(f"product_ids: unknown products {unknown[:5]}", field="product_ids")
        course_row = self._directory.course_index(served)
        unknown = [c for c in body.course_ids if c not in course_row]
        if unknown:
            raise Unprocessable(f"course_ids: unknown courses {unknown[:5]}", field="course_ids")
        data = learner.to_dict() | {"user_id": user.pseudonym}
        profile = session.get(Profile, user.id) or Profile(user_id=user.id, data=data)
        profile.data = data
        profile.course_indices = [course_row[c] for c in body.course_ids]
        profile.product_indices = [index[p] for p in body.product_ids]
        profile.model_version = served.version
        profile.updated_at = utcnow()
        session.add(profile)
        session.commit()
        return ProfileStored(user_id=user.id, features=int(features))
