"""Conversions: reported by partners into a durable outbox, settled on chain in batches.

State machine of a row (``ConversionState``)::

    pending ──send──▶ submitting ──mined──▶ settled ──window passes──▶ final
       ▲                  │                    │
       └──chain down──────┘                    └──reversal──▶ reversal_pending ──▶ reversed
    (a named refusal from the chain for one conversion marks it rejected; the rest are retried)

Nothing is lost: the row is committed before the partner gets its 202. Nothing is settled twice: the
ledger refuses a conversion id it has seen (per agreement), a ``submitting`` row is checked against the chain
before it is sent again, and the same order id from the same partner is one row.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from backend.chain import (
    AgreementTerms,
    ChainUnreachable,
    ContractReverted,
    ConversionData,
    ConversionStatus,
    TransactionTimeout,
    merkle_proof,
    split_commission,
)
from backend.chain import (
    Conversion as ChainConversion,
)
from backend.errors import Conflict, NotFound, Unprocessable
from backend.models import (
    Agreement,
    Conversion,
    ConversionCreate,
    ConversionState,
    Recommendation,
    utcnow,
)
from backend.privacy import reference_hash
from backend.services.agreements import terms_from_json
from backend.services.runtime import PartnerAuth, Runtime
from backend.services.worker import PeriodicWorker

log = logging.getLogger("knowledger.settlement")

ON_CHAIN = (ConversionState.SETTLED, ConversionState.REVERSAL_PENDING, ConversionState.FINAL)


def move(s: Session, row: Conversion, state: ConversionState, **fields: Any) -> None:
    """One outbox transition: the new state, any fields that come with it, the time of the change."""
    row.state = state
    for name, value in fields.items():
        setattr(row, name, value)
    row.updated_at = utcnow()
    s.add(row)


def chain_conversion(row: Conversion) -> ChainConversion:
    assert row.id is not None
    return ChainConversion(
        ConversionData(row.id, row.occurred_at, row.recommended_at, row.value),
        reference_hash("recommendation", row.recommendation_id),
        bytes.fromhex(row.pseudonym.removeprefix("0x")),
    )


def active_agreement(session: Session, partner_id: str, at: int) -> Agreement | None:
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


def report(
    runtime: Runtime, session: Session, partner: PartnerAuth, body: ConversionCreate
) -> tuple[Conversion, bool]:
    """Validate and write a conversion to the outbox. Returns ``(row, created)``: an order id already
    reported returns its row (``created`` False) when the report is the same, 409 when it differs."""
    existing = session.exec(
        select(Conversion).where(Conversion.partner_id == partner.id, Conversion.order_id == body.order_id)
    ).first()
    if existing is not None:
        return _same_or_conflict(existing, body), False
    rec = session.get(Recommendation, body.recommendation_id)
    if rec is None or rec.partner_id != partner.id:
        raise NotFound(f"unknown recommendation {body.recommendation_id!r}", field="recommendation_id")
    if body.product_id is not None and body.product_id not in rec.products:
        raise Unprocessable(
            f"product_id: {body.product_id!r} was not part of recommendation {rec.id}", field="product_id"
        )
    now = runtime.gateway.chain_time_estimate()
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
        session.commit()
    except IntegrityError:  # the same order id raced in from another request
        session.rollback()
        existing = session.exec(
            select(Conversion).where(
                Conversion.partner_id == partner.id, Conversion.order_id == body.order_id
            )
        ).one()
        return _same_or_conflict(existing, body), False
    session.refresh(row)
    return row, True


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


def request_reversal(
    runtime: Runtime, session: Session, partner: PartnerAuth, conversion_id: int
) -> Conversion:
    row = session.get(Conversion, conversion_id)
    if row is None or row.partner_id != partner.id:
        raise NotFound(f"unknown conversion {conversion_id}")
    if row.state in (ConversionState.REVERSED, ConversionState.REVERSAL_PENDING):
        return row
    if row.state == ConversionState.REJECTED:
        return row
    if row.state == ConversionState.PENDING:  # never reached the chain: cancel it in the outbox
        move(session, row, ConversionState.REJECTED, error="reversed by the partner before settlement")
        session.commit()
        return row
    if row.state == ConversionState.FINAL:
        raise Conflict(f"conversion {conversion_id} is final: its validation window has passed")
    if row.state != ConversionState.SETTLED or row.batch_id is None:
        raise Conflict(f"conversion {conversion_id} is {row.state}; try again once it is settled")
    batch_id = row.batch_id
    batch = runtime.gateway.run("reading the batch", lambda: runtime.deployment.ledger.batch_of(batch_id))
    if batch.finalized or runtime.gateway.chain_time_estimate() >= batch.final_after:
        raise Conflict(
            f"conversion {conversion_id} is past its validation window (final after {batch.final_after})"
        )
    move(session, row, ConversionState.REVERSAL_PENDING)
    session.commit()
    return row


class Settler(PeriodicWorker):
    """Moves the outbox to the chain, one round per ``run_once``."""

    name = "settler"

    def __init__(self, runtime: Runtime) -> None:
        super().__init__()
        self.runtime = runtime
        self._lock = threading.Lock()
        self._final_after: dict[int, int] = {}  # batch id → its finalAfter (immutable on chain)

    def run_once(self) -> dict[str, int]:
        """One round: recover in-flight rows, send pending ones, reverse, finalize. Returns counts."""
        with self._lock:
            stats = {"recovered": 0, "settled": 0, "rejected": 0, "reversed": 0, "finalized": 0}
            try:
                stats["recovered"] = self._recover()
                s, r = self._settle()
                stats["settled"], stats["rejected"] = s, r
                stats["reversed"] = self._reverse()
                stats["finalized"] = self._finalize()
                self.last_error = None
            except (ChainUnreachable, TransactionTimeout) as exc:
                self.last_error = f"chain unreachable: {exc}"
                self.runtime.gateway.available = False
            return stats

    # ------------------------------------------------------------------ steps
    def _session(self) -> Session:
        return Session(self.runtime.engine, expire_on_commit=False)

    def _chain(self) -> Any:
        return self.runtime.gateway.guard()

    def _recover(self) -> int:
        """``submitting`` rows: a transaction may have been mined before the service lost its answer."""
        ledger = self.runtime.deployment.ledger
        n = 0
        with self._session() as s:
            rows = s.exec(select(Conversion).where(Conversion.state == ConversionState.SUBMITTING)).all()
            for row in rows:
                with self._chain():
                    status = ledger.conversion_status(row.agreement_id, row.id or 0)
                unknown = status == ConversionStatus.UNKNOWN
                move(s, row, ConversionState.PENDING if unknown else ConversionState.SETTLED)
                n += 1
            s.commit()
        if n:
            self.runtime.indexer_run()
        return n

    def _settle(self) -> tuple[int, int]:
        size = self.runtime.settings.settle_batch_size
        settled = rejected = 0
        with self._session() as s:
            pending = s.exec(
                select(Conversion)
                .where(Conversion.state == ConversionState.PENDING)
                .order_by(col(Conversion.id))
            ).all()
            by_agreement: dict[int, list[Conversion]] = defaultdict(list)
            for row in pending:
                by_agreement[row.agreement_id].append(row)
            for agreement_id, rows in by_agreement.items():
                agreement = s.get(Agreement, agreement_id)
                assert agreement is not None
                terms = terms_from_json(agreement.terms)
                for start in range(0, len(rows), size):
                    a, b = self._send_batch(s, agreement_id, terms, rows[start : start + size])
                    settled += a
                    rejected += b
        return settled, rejected

    def _send_batch(
        self, s: Session, agreement_id: int, terms: AgreementTerms, rows: list[Conversion]
    ) -> tuple[int, int]:
        ledger = self.runtime.deployment.ledger
        rejected = 0
        while rows:
            for row in rows:
                move(s, row, ConversionState.SUBMITTING, attempts=row.attempts + 1)
            s.commit()  # durable before the transaction leaves; if the node is lost past this point the
            # rows stay ``submitting`` and the next round asks the ledger before sending again
            try:
                with self._chain():
                    tx = ledger.record_conversions(
                        agreement_id,
                        terms,
                        [chain_conversion(r) for r in rows],
                        sender=self.runtime.roles.reporter,
                    )
            except ContractReverted as exc:
                culprit = _conversion_id_of(exc)
                name = type(exc).__name__
                if culprit is not None and name == "SettlementLedgerDuplicateConversion":
                    bad = next(r for r in rows if r.id == culprit)
                    move(s, bad, ConversionState.SETTLED)  # already on chain; the indexer fills in its tx
                    rows = [r for r in rows if r.id != culprit]
                    self._back_to_pending(s, rows)
                    continue
                targets = [r for r in rows if r.id == culprit] if culprit is not None else list(rows)
                for r in targets:
                    move(s, r, ConversionState.REJECTED, error=f"{name}: {exc}")
                rejected += len(targets)
                rows = [r for r in rows if r not in targets]
                self._back_to_pending(s, rows)
                continue
            batch_id = int(tx.value)
            for i, r in enumerate(rows):
                move(
                    s,
                    r,
                    ConversionState.SETTLED,
                    batch_id=batch_id,
                    batch_index=i,
                    tx_hash=tx.tx_hash,
                    block_number=tx.block_number,
                    error=None,
                )
            s.commit()
            return len(rows), rejected
        return 0, rejected

    @staticmethod
    def _back_to_pending(s: Session, rows: list[Conversion]) -> None:
        for r in rows:
            move(s, r, ConversionState.PENDING)
        s.commit()

    def _reverse(self) -> int:
        ledger = self.runtime.deployment.ledger
        n = 0
        with self._session() as s:
            rows = s.exec(
                select(Conversion).where(Conversion.state == ConversionState.REVERSAL_PENDING)
            ).all()
            for row in rows:
                agreement = s.get(Agreement, row.agreement_id)
                assert agreement is not None and row.batch_id is not None
                terms = terms_from_json(agreement.terms)
                try:
                    with self._chain():
                        batch = ledger.conversions_of(row.batch_id)
                        index = next(i for i, c in enumerate(batch) if c.data.id == row.id)
                        tx = ledger.reverse_conversion(
                            row.batch_id,
                            terms,
                            batch[index],
                            merkle_proof(batch, index),
                            sender=self.runtime.roles.reporter,
                        )
                except ContractReverted as exc:
                    error = f"reversal refused: {type(exc).__name__}: {exc}"
                    move(s, row, ConversionState.SETTLED, error=error)
                    s.commit()
                    continue
                move(s, row, ConversionState.REVERSED, reversal_tx_hash=tx.tx_hash)
                s.commit()
                n += 1
        return n

    def _finalize(self) -> int:
        """Finalize batches past their validation window. A batch's ``finalAfter`` never changes, so it is
        read from the chain once and remembered: a round asks the chain only for its clock."""
        ledger = self.runtime.deployment.ledger
        n = 0
        with self._chain():
            now = self.runtime.chain.now()
        with self._session() as s:
            batches = s.exec(
                select(Conversion.batch_id, Conversion.agreement_id)
                .where(col(Conversion.state).in_([ConversionState.SETTLED]))
                .distinct()
            ).all()
            for batch_id, agreement_id in batches:
                if batch_id is None:
                    continue
                final_after = self._final_after.get(batch_id)
                if final_after is None:
                    with self._chain():
                        state = ledger.batch_of(batch_id)
                    final_after = self._final_after[batch_id] = state.final_after
                    finalized = state.finalized
                else:
                    finalized = False  # not seen final by this settler yet; the ledger says otherwise below
                if not finalized and now < final_after:
                    continue
                if not finalized:
                    agreement = s.get(Agreement, agreement_id)
                    assert agreement is not None
                    try:
                        with self._chain():
                            ledger.finalize_batch(batch_id, terms_from_json(agreement.terms))
                    except ContractReverted as exc:
                        if type(exc).__name__ != "SettlementLedgerBatchAlreadyFinalized":
                            log.warning("finalizing batch %s refused: %s", batch_id, exc)
                            continue
                for row in s.exec(
                    select(Conversion).where(
                        Conversion.batch_id == batch_id, Conversion.state == ConversionState.SETTLED
                    )
                ).all():
                    move(s, row, ConversionState.FINAL)
                s.commit()
                self._final_after.pop(batch_id, None)
                n += 1
        return n


def _conversion_id_of(exc: ContractReverted) -> int | None:
    value = getattr(exc, "args_by_name", {}).get("conversionId")
    return None if value is None else int(value)


def outbox_counts(runtime: Runtime) -> dict[str, int]:
    from sqlalchemy import func

    with Session(runtime.engine) as s:
        rows = s.exec(select(Conversion.state, func.count()).group_by(Conversion.state)).all()
    return {str(state): int(n) for state, n in rows}
