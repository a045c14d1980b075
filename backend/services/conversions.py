"""Conversions reported by partners: validated against the recommendation and the agreement in force, and
committed to the outbox before the partner's 202, so nothing accepted is lost. The settler takes them to
the chain (:mod:`backend.services.settlement`).

Nothing is settled twice: the same order id from the same partner is one row, the ledger refuses a
conversion id it has seen, and a row whose transaction may be in flight is checked before any resend.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from backend.chain import LedgerClient, split_commission
from backend.errors import Conflict, NotFound, Unprocessable
from backend.models import (
    Agreement,
    Conversion,
    ConversionCreate,
    ConversionPublic,
    ConversionState,
    Recommendation,
)
from backend.services.agreements import terms_from_json
from backend.services.directory import PartnerAuth
from backend.services.gateway import ChainGateway
from backend.services.notifications import conversion_accepted
from backend.services.outbox import transition


def active_agreement(session: Session, partner_id: str, at: int) -> Agreement | None:
    """The newest active agreement of ``partner_id`` whose validity covers chain time ``at``."""
    rows = session.exec(
        select(Agreement)
        .where(Agreement.partner_id == partner_id, Agreement.status == "active")
        .order_by(col(Agreement.id).desc())
    ).all()
    for a in rows:
        terms = a.terms
        if int(terms["valid_from"]) <= at < int(terms["valid_until"]):
            return a
    return None


def conversion_public(r: Conversion) -> ConversionPublic:
    assert r.id is not None
    return ConversionPublic(
        id=r.id,
        order_id=r.order_id,
        recommendation_id=r.recommendation_id,
        agreement_id=r.agreement_id,
        product_id=r.product_id,
        value=r.value,
        occurred_at=r.occurred_at,
        state=r.state,
        commission=r.commission,
        amounts=[int(a) for a in r.amounts],
        batch_id=r.batch_id,
        tx_hash=r.tx_hash,
        block_number=r.block_number,
        reversal_tx_hash=r.reversal_tx_hash,
        error=r.error,
    )


class ConversionService:
    def __init__(self, gateway: ChainGateway, ledger: LedgerClient) -> None:
        self._gateway = gateway
        self._ledger = ledger

    def report(
        self, session: Session, partner: PartnerAuth, body: ConversionCreate
    ) -> tuple[ConversionPublic, bool]:
        """Validate and write a conversion to the outbox. Returns ``(conversion, created)``: an order id
        already reported returns its row (``created`` False) when the report is the same, 409 when it
        differs."""
        existing = self._by_order(session, partner.id, body.order_id)
        if existing is not None:
            return conversion_public(_same_or_conflict(existing, body)), False
        rec = session.get(Recommendation, body.recommendation_id)
        if rec is None or rec.partner_id != partner.id:
            raise NotFound(f"unknown recommendation {body.recommendation_id!r}", field="recommendation_id")
        if body.product_id is not None and body.product_id not in rec.products:
            raise Unprocessable(
                f"product_id: {body.product_id!r} was not part of recommendation {rec.id}",
                field="product_id",
            )
        now = self._gateway.chain_time()
        agreement = active_agreement(session, partner.id, now)
        if agreement is None:
            raise Conflict(f"partner {partner.id!r} has no agreement in force: nothing to settle against")
        terms = terms_from_json(agreement.terms)
        if now - rec.served_at > terms.attribution_window:
            raise Unprocessable(
                f"the conversion is outside the agreement's attribution window: recommendation served at "
                f"{rec.served_at}, now {now}, window {terms.attribution_window} s",
                field="recommendation_id",
            )
        commission, amounts = split_commission(terms, body.value)
        row = Conversion(
            partner_id=partner.id,
            order_id=body.order_id,
            recommendation_id=rec.id,
            agreement_id=agreement.id,
            pseudonym=rec.pseudonym,
            product_id=body.product_id,
            value=body.value,
            occurred_at=max(now, rec.served_at),
            recommended_at=rec.served_at,
            commission=commission,
            amounts=[str(a) for a in amounts],
        )
        session.add(row)
        try:
            session.flush()  # the row's id, for its notification, written in the same transaction
            conversion_accepted(session, row)
            session.commit()
        except IntegrityError:  # the same order id raced in from another request
            session.rollback()
            raced = self._by_order(session, partner.id, body.order_id)
            assert raced is not None
            return conversion_public(_same_or_conflict(raced, body)), False
        session.refresh(row)
        return conversion_public(row), True

    @staticmethod
    def _by_order(session: Session, partner_id: str, order_id: str) -> Conversion | None:
        return session.exec(
            select(Conversion).where(Conversion.partner_id == partner_id, Conversion.order_id == order_id)
        ).first()

    @staticmethod
    def get(session: Session, partner: PartnerAuth, conversion_id: int) -> ConversionPublic:
        row = session.get(Conversion, conversion_id)
        if row is None or row.partner_id != partner.id:
            raise NotFound(f"unknown conversion {conversion_id}")
        return conversion_public(row)

    def request_reversal(
        self, session: Session, partner: PartnerAuth, conversion_id: int
    ) -> ConversionPublic:
        """Reverse a conversion (a cancelled policy, a withdrawal) inside its validation window: cancelled in
        the outbox if it never reached the chain, else queued for the settler to reverse on chain."""
        row = session.get(Conversion, conversion_id)
        if row is None or row.partner_id != partner.id:
            raise NotFound(f"unknown conversion {conversion_id}")
        state = ConversionState(row.state)
        if state in (ConversionState.REVERSED, ConversionState.REVERSAL_PENDING, ConversionState.REJECTED):
            return conversion_public(row)
        if state == ConversionState.PENDING:  # never reached the chain: cancel it in the outbox
            transition(
                session, row, ConversionState.REJECTED, error="reversed by the partner before settlement"
            )
            session.commit()
            return conversion_public(row)
        if state == ConversionState.FINAL:
            raise Conflict(f"conversion {conversion_id} is final: its validation window has passed")
        if state != ConversionState.SETTLED or row.batch_id is None:
            raise Conflict(f"conversion {conversion_id} is {row.state}; try again once it is settled")
        batch_id = row.batch_id
        batch = self._gateway.run("reading the batch", lambda: self._ledger.batch_of(batch_id))
        if batch.finalized or self._gateway.chain_time() >= batch.final_after:
            raise Conflict(
                f"conversion {conversion_id} is past its validation window (final after {batch.final_after})"
            )
        transition(session, row, ConversionState.REVERSAL_PENDING)
        session.commit()
        return conversion_public(row)


def _same_or_conflict(existing: Conversion, body: ConversionCreate) -> Conversion:
    if (existing.recommendation_id, existing.value, existing.product_id) != (
        body.recommendation_id,
        body.value,
        body.product_id if body.product_id is not None else existing.product_id,
    ):
        raise Conflict(
            f"order {body.order_id!r} was already reported with different details (conversion "
            f"{existing.id}); an order settles once",
            conversion_id=existing.id,
        )
    return existing
