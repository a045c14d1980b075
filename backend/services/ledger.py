"""Partner statements and their reconciliation against the chain.

The statement is served from the service's own tables (the outbox, kept in step by the indexer). The
reconciliation recomputes it from the chain alone: the ledger's events for the agreement, read straight
from the node, split with the agreement's terms (checked against the on-chain terms hash), and the ledger's
own per-party totals; every difference is reported to the smallest unit.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from eth_utils import keccak
from sqlmodel import Session, col, select

from backend.chain import Conversion as ChainConversion
from backend.chain import split_commission
from backend.models import Agreement, Conversion, ConversionState
from backend.services.agreements import terms_from_json
from backend.services.runtime import Runtime

BUCKETS = ("provisional", "final", "reversed")
_BUCKET_OF = {
    ConversionState.SETTLED: "provisional",
    ConversionState.REVERSAL_PENDING: "provisional",
    ConversionState.FINAL: "final",
    ConversionState.REVERSED: "reversed",
}


def statement(
    session: Session,
    agreement: Agreement,
    *,
    state: str | None = None,
    since: int | None = None,
    until: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> dict[str, Any]:
    """Per party: provisional, final and reversed totals; the outbox (not yet on chain); the conversions."""
    parties = [p["account"] for p in agreement.terms["parties"]]
    totals = {a: dict.fromkeys(BUCKETS, 0) for a in parties}
    outbox = {"pending": 0, "pending_value": 0, "rejected": 0}
    rows = session.exec(
        select(Conversion).where(Conversion.agreement_id == agreement.id).order_by(col(Conversion.id))
    ).all()
    for row in rows:
        bucket = _BUCKET_OF.get(ConversionState(row.state))
        if bucket is None:
            if row.state in (ConversionState.PENDING, ConversionState.SUBMITTING):
                outbox["pending"] += 1
                outbox["pending_value"] += row.value
            elif row.state == ConversionState.REJECTED:
                outbox["rejected"] += 1
            continue
        for account, amount in zip(parties, row.amounts, strict=True):
            totals[account][bucket] += int(amount)
    listed = [
        r
        for r in rows
        if (state is None or r.state == state)
        and (since is None or r.occurred_at >= since)
        and (until is None or r.occurred_at < until)
    ]
    return {
        "agreement_id": agreement.id,
        "terms_hash": agreement.terms_hash,
        "currency": agreement.terms.get("currency", "CNY"),
        "parties": [{"account": a, **totals[a]} for a in parties],
        "totals": {b: sum(totals[a][b] for a in parties) for b in BUCKETS},
        "outbox": outbox,
        "conversions": {
            "total": len(listed),
            "items": [conversion_public(r) for r in listed[offset : offset + limit]],
        },
    }


def conversion_public(r: Conversion) -> dict[str, Any]:
    return {
        "id": r.id,
        "order_id": r.order_id,
        "recommendation_id": r.recommendation_id,
        "agreement_id": r.agreement_id,
        "product_id": r.product_id,
        "value": r.value,
        "occurred_at": r.occurred_at,
        "state": r.state,
        "commission": r.commission,
        "amounts": [int(a) for a in r.amounts],
        "batch_id": r.batch_id,
        "tx_hash": r.tx_hash,
        "block_number": r.block_number,
        "reversal_tx_hash": r.reversal_tx_hash,
        "error": r.error,
    }


_TOPIC = {
    "ConversionsRecorded": keccak(
        text="ConversionsRecorded(uint256,uint256,bytes32,(uint256,bytes32,bytes32)[])"
    ),
    "ConversionReversed": keccak(text="ConversionReversed(uint256,uint256,uint64,uint256)"),
    "BatchFinalized": keccak(text="BatchFinalized(uint256,uint256)"),
}


def reconcile(runtime: Runtime, session: Session, agreement: Agreement) -> dict[str, Any]:
    """Recompute ``agreement``'s statement from the chain and compare, to the smallest unit."""
    terms = terms_from_json(agreement.terms)
    parties = [p.account for p in terms.parties]
    d = runtime.deployment
    topic_id = int(agreement.id).to_bytes(32, "big")

    def read() -> tuple[Any, ...]:
        head = runtime.chain.head()
        logs = {
            name: d.client.get_logs(d.ledger.address, [topic, topic_id], d.ledger.from_block, head.number)
            for name, topic in _TOPIC.items()
        }
        onchain = {a: d.ledger.totals_of(agreement.id, a) for a in parties}
        state = d.agreements.agreement_of(agreement.id)
        return head, logs, onchain, state

    head, logs, onchain, state = runtime.gateway.run("reconciling with the chain", read)
    terms_ok = "0x" + bytes(state.terms_hash).hex() == agreement.terms_hash == "0x" + terms.hash().hex()

    # recompute from events
    events_totals = {a: dict.fromkeys(BUCKETS, 0) for a in parties}
    by_batch: dict[int, list[tuple[int, list[int], int]]] = defaultdict(list)  # batch → (id, split, value)
    chain_conversions: dict[int, dict[str, Any]] = {}
    for e in logs["ConversionsRecorded"]:
        batch = int(e.args["batchId"])
        for c in e.args["conversions"]:
            conv = ChainConversion.from_abi(c)
            _, amounts = split_commission(terms, conv.data.value)
            by_batch[batch].append((conv.data.id, amounts, conv.data.value))
            chain_conversions[conv.data.id] = {
                "batch_id": batch,
                "tx_hash": e.tx_hash,
                "value": conv.data.value,
            }
    reversed_ids = {int(e.args["conversionId"]) for e in logs["ConversionReversed"]}
    finalized = {int(e.args["batchId"]) for e in logs["BatchFinalized"]}
    for batch, items in by_batch.items():
        for conv_id, amounts, _ in items:
            bucket = (
                "reversed" if conv_id in reversed_ids else ("final" if batch in finalized else "provisional")
            )
            for account, amount in zip(parties, amounts, strict=True):
                events_totals[account][bucket] += amount

    served = statement(session, agreement, limit=0)
    served_totals = {p["account"]: {b: p[b] for b in BUCKETS} for p in served["parties"]}
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
            {
                "account": a,
                "statement": served_totals[a],
                "from_events": events_totals[a],
                "ledger_totals": chain_totals,
                "statement_minus_events": diff_statement,
                "ledger_minus_events": diff_ledger,
            }
        )

    rows = session.exec(select(Conversion).where(Conversion.agreement_id == agreement.id)).all()
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
    return {
        "agreement_id": agreement.id,
        "ok": ok,
        "checked_at_block": head.number,
        "terms_hash_matches": terms_ok,
        "events": {k: len(v) for k, v in logs.items()},
        "parties": party_reports,
        "conversions": {
            "on_chain": len(chain_conversions),
            "in_statement": len(ours),
            "missing_on_chain": missing_on_chain,
            "missing_in_statement": missing_in_statement,
            "mismatched": mismatched,
        },
    }
