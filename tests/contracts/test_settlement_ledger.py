"""SettlementLedger: recording (single and batch), the exact split, reversal, finalization, the views, and
each refusal with its named error."""

from __future__ import annotations

from dataclasses import replace

import pytest

from backend.chain import errors
from backend.chain.types import (
    Conversion,
    ConversionData,
    ConversionStatus,
    Purpose,
    conversions_root,
    merkle_proof,
    split_commission,
)

from .conftest import DAY, VALIDATION_WINDOW, Agreement, ChainHelper, next_conversion_id, rand32, same_address


@pytest.fixture
def agreement(chain: ChainHelper) -> Agreement:
    return chain.active_agreement()


def test_views_name_the_linked_contracts(chain: ChainHelper) -> None:
    assert same_address(chain.ledger.registry(), chain.consent.address)
    assert same_address(chain.ledger.agreements(), chain.agreements.address)
    assert chain.ledger.batch_count() == 0


def test_record_single_conversion(chain: ChainHelper, agreement: Agreement) -> None:
    (s,) = chain.consented_subjects(1)
    c = chain.conversion(s, value=1_000_000)
    result = chain.ledger.record_conversion(agreement.id, agreement.terms, c, sender=chain.acc.reporter)
    assert result.value == 1 == chain.ledger.batch_count()
    ev = result.event("ConversionsRecorded")
    assert ev["agreementId"] == agreement.id and ev["batchId"] == 1
    assert ev["conversionsRoot"] == c.leaf() == conversions_root([c])
    assert [Conversion.from_abi(x) for x in ev["conversions"]] == [c]
    assert chain.ledger.conversions_of(1) == [c]
    assert chain.ledger.conversion_status(agreement.id, c.data.id) == ConversionStatus.RECORDED
    commission, amounts = split_commission(agreement.terms, 1_000_000)
    assert commission == 50_000 and amounts == [25_000, 15_000, 10_000]
    assert chain.totals(agreement) == [(a, 0, 0) for a in amounts]
    batch = chain.ledger.batch_of(1)
    assert batch.agreement_id == agreement.id and batch.count == 1 and not batch.finalized
    assert batch.conversions_root == c.leaf()
    assert batch.final_after == c.data.time + VALIDATION_WINDOW
    assert list(batch.amounts) == amounts


def test_record_batch(chain: ChainHelper, agreement: Agreement) -> None:
    subjects = chain.consented_subjects(5)
    chain.advance(100)
    t0 = chain.now()
    convs = [chain.conversion(s, value=1_000 + 37 * i, time=t0 - 10 * i) for i, s in enumerate(subjects)]
    result = chain.record(agreement, convs)
    ev = result.event("ConversionsRecorded")
    assert ev["conversionsRoot"] == conversions_root(convs)
    assert [Conversion.from_abi(x) for x in ev["conversions"]] == convs
    assert len(result.events) == 1  # one event per batch
    expected = [0, 0, 0]
    for c in convs:
        for j, a in enumerate(split_commission(agreement.terms, c.data.value)[1]):
            expected[j] += a
    assert [t[0] for t in chain.totals(agreement)] == expected
    batch = chain.ledger.batch_of(result.value)
    assert list(batch.amounts) == expected and batch.count == 5
    assert batch.final_after == t0 + VALIDATION_WINDOW  # the latest conversion time + the window
    assert all(
        chain.ledger.conversion_status(agreement.id, c.data.id) == ConversionStatus.RECORDED for c in convs
    )


def test_split_commission_view(chain: ChainHelper, agreement: Agreement) -> None:
    assert chain.ledger.split_commission(agreement.terms, 0) == (0, [0, 0, 0])
    for value in (1, 19, 999_999, 10**18 + 7, 2**112 - 1):
        assert chain.ledger.split_commission(agreement.terms, value) == split_commission(
            agreement.terms, value
        )
    # the remainder goes to parties[0]
    terms = chain.agreement_terms(commission_rate=1_000_000)
    terms = replace(
        terms,
        parties=tuple(
            replace(p, share=s) for p, s in zip(terms.parties, (333_334, 333_333, 333_333), strict=True)
        ),
    )
    assert chain.ledger.split_commission(terms, 10) == (10, [4, 3, 3])


