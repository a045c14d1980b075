"""The settler: moves the conversions outbox to the chain in batches, one round per ``run_once``.

A round recovers rows whose transaction may have been mined while the service lost the answer (asking the
ledger before any resend), sends the pending rows per agreement in batches, reverses what partners asked to
reverse, and finalizes batches past their validation window. Every state change goes through
:func:`backend.services.outbox.transition`.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from contextlib import AbstractContextManager

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from backend.chain import (
    AgreementTerms,
    ChainUnreachable,
    ContractReverted,
    ConversionData,
    ConversionStatus,
    LedgerClient,
    TransactionTimeout,
    Wallet,
    merkle_proof,
)
from backend.chain import Conversion as ChainConversion
from backend.chain.errors import SettlementLedgerBatchAlreadyFinalized, SettlementLedgerDuplicateConversion
from backend.models import Agreement, Conversion, ConversionState
from backend.privacy import reference_hash
from backend.services.agreements import terms_from_json
from backend.services.gateway import ChainGateway
from backend.services.outbox import transition
from backend.services.worker import PeriodicWorker

log = logging.getLogger("knowledger.settlement")
S = ConversionState


def chain_conversion(row: Conversion) -> ChainConversion:
    """The row as the ledger records it: packed data, the recommendation's reference hash, the subject."""
    assert row.id is not None
    return ChainConversion(
        ConversionData(row.id, row.occurred_at, row.recommended_at, row.value),
        reference_hash("recommendation", row.recommendation_id),
        bytes.fromhex(row.pseudonym.removeprefix("0x")),
    )


