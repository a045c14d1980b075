"""EIP-712 signing round trips against the contracts, and the Python mirrors (Merkle tree, split rule)
against the ledger's own results."""

from __future__ import annotations

import os
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.chain import errors
from backend.chain.deploy import Deployment
from backend.chain.eip712 import (
    agreement_acceptance_typed_data,
    compact,
    consent_grant_typed_data,
    recover_signer,
    sign_consent_grant,
)
from backend.chain.types import (
    AgreementStatus,
    AgreementTerms,
    ConsentGrant,
    ConsentRevocation,
    ConsentTerms,
    Conversion,
    ConversionData,
    ConversionStatus,
    Party,
    Purpose,
    Wallet,
    conversions_root,
    merkle_proof,
    split_commission,
    subject_for_wallet,
)

DAY = 86_400


def _domain_separator(typed: dict) -> bytes:
    return bytes(encode_typed_data(full_message=typed).header)


def test_domain_separators_match_the_contracts(deployed: Deployment) -> None:
    chain = deployed.client
    grant = ConsentGrant(b"\x01" * 32, ConsentTerms(chain.accounts[0], Purpose.PROFILING, 10), b"\x02" * 32)
    typed = consent_grant_typed_data(deployed.consent.address, chain.chain_id, grant, 0, 0)
    assert _domain_separator(typed) == deployed.consent.domain_separator()
    typed2 = agreement_acceptance_typed_data(
        deployed.agreements.address, chain.chain_id, 1, b"\x00" * 32, chain.accounts[0], 0
    )
    assert _domain_separator(typed2) == deployed.agreements.domain_separator()
    domain = deployed.consent.eip712_domain()
    assert domain["name"] == "KnowLedger ConsentRegistry" and domain["chainId"] == chain.chain_id


def test_compact_signature_recovers_to_the_signer() -> None:
    wallet = Wallet(b"\x31" * 32)
    grant = ConsentGrant(
        subject_for_wallet(wallet), ConsentTerms(wallet, Purpose.PROFILING, 10), b"\x02" * 32
    )
    typed = consent_grant_typed_data("0x" + "22" * 20, 31337, grant, 3, 99)
    signed = sign_consent_grant(wallet.private_key, "0x" + "22" * 20, 31337, grant, 3, 99)
    vs = int.from_bytes(signed.vs, "big")
    v, s = 27 + (vs >> 255), vs & ((1 << 255) - 1)
    sig = signed.r + s.to_bytes(32, "big") + bytes([v])
    assert recover_signer(typed, sig) == wallet.address
    assert compact(v, int.from_bytes(signed.r, "big"), s) == (signed.r, signed.vs)


def test_wallet_grant_and_revoke_by_signature(deployed: Deployment, clock: Any) -> None:
    acc = deployed.accounts
    assert acc is not None
    user = Wallet(os.urandom(32))
    subject = subject_for_wallet(user)
    now = clock.next_block()  # the grant's block
    terms = deployed.consent.current_terms(acc.partner, Purpose.PRODUCT_RECOMMENDATION, now + 30 * DAY)
    grant = ConsentGrant(subject, terms, os.urandom(32))
    signed = deployed.consent.sign_grant(user, grant, deadline=now + DAY)
    result = deployed.consent.grant_by_sig(signed, sender=acc.outsider)  # anyone relays
    assert result.event("ConsentGranted")["subject"] == subject
    assert ConsentTerms.unpack(result.event("ConsentGranted")["terms"]) == terms
    assert deployed.consent.is_consented(subject, acc.partner, Purpose.PRODUCT_RECOMMENDATION)
    # replaying the same signature: nonce moved on
    with pytest.raises(errors.ConsentRegistryInvalidNonce):
        deployed.consent.grant_by_sig(signed, sender=acc.outsider)
    revocation = ConsentRevocation(subject, acc.partner, Purpose.PRODUCT_RECOMMENDATION)
    deployed.consent.revoke_by_sig(
        deployed.consent.sign_revocation(user, revocation, now + DAY), sender=acc.outsider
    )
    assert not deployed.consent.is_consented(subject, acc.partner, Purpose.PRODUCT_RECOMMENDATION)


def test_a_signature_by_another_key_is_refused_with_the_recovered_signer(
    deployed: Deployment, clock: Any
) -> None:
    acc = deployed.accounts
    assert acc is not None
    user, thief = Wallet(os.urandom(32)), Wallet(os.urandom(32))
    now = clock.next_block()  # the relayed grant's block
    terms = deployed.consent.current_terms(acc.partner, Purpose.PROFILING, now + DAY)
    grant = ConsentGrant(subject_for_wallet(user), terms, os.urandom(32))
    forged = deployed.consent.sign_grant(thief, grant, deadline=now + DAY)
    with pytest.raises(errors.ConsentRegistryInvalidSignature) as info:
        deployed.consent.grant_by_sig(forged, sender=acc.outsider)
    assert info.value.args_by_name["signer"] == thief.address


