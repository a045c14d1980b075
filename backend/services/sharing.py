"""Data sharing: a partner receives a consented learner's pseudonymous features.

The same order as a recommendation, for the same reason: the user row is found by pseudonym (no profile is
read), the learner's ``data_sharing`` consent for this partner is checked on chain in this request (403
``consent_required`` without it, 503 when the chain cannot be asked), and only then is the profile read.
What leaves is what the platform derived (the profile vector, the segment, the propensities), under the
pseudonym: never the learning events, never the platform's id for the learner. Each export is logged with
the block at which the consent held (``data_export``), which ``knowledger audit`` replays.
"""

from __future__ import annotations

import secrets

from sqlalchemy import bindparam, insert
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from backend.chain import PURPOSE_NAMES, Purpose
from backend.disclosures import Audience, AudienceMember, DataExport
from backend.errors import NotFound
from backend.models import Profile, User, iso, utcnow
from backend.schemas.recommendations import ConsentVerified
from backend.schemas.sharing import DataExportPublic, SharedFeatures
from backend.schemas.users import ExportDisclosure
from backend.services.directory import PartnerAuth
from backend.services.gateway import ChainGateway
from recommender.profiles import BEHAVIOUR_FEATURES
from recommender.profiles import Profile as LearnerProfile

#: What a data export relies on.
DATA_SHARING_PURPOSES = frozenset({Purpose.DATA_SHARING})

_USER_BY_PSEUDONYM = sa_select(col(User.id)).where(
    col(User.pseudonym) == bindparam("pseudonym"), col(User.erased_at).is_(None)
)
_PROFILE_OF = sa_select(col(Profile.data), col(Profile.updated_at)).where(
    col(Profile.user_id) == bindparam("user_id")
)


def feature_names(n_topics: int) -> list[str]:
    """The names of a profile vector's entries: ``topic_<i>`` for each topic, then the behaviour features."""
    return [f"topic_{i}" for i in range(n_topics)] + list(BEHAVIOUR_FEATURES)


class DataSharingService:
    def __init__(self, engine: Engine, gateway: ChainGateway) -> None:
        self._engine = engine
        self._gateway = gateway

    def export(self, partner: PartnerAuth, subject_hex: str) -> DataExportPublic:
        """One learner's features for ``partner``, only if the chain says, now, that the learner allows
        ``data_sharing`` to it."""
        subject = bytes.fromhex(subject_hex.removeprefix("0x"))
        pseudonym = "0x" + subject.hex()
        with self._engine.connect() as conn:
            user_id = conn.execute(_USER_BY_PSEUDONYM, {"pseudonym": pseudonym}).scalar_one_or_none()
        if user_id is None:
            raise NotFound(f"unknown user {pseudonym}", subject=pseudonym)

        # 1. consent, on chain, now (403 ConsentRequired or 503 ChainUnavailable)
        check = self._gateway.require_consent(subject, partner.address, DATA_SHARING_PURPOSES)

        # 2. only now the profile
        with self._engine.connect() as conn:
            row = conn.execute(_PROFILE_OF, {"user_id": user_id}).first()
        if row is None:
            raise NotFound(f"user {pseudonym} has no learning profile yet", subject=pseudonym)
        data, updated_at = row
        learner = LearnerProfile.from_dict(data)
        export_id = "exp_" + secrets.token_hex(10)
        with self._engine.begin() as conn:
            conn.execute(
                insert(DataExport),
                dict(
                    id=export_id,
                    partner_id=partner.id,
                    pseudonym=pseudonym,
                    consent_block=check.head.number,
                    created_at=utcnow(),
                ),
            )
        return DataExportPublic(
            export_id=export_id,
            subject=pseudonym,
            partner_id=partner.id,
            consent=ConsentVerified(
                verified_at_block=check.head.number,
                block_hash=check.head.hash,
                purposes=sorted(PURPOSE_NAMES[p] for p in check.held),
            ),
            features=SharedFeatures(
                vector=[float(x) for x in learner.base_features()],
                feature_names=feature_names(len(learner.topics)),
                segment=learner.segment,
                segment_name=learner.segment_name,
                propensities=dict(learner.propensities),
                updated_at=iso(updated_at),
            ),
        )


def disclosures_of(session: Session, pseudonym: str) -> list[ExportDisclosure]:
    """The data exports and marketing audiences that named ``pseudonym``, oldest first."""
    exports = session.exec(select(DataExport).where(DataExport.pseudonym == pseudonym)).all()
    audiences = session.exec(
        select(Audience)
        .join(AudienceMember, col(AudienceMember.audience_id) == col(Audience.id))
        .where(AudienceMember.pseudonym == pseudonym)
    ).all()
    out = [
        ExportDisclosure(
            kind="data_export", id=e.id, partner_id=e.partner_id, campaign=None,
            consent_block=e.consent_block, at=iso(e.created_at),
        )
        for e in exports
    ] + [
        ExportDisclosure(
            kind="audience", id=a.id, partner_id=a.partner_id, campaign=a.campaign,
            consent_block=a.consent_block, at=iso(a.created_at),
        )
        for a in audiences
    ]  # fmt: skip
    return sorted(out, key=lambda d: d.at)