def test_reverse_within_the_validation_window(chain: ChainHelper, agreement: Agreement) -> None:
    subjects = chain.consented_subjects(3)
    convs = [chain.conversion(s, value=100_000 * (i + 1)) for i, s in enumerate(subjects)]
    batch_id = chain.record(agreement, convs).value
    before = chain.totals(agreement)
    victim = convs[1]
    commission, amounts = split_commission(agreement.terms, victim.data.value)
    result = chain.ledger.reverse_conversion(
        batch_id, agreement.terms, victim, merkle_proof(convs, 1), sender=chain.acc.reporter
    )
    ev = result.event("ConversionReversed")
    assert (ev["agreementId"], ev["batchId"], ev["conversionId"], ev["commission"]) == (
        agreement.id,
        batch_id,
        victim.data.id,
        commission,
    )
    assert chain.ledger.conversion_status(agreement.id, victim.data.id) == ConversionStatus.REVERSED
    after = chain.totals(agreement)
    for j in range(3):
        assert after[j] == (before[j][0] - amounts[j], 0, amounts[j])
    batch = chain.ledger.batch_of(batch_id)
    assert list(batch.amounts) == [before[j][0] - amounts[j] for j in range(3)]


@pytest.mark.parametrize("n", [2, 7])
def test_merkle_root_and_every_proof_match_python(chain: ChainHelper, agreement: Agreement, n: int) -> None:
    convs = [chain.conversion(s, value=1_000 + i) for i, s in enumerate(chain.consented_subjects(n))]
    batch_id = chain.record(agreement, convs).value
    assert chain.ledger.batch_of(batch_id).conversions_root == conversions_root(convs)
    for i, c in enumerate(convs):  # every leaf's proof verifies on chain
        chain.ledger.reverse_conversion(
            batch_id, agreement.terms, c, merkle_proof(convs, i), sender=chain.acc.reporter
        )
    assert all(
        chain.ledger.conversion_status(agreement.id, c.data.id) == ConversionStatus.REVERSED for c in convs
    )
    assert chain.ledger.batch_of(batch_id).amounts == (0, 0, 0)
    assert [t[0] for t in chain.totals(agreement)] == [0, 0, 0]


def test_reverse_in_a_one_conversion_batch_needs_no_proof(chain: ChainHelper, agreement: Agreement) -> None:
    (s,) = chain.consented_subjects(1)
    c = chain.conversion(s)
    batch_id = chain.ledger.record_conversion(
        agreement.id, agreement.terms, c, sender=chain.acc.reporter
    ).value
    chain.ledger.reverse_conversion(batch_id, agreement.terms, c, [], sender=chain.acc.reporter)
    assert chain.totals(agreement) == [(0, 0, a) for a in split_commission(agreement.terms, c.data.value)[1]]


def test_finalize_after_the_window_moves_provisional_to_final(
    chain: ChainHelper, agreement: Agreement
) -> None:
    subjects = chain.consented_subjects(3)
    convs = [chain.conversion(s, value=77_777) for s in subjects]
    batch_id = chain.record(agreement, convs).value
    chain.ledger.reverse_conversion(
        batch_id, agreement.terms, convs[0], merkle_proof(convs, 0), sender=chain.acc.reporter
    )
    remaining = list(chain.ledger.batch_of(batch_id).amounts)
    reversed_ = [t[2] for t in chain.totals(agreement)]
    chain.advance(VALIDATION_WINDOW + 1)
    result = chain.ledger.finalize_batch(batch_id, agreement.terms, sender=chain.acc.outsider)  # anyone
    ev = result.event("BatchFinalized")
    assert (ev["agreementId"], ev["batchId"]) == (agreement.id, batch_id)
    assert chain.ledger.batch_of(batch_id).finalized
    assert chain.totals(agreement) == [(0, remaining[j], reversed_[j]) for j in range(3)]


def test_finalize_works_after_the_agreement_ends(chain: ChainHelper, agreement: Agreement) -> None:
    (s,) = chain.consented_subjects(1)
    c = chain.conversion(s)
    batch_id = chain.ledger.record_conversion(
        agreement.id, agreement.terms, c, sender=chain.acc.reporter
    ).value
    chain.agreements.terminate(agreement.id, agreement.terms, sender=chain.acc.partner)
    chain.advance(VALIDATION_WINDOW)
    chain.ledger.finalize_batch(batch_id, agreement.terms, sender=chain.acc.outsider)
    assert chain.totals(agreement)[0][1] > 0