class Settler(PeriodicWorker[dict[str, int]]):
    name = "settler"

    def __init__(
        self, engine: Engine, gateway: ChainGateway, ledger: LedgerClient, reporter: Wallet, batch_size: int
    ) -> None:
        super().__init__()
        self._engine = engine
        self._gateway = gateway
        self._ledger = ledger
        self._reporter = reporter
        self._batch_size = batch_size
        self._lock = threading.Lock()
        self._final_after: dict[int, int] = {}  # batch id → its finalAfter (immutable on chain)

    def run_once(self) -> dict[str, int]:
        """One round: recover in-flight rows, send pending ones, reverse, finalize. Returns counts."""
        with self._lock:
            stats = {"recovered": 0, "settled": 0, "rejected": 0, "reversed": 0, "finalized": 0}
            try:
                stats["recovered"] = self._recover()
                stats["settled"], stats["rejected"] = self._settle()
                stats["reversed"] = self._reverse()
                stats["finalized"] = self._finalize()
                self.last_error = None
            except (ChainUnreachable, TransactionTimeout) as exc:
                self.last_error = f"chain unreachable: {exc}"
                self._gateway.available = False
            return stats

    # ------------------------------------------------------------------ steps
    def _session(self) -> Session:
        return Session(self._engine, expire_on_commit=False)

    def _chain(self) -> AbstractContextManager[None]:
        return self._gateway.guard()

    def _recover(self) -> int:
        """``submitting`` rows: a transaction may have been mined before the service lost its answer. The
        ledger says whether it holds each one; those it holds are settled (the indexer adds their
        transaction), the others go back to pending."""
        n = 0
        with self._session() as s:
            rows = s.exec(select(Conversion).where(Conversion.state == S.SUBMITTING)).all()
            for row in rows:
                with self._chain():
                    status = self._ledger.conversion_status(row.agreement_id, row.id or 0)
                transition(s, row, S.PENDING if status == ConversionStatus.UNKNOWN else S.SETTLED)
                n += 1
            s.commit()
        return n

    def _settle(self) -> tuple[int, int]:
        settled = rejected = 0
        with self._session() as s:
            pending = s.exec(
                select(Conversion).where(Conversion.state == S.PENDING).order_by(col(Conversion.id))
            ).all()
            by_agreement: dict[int, list[Conversion]] = defaultdict(list)
            for row in pending:
                by_agreement[row.agreement_id].append(row)
            for agreement_id, rows in by_agreement.items():
                agreement = s.get(Agreement, agreement_id)
                assert agreement is not None
                terms = terms_from_json(agreement.terms)
                for start in range(0, len(rows), self._batch_size):
                    a, b = self._send_batch(s, agreement_id, terms, rows[start : start + self._batch_size])
                    settled += a
                    rejected += b
        return settled, rejected

    def _send_batch(
        self, s: Session, agreement_id: int, terms: AgreementTerms, rows: list[Conversion]
    ) -> tuple[int, int]:
        rejected = 0
        while rows:
            for row in rows:
                transition(s, row, S.SUBMITTING, attempts=row.attempts + 1)
            s.commit()  # durable before the transaction leaves; if the node is lost past this point the
            # rows stay ``submitting`` and the next round asks the ledger before sending again
            try:
                with self._chain():
                    tx = self._ledger.record_conversions(
                        agreement_id, terms, [chain_conversion(r) for r in rows], sender=self._reporter
                    )
            except SettlementLedgerDuplicateConversion as exc:
                duplicate = int(exc.args_by_name["conversionId"])
                # already on chain (an earlier send whose answer was lost); the indexer adds its tx
                transition(s, next(r for r in rows if r.id == duplicate), S.SETTLED)
                rows = [r for r in rows if r.id != duplicate]
                self._back_to_pending(s, rows)
                continue
            except ContractReverted as exc:
                culprit = _conversion_id_of(exc)
                targets = [r for r in rows if r.id == culprit] if culprit is not None else list(rows)
                for r in targets:
                    transition(s, r, S.REJECTED, error=f"{type(exc).__name__}: {exc}")
                rejected += len(targets)
                rows = [r for r in rows if r not in targets]
                self._back_to_pending(s, rows)
                continue
            batch_id = int(tx.value)
            for i, r in enumerate(rows):
                transition(
                    s,
                    r,
                    S.SETTLED,
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
            transition(s, r, S.PENDING)
        s.commit()

    def _reverse(self) -> int:
        n = 0
        with self._session() as s:
            rows = s.exec(select(Conversion).where(Conversion.state == S.REVERSAL_PENDING)).all()
            for row in rows:
                agreement = s.get(Agreement, row.agreement_id)
                assert agreement is not None and row.batch_id is not None
                terms = terms_from_json(agreement.terms)
                try:
                    with self._chain():
                        batch = self._ledger.conversions_of(row.batch_id)
                        index = next(i for i, c in enumerate(batch) if c.data.id == row.id)
                        tx = self._ledger.reverse_conversion(
                            row.batch_id,
                            terms,
                            batch[index],
                            merkle_proof(batch, index),
                            sender=self._reporter,
                        )
                except ContractReverted as exc:
                    transition(s, row, S.SETTLED, error=f"reversal refused: {type(exc).__name__}: {exc}")
                    s.commit()
                    continue
                transition(s, row, S.REVERSED, reversal_tx_hash=tx.tx_hash)
                s.commit()
                n += 1
        return n

    def _finalize(self) -> int:
        """Finalize batches past their validation window. A batch's ``finalAfter`` never changes, so it is
        read from the chain once and remembered: a round asks the chain only for its clock."""
        n = 0
        with self._chain():
            now = self._gateway.client.now()
        with self._session() as s:
            batches = s.exec(
                select(Conversion.batch_id, Conversion.agreement_id)
                .where(Conversion.state == S.SETTLED)
                .distinct()
            ).all()
            for batch_id, agreement_id in batches:
                if batch_id is None:
                    continue
                final_after = self._final_after.get(batch_id)
                if final_after is None:
                    with self._chain():
                        state = self._ledger.batch_of(batch_id)
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
                            self._ledger.finalize_batch(batch_id, terms_from_json(agreement.terms))
                    except SettlementLedgerBatchAlreadyFinalized:
                        pass
                    except ContractReverted as exc:
                        log.warning("finalizing batch %s refused: %s", batch_id, exc)
                        continue
                for row in s.exec(
                    select(Conversion).where(Conversion.batch_id == batch_id, Conversion.state == S.SETTLED)
                ).all():
                    transition(s, row, S.FINAL)
                s.commit()
                self._final_after.pop(batch_id, None)
                n += 1
        return n


def _conversion_id_of(exc: ContractReverted) -> int | None:
    value = getattr(exc, "args_by_name", {}).get("conversionId")
    return None if value is None else int(value)
