"""Reverts become named exceptions wherever they happen: gas estimation, a mined transaction, a view."""

from __future__ import annotations

import os
from typing import Any

import pytest

from backend.chain import errors
from backend.chain.deploy import Deployment
from backend.chain.errors import ContractReverted, TransactionFailed
from backend.chain.types import AgreementTerms, ConsentTerms, Party, Purpose

DAY = 86_400


def _terms(d: Deployment, clock: Any, **kw: int) -> AgreementTerms:
    acc = d.accounts
    assert acc is not None
    now = clock.next_block()  # the block of the transaction that uses them
    values = {
        "commission_rate": 50_000,
        "attribution_window": 30 * DAY,
        "validation_window": 14 * DAY,
        "valid_from": now - DAY,
        "valid_until": now + 365 * DAY,
    }
    values.update(kw)
    return AgreementTerms(
        parties=(Party(acc.platform, 700_000), Party(acc.partner, 300_000)),
        partner=acc.partner,
        reporter=acc.reporter,
        currency="CNY",
        **values,
    )


def test_revert_during_estimation_is_named_and_says_what_to_do(deployed: Deployment, clock: Any) -> None:
    acc = deployed.accounts
    assert acc is not None
    terms = ConsentTerms(acc.partner, Purpose.PROFILING, clock.next_block() + DAY)
    with pytest.raises(errors.ConsentRegistryUnauthorizedRegistrar) as info:
        deployed.consent.grant(os.urandom(32), terms, os.urandom(32), sender=acc.outsider)
    exc = info.value
    assert exc.args_by_name == {"caller": acc.outsider.address}
    text = str(exc)
    assert text.startswith("ConsentRegistry.grant reverted with ConsentRegistryUnauthorizedRegistrar(")
    assert "send registrar writes from the registrar account" in text
    assert exc.selector == errors.selector_of("ConsentRegistryUnauthorizedRegistrar")


def test_revert_of_a_mined_transaction_is_replayed_and_named(deployed: Deployment) -> None:
    acc = deployed.accounts
    assert acc is not None
    fn = deployed.consent.contract.fn("revoke", os.urandom(32), acc.partner, int(Purpose.PROFILING))
    before = deployed.client.block_number
    with pytest.raises(errors.ConsentRegistryNotGranted) as info:
        deployed.client.send(fn, sender=acc.registrar, gas=200_000)  # explicit gas: no estimation first
    assert deployed.client.block_number == before + 1, "the failed transaction was mined"
    assert info.value.args_by_name["purpose"] == 0
    assert "never granted or already revoked" in str(info.value)


def test_out_of_gas_is_a_transaction_failure(deployed: Deployment) -> None:
    acc = deployed.accounts
    assert acc is not None
    fn = deployed.consent.contract.fn("setPartnerNoticeVersion", acc.partner, 5)
    with pytest.raises((TransactionFailed, ContractReverted), match="gas"):
        deployed.client.send(fn, sender=acc.admin, gas=25_000)


def test_view_reverts_are_named_too(deployed: Deployment, clock: Any) -> None:
    terms = _terms(deployed, clock)
    with pytest.raises(ContractReverted) as info:
        deployed.agreements.require_active_terms(42, terms)
    assert type(info.value).__name__.startswith("PartnershipAgreements")
    assert "PartnershipAgreements.requireActiveTerms reverted" in str(info.value)


def test_custom_error_values_are_decoded(deployed: Deployment, clock: Any) -> None:
    acc = deployed.accounts
    assert acc is not None
    bad = _terms(deployed, clock)
    bad = AgreementTerms(
        parties=(Party(acc.platform, 700_000), Party(acc.partner, 200_000)),
        partner=bad.partner,
        reporter=bad.reporter,
        commission_rate=bad.commission_rate,
        attribution_window=bad.attribution_window,
        validation_window=bad.validation_window,
        valid_from=bad.valid_from,
        valid_until=bad.valid_until,
    )
    with pytest.raises(errors.PartnershipAgreementsInvalidShares) as info:
        deployed.agreements.propose(bad, sender=acc.platform)
    assert info.value.args_by_name == {"sum": 900_000}
    assert "sum to 900000, not 1000000" in str(info.value)


def test_string_reasons_from_invalid_terms(deployed: Deployment, clock: Any) -> None:
    acc = deployed.accounts
    assert acc is not None
    terms = _terms(deployed, clock, attribution_window=0)
    with pytest.raises(errors.PartnershipAgreementsInvalidTerms) as info:
        deployed.agreements.propose(terms, sender=acc.platform)
    assert info.value.args_by_name["reason"] == "zero attribution window"


def test_ledger_errors_name_the_conversion(deployed: Deployment, clock: Any) -> None:
    acc = deployed.accounts
    assert acc is not None
    from backend.chain.types import Conversion, ConversionData

    terms = _terms(deployed, clock)
    aid = deployed.agreements.propose(terms, sender=acc.platform).value
    deployed.agreements.accept(aid, terms, sender=acc.partner)
    now = deployed.client.now()
    no_consent = Conversion(ConversionData(77, now, now - 60, 1_000), os.urandom(32), os.urandom(32))
    with pytest.raises(errors.SettlementLedgerNoConsent) as info:
        deployed.ledger.record_conversion(aid, terms, no_consent)
    assert info.value.args_by_name["conversionId"] == 77
    with pytest.raises(errors.SettlementLedgerNotReporter):
        deployed.ledger.record_conversion(aid, terms, no_consent, sender=acc.outsider)


@pytest.mark.parametrize("conversion_id", [1, 38, 53, 2**40 + 7])
def test_a_custom_error_whose_first_argument_reads_as_a_huge_string_length_is_still_named(
    deployed: Deployment, clock: Any, conversion_id: int
) -> None:
    """web3's in-process provider reads every revert as ``Error(string)``; the data of
    ``OutsideAgreementTerm(38, …)`` reads as a string longer than memory (OverflowError), which must not
    hide the named error."""
    acc = deployed.accounts
    assert acc is not None
    from backend.chain.types import Conversion, ConversionData

    terms = _terms(deployed, clock)
    aid = deployed.agreements.propose(terms, sender=acc.platform).value
    deployed.agreements.accept(aid, terms, sender=acc.partner)
    early = terms.valid_from - DAY  # before the agreement's term
    conversion = Conversion(
        ConversionData(conversion_id, early, early - 60, 1_000), os.urandom(32), os.urandom(32)
    )
    with pytest.raises(errors.SettlementLedgerOutsideAgreementTerm) as info:
        deployed.ledger.record_conversion(aid, terms, conversion, sender=acc.reporter)
    assert info.value.args_by_name["conversionId"] == conversion_id