def test_conversion_before_a_revocation_still_settles(chain: ChainHelper, agreement: Agreement) -> None:
    (s,) = chain.consented_subjects(1)
    chain.advance(60)
    converted_at = chain.now()
    chain.advance(60)
    chain.consent.revoke(s, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION, sender=chain.acc.registrar)
    chain.record(agreement, [chain.conversion(s, time=converted_at)])


def test_status_of_unknown_and_batch_of_unknown(chain: ChainHelper) -> None:
    assert chain.ledger.conversion_status(1, 123_456_789) == ConversionStatus.UNKNOWN
    batch = chain.ledger.batch_of(99)
    assert (batch.agreement_id, batch.count, batch.amounts) == (0, 0, ())


def test_ids_anywhere_in_the_bitmap(chain: ChainHelper, agreement: Agreement) -> None:
    subjects = chain.consented_subjects(4)
    ids = [255, 256, 2**64 - 1, 1]
    convs = [chain.conversion(s, conversion_id=i) for s, i in zip(subjects, ids, strict=True)]
    chain.record(agreement, convs)
    assert [chain.ledger.conversion_status(agreement.id, i) for i in ids] == [ConversionStatus.RECORDED] * 4
    assert chain.ledger.conversion_status(agreement.id, 257) == ConversionStatus.UNKNOWN


# ------------------------------------------------------------------------------- the in-force window


def test_conversions_before_a_termination_are_recorded_after_it(
    chain: ChainHelper, agreement: Agreement
) -> None:
    """A party terminating before the reporter's batch lands does not cancel commission already earned."""
    (s,) = chain.consented_subjects(1)
    earned = chain.conversion(s, value=1_000_000)
    chain.advance(60)
    chain.agreements.terminate(agreement.id, agreement.terms, sender=chain.acc.partner)
    chain.advance(60)
    batch_id = chain.record(agreement, [earned]).value
    _, amounts = split_commission(agreement.terms, earned.data.value)
    assert [t[0] for t in chain.totals(agreement)] == amounts
    assert chain.ledger.batch_of(batch_id).agreement_id == agreement.id


def test_conversions_before_a_supersession_are_recorded_after_it(
    chain: ChainHelper, agreement: Agreement
) -> None:
    (s,) = chain.consented_subjects(1)
    earned = chain.conversion(s, value=1_000_000)
    chain.advance(60)
    amendment = chain.activate(
        chain.propose(chain.agreement_terms(commission_rate=60_000, supersedes=agreement.id))
    )
    chain.advance(60)
    chain.record(agreement, [earned])  # under the old terms, in force when it converted
    with pytest.raises(errors.SettlementLedgerOutsideAgreementTerm):
        chain.record(amendment, [chain.conversion(s, time=earned.data.time)])  # not under the new ones
    later = chain.conversion(s)
    with pytest.raises(errors.SettlementLedgerOutsideAgreementTerm):
        chain.record(agreement, [later])
    chain.record(amendment, [later])


def test_conversions_just_before_valid_until_are_recorded_after_it(chain: ChainHelper) -> None:
    agreement = chain.active_agreement(valid_until=chain.next_block_time() + 2 * DAY)
    valid_until = agreement.terms.valid_until
    (s,) = chain.consented_subjects(1)
    chain.travel_to(valid_until - 100)
    last = chain.conversion(s)
    assert last.data.time == valid_until - 100
    chain.travel_to(valid_until + 100)  # the reporter's batch lands after validUntil
    assert not chain.agreements.is_active(agreement.id)
    chain.record(agreement, [last])
    assert chain.ledger.conversion_status(agreement.id, last.data.id) == ConversionStatus.RECORDED
    after = chain.conversion(s, time=agreement.terms.valid_until)
    with pytest.raises(errors.SettlementLedgerOutsideAgreementTerm) as exc:
        chain.record(agreement, [after])
    assert exc.value.args_by_name["end"] == agreement.terms.valid_until