def test_agreement_acceptance_by_signature(deployed: Deployment, clock: Any) -> None:
    acc = deployed.accounts
    assert acc is not None
    now = clock.next_block()  # the proposal's block
    terms = AgreementTerms(
        parties=(Party(acc.platform, 600_000), Party(acc.partner, 400_000)),
        partner=acc.partner,
        reporter=acc.reporter,
        commission_rate=10_000,
        attribution_window=DAY,
        validation_window=DAY,
        valid_from=now - 10,
        valid_until=now + 30 * DAY,
    )
    aid = deployed.agreements.propose(terms, sender=acc.platform).value
    # signed by another key than the party's: refused, naming the party
    forged = Account.sign_message(
        encode_typed_data(
            full_message=agreement_acceptance_typed_data(
                deployed.agreements.address,
                deployed.client.chain_id,
                aid,
                terms.hash(),
                acc.partner,
                now + DAY,
            )
        ),
        acc.creator.private_key,
    ).signature
    with pytest.raises(errors.PartnershipAgreementsInvalidSignature) as info:
        deployed.agreements.accept_by_sig(aid, terms, acc.partner, now + DAY, forged, sender=acc.outsider)
    assert info.value.args_by_name == {"party": acc.partner.address}
    sig = deployed.agreements.sign_acceptance(acc.partner, aid, terms, now + DAY)
    assert len(sig) == 65
    result = deployed.agreements.accept_by_sig(aid, terms, acc.partner, now + DAY, sig, sender=acc.outsider)
    assert [e.name for e in result.events] == ["AgreementAccepted", "AgreementActivated"]
    assert deployed.agreements.agreement_of(aid).status is AgreementStatus.ACTIVE
    assert deployed.agreements.terms_of(aid) == terms


def _active(
    deployed: Deployment,
    clock: Any,
    shares: tuple[int, ...] = (500_000, 300_000, 200_000),
    rate: int = 50_000,
):
    acc = deployed.accounts
    assert acc is not None
    now = clock.next_block()  # the proposal's block
    accounts = (acc.platform, acc.partner, acc.creator)
    terms = AgreementTerms(
        parties=tuple(Party(a, s) for a, s in zip(accounts, shares, strict=True)),
        partner=acc.partner,
        reporter=acc.reporter,
        commission_rate=rate,
        attribution_window=30 * DAY,
        validation_window=14 * DAY,
        valid_from=now - DAY,
        valid_until=now + 365 * DAY,
    )
    aid = deployed.agreements.propose(terms, sender=acc.platform).value
    deployed.agreements.accept(aid, terms, sender=acc.partner)
    deployed.agreements.accept(aid, terms, sender=acc.creator)
    return aid, terms


def _consented(deployed: Deployment, clock: Any, n: int) -> list[bytes]:
    acc = deployed.accounts
    assert acc is not None
    terms = deployed.consent.current_terms(
        acc.partner, Purpose.PRODUCT_RECOMMENDATION, clock.next_block() + 90 * DAY
    )
    subjects = [os.urandom(32) for _ in range(n)]
    deployed.consent.grant_batch([ConsentGrant(s, terms, os.urandom(32)) for s in subjects])
    return subjects


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_merkle_root_and_proofs_agree_with_the_ledger(deployed: Deployment, clock: Any, n: int) -> None:
    aid, terms = _active(deployed, clock)
    subjects = _consented(deployed, clock, n)
    now = deployed.client.now()
    conversions = [
        Conversion(ConversionData(1000 + i, now, now - 600, 10_000 + i), os.urandom(32), s)
        for i, s in enumerate(subjects)
    ]
    result = deployed.ledger.record_conversions(aid, terms, conversions)
    batch = deployed.ledger.batch_of(result.value)
    assert batch.conversions_root == conversions_root(conversions)
    assert result.event("ConversionsRecorded")["conversionsRoot"] == batch.conversions_root
    assert deployed.ledger.conversions_of(result.value) == conversions
    # every proof verifies on chain: reverse the last one with its proof
    i = n - 1
    deployed.ledger.reverse_conversion(result.value, terms, conversions[i], merkle_proof(conversions, i))
    assert deployed.ledger.conversion_status(aid, conversions[i].data.id) is ConversionStatus.REVERSED
    if n > 1:
        with pytest.raises(errors.SettlementLedgerUnknownConversion):
            deployed.ledger.reverse_conversion(
                result.value, terms, conversions[0], merkle_proof(conversions, 1)
            )


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    shares=st.tuples(st.integers(0, 1_000_000), st.integers(0, 1_000_000)).map(
        lambda t: (min(t), max(t) - min(t), 1_000_000 - max(t))
    ),
    rate=st.integers(0, 1_000_000),
    value=st.integers(0, (1 << 112) - 1),
)
def test_split_mirror_matches_split_commission(
    deployed: Deployment, shares: tuple[int, int, int], rate: int, value: int
) -> None:
    acc = deployed.accounts
    assert acc is not None
    terms = AgreementTerms(
        parties=(
            Party(acc.platform, shares[0]),
            Party(acc.partner, shares[1]),
            Party(acc.creator, shares[2]),
        ),
        partner=acc.partner,
        reporter=acc.reporter,
        commission_rate=rate,
        attribution_window=DAY,
        validation_window=DAY,
        valid_from=0,
        valid_until=1,
    )
    assert deployed.ledger.split_commission(terms, value) == split_commission(terms, value)


def test_totals_follow_the_mirror(deployed: Deployment, clock: Any) -> None:
    aid, terms = _active(deployed, clock, (333_333, 333_333, 333_334), 123_457)
    subjects = _consented(deployed, clock, 3)
    now = deployed.client.now()
    values = [999_999_937, 1_234_567, 7]
    conversions = [
        Conversion(ConversionData(500 + i, now, now - 5, v), os.urandom(32), s)
        for i, (v, s) in enumerate(zip(values, subjects, strict=True))
    ]
    deployed.ledger.record_conversions(aid, terms, conversions)
    expected = [0, 0, 0]
    for v in values:
        _, amounts = split_commission(terms, v)
        expected = [a + b for a, b in zip(expected, amounts, strict=True)]
    got = [deployed.ledger.totals_of(aid, p.account).provisional for p in terms.parties]
    assert got == expected
