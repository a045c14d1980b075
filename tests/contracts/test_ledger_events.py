"""Typed event reads: the ledger's events come back as dataclasses (filtered by agreement, batch, conversion
and block range), and ``Deployment.events`` returns the three contracts' events in chain order."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest

from backend.chain import (
    BatchFinalizedEvent,
    Conversion,
    ConversionReversedEvent,
    ConversionsRecordedEvent,
    Event,
    TxResult,
)
from backend.chain.types import conversions_root, merkle_proof, split_commission

from .conftest import VALIDATION_WINDOW, Agreement, ChainHelper


@dataclass
class History:
    a: Agreement
    b: Agreement
    batches: list[tuple[TxResult, Agreement, list[Conversion]]]
    reversal: TxResult
    reversed: Conversion
    final: TxResult


@pytest.fixture
def history(chain: ChainHelper) -> History:
    """Two agreements; three batches (two of the first agreement), one reversal, one finalization."""
    a = chain.active_agreement()
    b = chain.active_agreement(commission_rate=70_000)
    convs_1 = [chain.conversion(s, value=10_000 * (i + 1)) for i, s in enumerate(chain.consented_subjects(3))]
    r1 = chain.record(a, convs_1)
    convs_2 = [chain.conversion(s) for s in chain.consented_subjects(1)]
    r2 = chain.record(b, convs_2)
    convs_3 = [chain.conversion(s, value=5_000) for s in chain.consented_subjects(2)]
    r3 = chain.record(a, convs_3)
    reversal = chain.ledger.reverse_conversion(
        r1.value, a.terms, convs_1[1], merkle_proof(convs_1, 1), sender=chain.acc.reporter
    )
    chain.advance(VALIDATION_WINDOW + 1)
    final = chain.ledger.finalize_batch(r3.value, a.terms, sender=chain.acc.outsider)
    return History(a, b, [(r1, a, convs_1), (r2, b, convs_2), (r3, a, convs_3)], reversal, convs_1[1], final)


def test_conversions_recorded_are_typed_with_their_conversions(chain: ChainHelper, history: History) -> None:
    batches = history.batches
    events = chain.ledger.conversions_recorded()
    assert all(isinstance(e, ConversionsRecordedEvent) for e in events)
    assert len(events) == len(batches)
    for event, (result, agreement, convs) in zip(events, batches, strict=True):
        assert (event.agreement_id, event.batch_id) == (agreement.id, result.value)
        assert list(event.conversions) == convs
        assert event.conversions_root == conversions_root(convs)
        assert (event.tx_hash, event.block_number) == (result.tx_hash, result.block_number)
    # the typed read agrees with the transaction's own decoded event
    first = batches[0][0].event("ConversionsRecorded")
    assert events[0].log_index == first.log_index


def test_conversions_recorded_filters(chain: ChainHelper, history: History) -> None:
    a, b = history.a, history.b
    (r1, _, _), (r2, _, convs_2), (r3, _, _) = history.batches
    assert [e.batch_id for e in chain.ledger.conversions_recorded(a.id)] == [r1.value, r3.value]
    only_b = chain.ledger.conversions_recorded(b.id)
    assert [e.batch_id for e in only_b] == [r2.value] and list(only_b[0].conversions) == convs_2
    assert [e.agreement_id for e in chain.ledger.conversions_recorded(batch_id=r3.value)] == [a.id]
    assert chain.ledger.conversions_recorded(a.id, r2.value) == []
    assert chain.ledger.conversions_recorded(a.id, r3.value)[0].batch_id == r3.value
    # block range, both ends inclusive
    upto_first = chain.ledger.conversions_recorded(to_block=r1.block_number)
    assert [e.batch_id for e in upto_first] == [r1.value]
    from_second = chain.ledger.conversions_recorded(from_block=r2.block_number, to_block=r2.block_number)
    assert [e.batch_id for e in from_second] == [r2.value]
    assert (
        chain.ledger.conversions_recorded(from_block=r3.block_number + 1, to_block=r3.block_number + 1) == []
    )


def test_conversion_reversed_and_batch_finalized(chain: ChainHelper, history: History) -> None:
    a, b = history.a, history.b
    (r1, _, convs_1), _, (r3, _, _) = history.batches
    victim, reversal, final = history.reversed, history.reversal, history.final
    (reversed_,) = chain.ledger.conversion_reversed(a.id)
    assert isinstance(reversed_, ConversionReversedEvent)
    commission, _ = split_commission(a.terms, victim.data.value)
    assert (reversed_.agreement_id, reversed_.batch_id, reversed_.conversion_id, reversed_.commission) == (
        a.id,
        r1.value,
        victim.data.id,
        commission,
    )
    assert reversed_.tx_hash == reversal.tx_hash
    assert chain.ledger.conversion_reversed(b.id) == []
    assert chain.ledger.conversion_reversed(conversion_id=victim.data.id) == [reversed_]
    assert chain.ledger.conversion_reversed(batch_id=r3.value) == []

    (finalized,) = chain.ledger.batch_finalized(a.id)
    assert isinstance(finalized, BatchFinalizedEvent)
    assert (finalized.agreement_id, finalized.batch_id) == (a.id, r3.value)
    assert (finalized.tx_hash, finalized.block_number) == (final.tx_hash, final.block_number)
    assert chain.ledger.batch_finalized(batch_id=r1.value) == []
    # conversions_of still reads a batch back for a proof
    assert chain.ledger.conversions_of(r1.value) == convs_1


def test_deployment_events_are_every_contract_event_in_chain_order(
    chain: ChainHelper, history: History
) -> None:
    d = chain.d
    events = d.events()
    assert all(isinstance(e, Event) for e in events)
    positions = [(e.block_number or 0, e.log_index) for e in events]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    per_contract = [d.client.get_logs(address, [], d.from_block) for address in d.addresses.values()]
    assert Counter((e.tx_hash, e.log_index) for e in events) == Counter(
        (e.tx_hash, e.log_index) for logs in per_contract for e in logs
    )
    by_contract = {name: {e.name for e in events if e.address == addr} for name, addr in d.addresses.items()}
    assert "ConsentGranted" in by_contract["ConsentRegistry"]
    assert {"AgreementProposed", "AgreementActivated"} <= by_contract["PartnershipAgreements"]
    assert by_contract["SettlementLedger"] == {"ConversionsRecorded", "ConversionReversed", "BatchFinalized"}
    # a block range keeps exactly the events inside it
    last_block = history.final.block_number
    assert d.events(last_block, last_block) == [e for e in events if e.block_number == last_block]
    assert d.events(last_block + 1) == []