def test_conversion_ids_are_per_agreement(chain: ChainHelper, agreement: Agreement) -> None:
    """Another agreement's reporter cannot block a batch by claiming its conversion id first."""
    other = chain.active_agreement(reporter=chain.acc.partner)
    a, b = chain.consented_subjects(2)
    cid = next_conversion_id()
    theirs = chain.conversion(a, conversion_id=cid)
    chain.ledger.record_conversions(other.id, other.terms, [theirs], sender=chain.acc.partner)
    assert chain.ledger.conversion_status(other.id, cid) == ConversionStatus.RECORDED
    assert chain.ledger.conversion_status(agreement.id, cid) == ConversionStatus.UNKNOWN
    ours = chain.conversion(b, conversion_id=cid)
    batch_id = chain.record(agreement, [ours]).value
    assert chain.ledger.conversion_status(agreement.id, cid) == ConversionStatus.RECORDED
    chain.ledger.reverse_conversion(batch_id, agreement.terms, ours, [], sender=chain.acc.reporter)
    assert chain.ledger.conversion_status(agreement.id, cid) == ConversionStatus.REVERSED
    assert chain.ledger.conversion_status(other.id, cid) == ConversionStatus.RECORDED
    with pytest.raises(errors.SettlementLedgerDuplicateConversion) as exc:
        chain.record(agreement, [chain.conversion(a, conversion_id=cid)])
    assert exc.value.args_by_name == {"conversionId": cid}


# -------------------------------------------------------------------------------------------- refusals


def test_RevertWhen_NonReporterRecords(chain: ChainHelper, agreement: Agreement) -> None:
    (s,) = chain.consented_subjects(1)
    with pytest.raises(errors.SettlementLedgerNotReporter) as exc:
        chain.ledger.record_conversions(
            agreement.id, agreement.terms, [chain.conversion(s)], sender=chain.acc.partner
        )
    assert same_address(exc.value.args_by_name["caller"], chain.acc.partner)
    assert same_address(exc.value.args_by_name["reporter"], chain.acc.reporter)
    with pytest.raises(errors.SettlementLedgerNotReporter):
        chain.ledger.record_conversion(
            agreement.id, agreement.terms, chain.conversion(s), sender=chain.acc.outsider
        )


def test_RevertWhen_RecordingAgainstUnacceptedAgreement(chain: ChainHelper) -> None:
    a = chain.propose()
    chain.agreements.accept(a.id, a.terms, sender=chain.acc.partner)  # the creator has not accepted
    (s,) = chain.consented_subjects(1)
    with pytest.raises(errors.PartnershipAgreementsNotActive) as exc:
        chain.record(a, [chain.conversion(s)])
    assert exc.value.args_by_name["agreementId"] == a.id


def test_RevertWhen_ConversionAfterTermination(chain: ChainHelper, agreement: Agreement) -> None:
    activated = chain.agreements.agreement_of(agreement.id).activated_at
    chain.agreements.terminate(agreement.id, agreement.terms, sender=chain.acc.platform)
    ended = chain.now()
    (s,) = chain.consented_subjects(1)
    late = chain.conversion(s)
    with pytest.raises(errors.SettlementLedgerOutsideAgreementTerm) as exc:
        chain.record(agreement, [late])
    assert exc.value.args_by_name == {
        "conversionId": late.data.id,
        "time": late.data.time,
        "start": activated,
        "end": ended,
    }


@pytest.mark.parametrize("terminated", [False, True])
def test_RevertWhen_RecordingUnderAnAgreementNeverActivated(chain: ChainHelper, terminated: bool) -> None:
    proposed = chain.propose()
    if terminated:
        chain.agreements.terminate(proposed.id, proposed.terms, sender=chain.acc.partner)
    (s,) = chain.consented_subjects(1)
    with pytest.raises(errors.PartnershipAgreementsNotActive) as exc:
        chain.record(proposed, [chain.conversion(s)])
    assert exc.value.args_by_name == {"agreementId": proposed.id}


def test_RevertWhen_ConversionBeforeActivation(chain: ChainHelper) -> None:
    """validFrom is a day before the activation: the in-force window starts at the activation."""
    proposed = chain.propose()
    (s,) = chain.consented_subjects(1)
    chain.advance(3_600)
    before = chain.conversion(s, time=chain.now() - 60)
    agreement = chain.activate(proposed)
    activated = chain.agreements.agreement_of(agreement.id).activated_at
    assert agreement.terms.valid_from < before.data.time < activated
    with pytest.raises(errors.SettlementLedgerOutsideAgreementTerm) as exc:
        chain.record(agreement, [before])
    assert exc.value.args_by_name == {
        "conversionId": before.data.id,
        "time": before.data.time,
        "start": activated,
        "end": agreement.terms.valid_until,
    }


