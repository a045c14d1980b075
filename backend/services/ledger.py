"""Partner statements and their reconciliation against the chain.

The statement is served from the service's own tables (the outbox, kept in step by the indexer). The
reconciliation recomputes it from the chain alone: the ledger's events for the agreement, read straight
from the node, split with the agreement's terms (checked against the on-chain terms hash), and the ledger's
own per-party totals; every difference is reported to the smallest unit.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlmodel import Session, col, select

from backend.chain import ChainClient, Deployment, split_commission
from backend.models import Conversion, ConversionState
from backend.schemas.ledger import (
    Buckets,
    ConversionPage,
    ConversionReconciliation,
    OutboxSummary,
    PartyReconciliation,
    PartyTotals,
    Reconciliation,
    Statement,
)
from backend.services.agreements import get_agreement, terms_from_json
from backend.services.conversions import conversion_public
from backend.services.gateway import ChainGateway

BUCKETS = ("provisional", "final", "reversed")
_BUCKET_OF = {
    ConversionState.SETTLED: "provisional",
    ConversionState.REVERSAL_PENDING: "provisional",
    ConversionState.FINAL: "final",
    ConversionState.REVERSED: "reversed",
}


def _totals(
    engine_rows: list[Conversion], parties: list[str]
) -> tuple[dict[str, dict[str, int]], OutboxSummary]:
    totals = {a: dict.fromkeys(BUCKETS, 0) for a in parties}
    outbox = OutboxSummary(pending=0, pending_value=0, rejected=0)
    for row in engine_rows:
        bucket = _BUCKET_OF.get(ConversionState(row.state))
        if bucket is None:
            if row.state in (ConversionState.PENDING, ConversionState.SUBMITTING):
                outbox.pending += 1
                outbox.pending_value += row.value
            elif row.state == ConversionState.REJECTED:
                outbox.rejected += 1
            continue
        for account, amount in zip(parties, row.amounts, strict=True):
            totals[account][bucket] += int(amount)
    return totals, outbox


def _rows(session: Session, agreement_id: int) -> list[Conversion]:
    return list(
        session.exec(
            select(Conversion).where(Conversion.agreement_id == agreement_id).order_by(col(Conversion.id))
        ).all()
    )


class LedgerService:
    def __init__(self, gateway: ChainGateway, deployment: Deployment) -> None:
        self._gateway = gateway
        self._deployment = deployment

    @staticmethod
    def statement(
        session: Session,
        agreement_id: int,
        partner_id: str,
        *,
        state: ConversionState | None = None,
        since: int | None = None,
        until: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Statement:
        """Per party: provisional, final and reversed totals; the outbox (not yet on chain); the
        conversions, filtered by state and chain time and paged."""
        agreement = get_agreement(session, agreement_id, partner_id)
        parties = [p["account"] for p in agreement.terms["parties"]]
        rows = _rows(session, agreement.id)
        totals, outbox = _totals(rows, parties)
        listed = [
            r
            for r in rows
            if (state is None or r.state == state.value)
            and (since is None or r.occurred_at >= since)
            and (until is None or r.occurred_at < until)
        ]
        return Statement(
            agreement_id=agreement.id,
            terms_hash=agreement.terms_hash,
            currency=agreement.terms.get("currency", "CNY"),
            parties=[PartyTotals(account=a, **totals[a]) for a in parties],
            totals=Buckets(**{b: sum(totals[a][b] for a in parties) for b in BUCKETS}),
            outbox=outbox,
            conversions=ConversionPage(
                total=len(listed), items=[conversion_public(r) for r in listed[offset : offset + limit]]
            ),
        )

    def reconcile(self, session: Session, agreement_id: int, partner_id: str) -> Reconciliation:
        """Recompute the agreement's statement from the chain and compare, to the smallest unit."""
        agreement = get_agreement(session, agreement_id, partner_id)
        terms = terms_from_json(agreement.terms)
        parties = [p.account for p in terms.parties]
        d = self._deployment
        client: ChainClient = self._gateway.client

        def read() -> tuple[Any, ...]:
            head = client.head()
            recorded = d.ledger.conversions_recorded(agreement.id, to_block=head.number)
            reversals = d.ledger.conversion_reversed(agreement.id, to_block=head.number)
            finals = d.ledger.batch_finalized(agreement.id, to_block=head.number)
            onchain = {a: d.ledger.totals_of(agreement.id, a) for a in parties}
            state = d.agreements.agreement_of(agreement.id)
            return head, recorded, reversals, finals, onchain, state

        head, recorded, reversals, finals, onchain, state = self._gateway.run(
            "reconciling with the chain", read
        )
        terms_ok = "0x" + bytes(state.terms_hash).hex() == agreement.terms_hash == "0x" + terms.hash().hex()

        events_totals = {a: dict.fromkeys(BUCKETS, 0) for a in parties}
        by_batch: dict[int, list[tuple[int, list[int]]]] = defaultdict(list)
        chain_conversions: dict[int, dict[str, Any]] = {}
        for e in recorded:
            for conv in e.conversions:
                _, amounts = split_commission(terms, conv.data.value)
                by_batch[e.batch_id].append((conv.data.id, amounts))
                chain_conversions[conv.data.id] = {"tx_hash": e.tx_hash, "value": conv.data.value}
        reversed_ids = {e.conversion_id for e in reversals}
        finalized = {e.batch_id for e in finals}
        for batch, items in by_batch.items():
            for conv_id, amounts in items:
                bucket = (
                    "reversed"
                    if conv_id in reversed_ids
                    else ("final" if batch in finalized else "provisional")
                )
                for account, amount in zip(parties, amounts, strict=True):
                    events_totals[account][bucket] += amount

        rows = _rows(session, agreement.id)
        served_totals, _ = _totals(rows, parties)
        party_reports = []
        ok = terms_ok
        for a in parties:
            chain_totals = {
                "provisional": onchain[a].provisional,
                "final": onchain[a].final,
                "reversed": onchain[a].reversed,
            }
            diff_statement = {b: served_totals[a][b] - events_totals[a][b] for b in BUCKETS}
            diff_ledger = {b: chain_totals[b] - events_totals[a][b] for b in BUCKETS}
            ok = ok and not any(diff_statement.values()) and not any(diff_ledger.values())
            party_reports.append(
                PartyReconciliation(
                    account=a,
                    statement=Buckets(**served_totals[a]),
                    from_events=Buckets(**events_totals[a]),
                    ledger_totals=Buckets(**chain_totals),
                    statement_minus_events=Buckets(**diff_statement),
                    ledger_minus_events=Buckets(**diff_ledger),
                )
            )

        ours = {r.id: r for r in rows if r.state in _BUCKET_OF and r.id is not None}
        missing_on_chain = sorted(i for i in ours if i not in chain_conversions)
        missing_in_statement = sorted(i for i in chain_conversions if i not in ours)
        mismatched = sorted(
            i
            for i, r in ours.items()
            if i in chain_conversions
            and (
                r.value != chain_conversions[i]["value"]
                or (r.tx_hash and r.tx_hash != chain_conversions[i]["tx_hash"])
            )
        )
        ok = ok and not missing_on_chain and not missing_in_statement and not mismatched
        return Reconciliation(
            agreement_id=agreement.id,
            ok=ok,
            checked_at_block=head.number,
            terms_hash_matches=terms_ok,
            events={
                "ConversionsRecorded": len(recorded),
                "ConversionReversed": len(reversals),
                "BatchFinalized": len(finals),
            },
            parties=party_reports,
            conversions=ConversionReconciliation(
                on_chain=len(chain_conversions),
                in_statement=len(ours),
                missing_on_chain=missing_on_chain,
                missing_in_statement=missing_in_statement,
                mismatched=mismatched,
            ),
        )
