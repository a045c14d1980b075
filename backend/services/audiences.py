"""Marketing audiences: the learners a partner may contact for a campaign.

A partner names learners (pseudonyms) or a segment, or both (those named who are in the segment). The
candidates are the known, not erased learners among them; the audience is those whose ``marketing_contact``
consent for this partner the registry holds at one head block, read in this request (503 when the chain
cannot be asked: no audience rather than a guess). The audience names that block; it is logged with its
members (``audience``, ``audience_member``) and ``knowledger audit`` replays every member at it.

An audience is an answer for its block, not a list to keep: a learner who revokes is in no audience asked
for after the revocation, so a partner asks again before each send. A segment larger than one request's
``limit`` comes in pages (``after`` / ``next_after``), each page an audience of its own block.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import func, insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from backend.chain import PURPOSE_NAMES, Purpose
from backend.disclosures import Audience, AudienceMember
from backend.errors import NotFound, Unprocessable
from backend.models import Profile, User, iso, utcnow
from backend.schemas.recommendations import ConsentVerified
from backend.schemas.sharing import AudiencePublic, AudienceRequest, SegmentList, SegmentSize
from backend.services.directory import PartnerAuth
from backend.services.gateway import ChainGateway

MARKETING = Purpose.MARKETING_CONTACT


def _segment_name() -> Any:
    return col(Profile.data)["segment_name"].as_string()


class AudienceService:
    def __init__(self, engine: Engine, gateway: ChainGateway) -> None:
        self._engine = engine
        self._gateway = gateway

    def segments(self) -> SegmentList:
        """The learners' segments by name, with how many (not erased) learners each holds."""
        name = _segment_name()
        with Session(self._engine) as s:
            rows = s.exec(
                select(name, func.count())
                .select_from(Profile)
                .join(User, col(User.id) == col(Profile.user_id))
                .where(col(User.erased_at).is_(None), name.is_not(None))
                .group_by(name)
                .order_by(name)
            ).all()
        return SegmentList(segments=[SegmentSize(name=str(n), learners=int(c)) for n, c in rows])

    def _candidates(self, s: Session, body: AudienceRequest) -> tuple[list[str], str | None]:
        """The known learners the request covers, in pseudonym order, and where the next page starts."""
        query = select(col(User.pseudonym)).where(col(User.erased_at).is_(None))
        if body.subjects is not None:
            query = query.where(col(User.pseudonym).in_({p.lower() for p in body.subjects}))
        if body.segment is not None:
            query = query.join(Profile, col(Profile.user_id) == col(User.id)).where(
                _segment_name() == body.segment
            )
        if body.after is not None:
            query = query.where(col(User.pseudonym) > body.after.lower())
        rows = list(s.exec(query.order_by(col(User.pseudonym)).limit(body.limit + 1)).all())
        more = len(rows) > body.limit
        rows = rows[: body.limit]
        return [str(p) for p in rows], (rows[-1] if more and rows else None)

    def build(self, partner: PartnerAuth, body: AudienceRequest) -> AudiencePublic:
        """The audience for ``body`` at the current head block (see the module docstring)."""
        if body.subjects is None and body.segment is None:
            raise Unprocessable("name the learners (subjects), a segment, or both", field="subjects")
        if body.after is not None and body.segment is None:
            raise Unprocessable("after: pages a segment; give the segment too", field="after")
        with Session(self._engine) as s:
            if (
                body.segment is not None
                and not s.exec(
                    select(col(Profile.user_id)).where(_segment_name() == body.segment).limit(1)
                ).first()
            ):
                raise NotFound(f"unknown segment {body.segment!r}: see GET /api/v1/segments", field="segment")
            candidates, next_after = self._candidates(s, body)

        subjects = [bytes.fromhex(p.removeprefix("0x")) for p in candidates]
        head, held = self._gateway.consents_at_one_head(subjects, partner.address)
        members = [p for p, purposes in zip(candidates, held, strict=True) if MARKETING in purposes]

        audience = Audience(
            id="aud_" + secrets.token_hex(10),
            partner_id=partner.id,
            campaign=body.campaign,
            segment=body.segment,
            named=len({p.lower() for p in body.subjects or ()}),
            candidates=len(candidates),
            size=len(members),
            consent_block=head.number,
            block_hash=head.hash,
            created_at=utcnow(),
        )
        with Session(self._engine) as s:
            s.add(audience)
            s.flush()
            if members:
                s.execute(
                    insert(AudienceMember), [{"audience_id": audience.id, "pseudonym": p} for p in members]
                )
            s.commit()
            s.refresh(audience)
        return AudiencePublic(
            audience_id=audience.id,
            partner_id=partner.id,
            campaign=audience.campaign,
            segment=audience.segment,
            consent=ConsentVerified(
                verified_at_block=head.number, block_hash=head.hash, purposes=[PURPOSE_NAMES[MARKETING]]
            ),
            named=audience.named,
            candidates=audience.candidates,
            size=audience.size,
            members=members,
            next_after=next_after,
            created_at=iso(audience.created_at),
        )