def test_RevertWhen_RecordingWithTermsMismatch(chain: ChainHelper, agreement: Agreement) -> None:
    (s,) = chain.consented_subjects(1)
    forged = replace(agreement.terms, commission_rate=999_999)
    with pytest.raises(errors.PartnershipAgreementsTermsMismatch) as exc:
        chain.record(Agreement(agreement.id, forged), [chain.conversion(s)])
    assert exc.value.args_by_name["expected"] == agreement.terms.hash()
    assert exc.value.args_by_name["given"] == forged.hash()


def test_RevertWhen_DuplicateConversionAcrossBatches(chain: ChainHelper, agreement: Agreement) -> None:
    a, b = chain.consented_subjects(2)
    c = chain.conversion(a)
    chain.record(agreement, [c])
    again = chain.conversion(b, conversion_id=c.data.id)
    with pytest.raises(errors.SettlementLedgerDuplicateConversion) as exc:
        chain.record(agreement, [chain.conversion(b), again])
    assert exc.value.args_by_name["conversionId"] == c.data.id


def test_RevertWhen_DuplicateConversionWithinOneBatch(chain: ChainHelper, agreement: Agreement) -> None:
    a, b, c = chain.consented_subjects(3)
    first = chain.conversion(a)
    # an id in another bitmap word between the two, so the duplicate is caught after a word change
    middle = chain.conversion(b, conversion_id=first.data.id + 1_000)
    dup = chain.conversion(c, conversion_id=first.data.id)
    with pytest.raises(errors.SettlementLedgerDuplicateConversion) as exc:
        chain.record(agreement, [first, middle, dup])
    assert exc.value.args_by_name["conversionId"] == first.data.id
    adjacent = chain.conversion(b)
    with pytest.raises(errors.SettlementLedgerDuplicateConversion):
        chain.record(agreement, [adjacent, replace(adjacent, subject=c)])
    assert (
        chain.ledger.conversion_status(agreement.id, first.data.id) == ConversionStatus.UNKNOWN
    )  # all or nothing


def test_RevertWhen_SettlingWithoutConsent(chain: ChainHelper, agreement: Agreement) -> None:
    consented = chain.consented_subjects(2)
    stranger = rand32()
    convs = [chain.conversion(consented[0]), chain.conversion(stranger), chain.conversion(consented[1])]
    with pytest.raises(errors.SettlementLedgerNoConsent) as exc:
        chain.record(agreement, convs)
    assert exc.value.args_by_name == {"conversionId": convs[1].data.id, "subject": stranger}


def test_RevertWhen_SettlingForTheZeroSubject(chain: ChainHelper, agreement: Agreement) -> None:
    """No one can consent for the all-zero subject; its conversion is refused like any unconsented one."""
    (consented,) = chain.consented_subjects(1)
    convs = [
        chain.conversion(consented, conversion_id=2**40 + 1),
        chain.conversion(b"\0" * 32, conversion_id=2**40 + 2),
    ]
    with pytest.raises(errors.SettlementLedgerNoConsent) as exc:
        chain.record(agreement, convs)
    assert exc.value.args_by_name == {"conversionId": convs[1].data.id, "subject": b"\0" * 32}


def test_RevertWhen_SettlingWithConsentForAnotherPurpose(chain: ChainHelper, agreement: Agreement) -> None:
    s = chain.grant(purpose=Purpose.PROFILING)
    with pytest.raises(errors.SettlementLedgerNoConsent):
        chain.record(agreement, [chain.conversion(s)])


def test_RevertWhen_SettlingAfterRevocation(chain: ChainHelper, agreement: Agreement) -> None:
    (s,) = chain.consented_subjects(1)
    chain.advance(60)
    chain.consent.revoke(s, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION, sender=chain.acc.registrar)
    chain.advance(60)
    c = chain.conversion(s)
    with pytest.raises(errors.SettlementLedgerNoConsent) as exc:
        chain.ledger.record_conversion(agreement.id, agreement.terms, c, sender=chain.acc.reporter)
    assert exc.value.args_by_name == {"conversionId": c.data.id, "subject": s}


def test_RevertWhen_SettlingAfterNoticeBump(chain: ChainHelper, agreement: Agreement) -> None:
    (s,) = chain.consented_subjects(1)
    chain.consent.set_partner_notice_version(chain.acc.partner, 2, sender=chain.acc.admin)
    with pytest.raises(errors.SettlementLedgerNoConsent):
        chain.record(agreement, [chain.conversion(s)])


def test_RevertWhen_SettlingBeforeConsentWasGiven(chain: ChainHelper, agreement: Agreement) -> None:
    t = chain.now()
    chain.advance(60)
    (s,) = chain.consented_subjects(1)
    with pytest.raises(errors.SettlementLedgerNoConsent):
        chain.record(agreement, [chain.conversion(s, time=t)])


def test_RevertWhen_OutsideAttributionWindow(chain: ChainHelper, agreement: Agreement) -> None:
    (s,) = chain.consented_subjects(1)
    t = chain.now()
    late = chain.conversion(s, time=t, recommended_at=t - agreement.terms.attribution_window - 1)
    with pytest.raises(errors.SettlementLedgerOutsideAttributionWindow) as exc:
        chain.record(agreement, [late])
    assert exc.value.args_by_name == {
        "conversionId": late.data.id,
        "recommendedAt": late.data.recommended_at,
        "time": t,
    }
    edge = chain.conversion(s, time=t, recommended_at=t - agreement.terms.attribution_window)
    chain.record(agreement, [edge])  # exactly at the edge still counts
    before = chain.conversion(s, time=t, recommended_at=t + 1)  # recommended after the conversion
    with pytest.raises(errors.SettlementLedgerOutsideAttributionWindow):
        chain.record(agreement, [before])


def test_RevertWhen_ConversionTimeInvalid(chain: ChainHelper, agreement: Agreement) -> None:
    (s,) = chain.consented_subjects(1)
    future = chain.conversion(s, time=chain.next_block_time() + 1)  # a second after the block recording it
    with pytest.raises(errors.SettlementLedgerInvalidConversionTime) as exc:
        chain.record(agreement, [future])
    assert exc.value.args_by_name == {"conversionId": future.data.id, "time": future.data.time}
    early = chain.conversion(s, time=agreement.terms.valid_from - 1)
    with pytest.raises(errors.SettlementLedgerOutsideAgreementTerm) as exc:
        chain.record(agreement, [early])
    start, end = chain.agreements.require_terms_in_force(agreement.id, agreement.terms)
    assert exc.value.args_by_name == {
        "conversionId": early.data.id,
        "time": early.data.time,
        "start": start,
        "end": end,
    }


def test_RevertWhen_ZeroIdZeroValueOrEmptyBatch(chain: ChainHelper, agreement: Agreement) -> None:
    (s,) = chain.consented_subjects(1)
    t = chain.now()
    zero_id = Conversion(ConversionData(0, t, t - 1, 10), rand32(), s)
    with pytest.raises(errors.SettlementLedgerZeroConversionId):
        chain.record(agreement, [zero_id])
    zero_value = Conversion(ConversionData(next_conversion_id(), t, t - 1, 0), rand32(), s)
    with pytest.raises(errors.SettlementLedgerZeroValue) as exc:
        chain.record(agreement, [zero_value])
    assert exc.value.args_by_name["conversionId"] == zero_value.data.id
    with pytest.raises(errors.SettlementLedgerEmptyBatch):
        chain.record(agreement, [])


def test_RevertWhen_ReversalAfterFinal(chain: ChainHelper, agreement: Agreement) -> None:
    subjects = chain.consented_subjects(2)
    convs = [chain.conversion(s) for s in subjects]
    batch_id = chain.record(agreement, convs).value
    chain.advance(VALIDATION_WINDOW + 1)
    with pytest.raises(errors.SettlementLedgerConversionFinal) as exc:  # the window has passed
        chain.ledger.reverse_conversion(
            batch_id, agreement.terms, convs[0], merkle_proof(convs, 0), sender=chain.acc.reporter
        )
    assert exc.value.args_by_name["conversionId"] == convs[0].data.id
    chain.ledger.finalize_batch(batch_id, agreement.terms)
    with pytest.raises(errors.SettlementLedgerConversionFinal):  # and the batch is final
        chain.ledger.reverse_conversion(
            batch_id, agreement.terms, convs[1], merkle_proof(convs, 1), sender=chain.acc.reporter
        )


def test_RevertWhen_ReversedTwice(chain: ChainHelper, agreement: Agreement) -> None:
    (s,) = chain.consented_subjects(1)
    c = chain.conversion(s)
    batch_id = chain.record(agreement, [c]).value
    chain.ledger.reverse_conversion(batch_id, agreement.terms, c, [], sender=chain.acc.reporter)
    with pytest.raises(errors.SettlementLedgerAlreadyReversed) as exc:
        chain.ledger.reverse_conversion(batch_id, agreement.terms, c, [], sender=chain.acc.reporter)
    assert exc.value.args_by_name["conversionId"] == c.data.id


def test_RevertWhen_ReversingAConversionNotInTheBatch(chain: ChainHelper, agreement: Agreement) -> None:
    subjects = chain.consented_subjects(3)
    convs = [chain.conversion(s) for s in subjects]
    batch_id = chain.record(agreement, convs).value
    altered = replace(convs[0], data=replace(convs[0].data, value=convs[0].data.value + 1))
    with pytest.raises(errors.SettlementLedgerUnknownConversion) as exc:
        chain.ledger.reverse_conversion(
            batch_id, agreement.terms, altered, merkle_proof(convs, 0), sender=chain.acc.reporter
        )
    assert exc.value.args_by_name["conversionId"] == convs[0].data.id
    with pytest.raises(errors.SettlementLedgerUnknownConversion):  # a wrong proof
        chain.ledger.reverse_conversion(
            batch_id, agreement.terms, convs[0], merkle_proof(convs, 1), sender=chain.acc.reporter
        )


def test_RevertWhen_NonReporterReverses(chain: ChainHelper, agreement: Agreement) -> None:
    (s,) = chain.consented_subjects(1)
    c = chain.conversion(s)
    batch_id = chain.record(agreement, [c]).value
    with pytest.raises(errors.SettlementLedgerNotReporter):
        chain.ledger.reverse_conversion(batch_id, agreement.terms, c, [], sender=chain.acc.partner)


def test_RevertWhen_UnknownBatch(chain: ChainHelper, agreement: Agreement) -> None:
    with pytest.raises(errors.SettlementLedgerUnknownBatch) as exc:
        chain.ledger.finalize_batch(7, agreement.terms)
    assert exc.value.args_by_name["batchId"] == 7
    with pytest.raises(errors.SettlementLedgerUnknownBatch):
        chain.ledger.reverse_conversion(
            7, agreement.terms, chain.conversion(rand32()), [], sender=chain.acc.reporter
        )


def test_RevertWhen_FinalizingTooEarly(chain: ChainHelper, agreement: Agreement) -> None:
    (s,) = chain.consented_subjects(1)
    c = chain.conversion(s)
    batch_id = chain.record(agreement, [c]).value
    with pytest.raises(errors.SettlementLedgerNotYetFinal) as exc:
        chain.ledger.finalize_batch(batch_id, agreement.terms)
    assert exc.value.args_by_name == {"batchId": batch_id, "finalAfter": c.data.time + VALIDATION_WINDOW}


def test_RevertWhen_FinalizingTwice(chain: ChainHelper, agreement: Agreement) -> None:
    (s,) = chain.consented_subjects(1)
    batch_id = chain.record(agreement, [chain.conversion(s)]).value
    chain.advance(VALIDATION_WINDOW + 1)
    chain.ledger.finalize_batch(batch_id, agreement.terms)
    with pytest.raises(errors.SettlementLedgerBatchAlreadyFinalized) as exc:
        chain.ledger.finalize_batch(batch_id, agreement.terms)
    assert exc.value.args_by_name["batchId"] == batch_id


def test_RevertWhen_FinalizingWithOtherTerms(chain: ChainHelper, agreement: Agreement) -> None:
    (s,) = chain.consented_subjects(1)
    batch_id = chain.record(agreement, [chain.conversion(s)]).value
    chain.advance(VALIDATION_WINDOW + 1)
    other = chain.active_agreement()
    with pytest.raises(errors.PartnershipAgreementsTermsMismatch):
        chain.ledger.finalize_batch(batch_id, other.terms)
