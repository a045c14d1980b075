"""ConsentRegistry: every function, both write paths, and each refusal with its named error."""

from __future__ import annotations

import pytest
from eth_account import Account
from eth_utils import keccak

from backend.chain import errors
from backend.chain.types import (
    ConsentGrant,
    ConsentRevocation,
    ConsentTerms,
    Purpose,
    Wallet,
    purposes_in_mask,
    subject_for_wallet,
)

from .conftest import DAY, ChainHelper, rand32, same_address

MAX_DURATION = 390 * DAY


def wallet() -> Wallet:
    return Wallet(Account.create().key)


def signed_grant(chain: ChainHelper, w: Wallet, deadline_in: int = 3_600, nonce: int | None = None, **kw):
    grant = ConsentGrant(subject_for_wallet(w.address), chain.terms(**kw), rand32())
    return chain.consent.sign_grant(w, grant, chain.next_block_time() + deadline_in, nonce=nonce)


def signed_revocation(
    chain: ChainHelper,
    w: Wallet,
    purpose=Purpose.PRODUCT_RECOMMENDATION,
    deadline_in=3_600,
    nonce: int | None = None,
):
    revocation = ConsentRevocation(subject_for_wallet(w.address), chain.acc.partner, purpose)
    return chain.consent.sign_revocation(w, revocation, chain.next_block_time() + deadline_in, nonce=nonce)


def raw_grant(chain: ChainHelper, word: int, receipt: bytes | None = None, subject: bytes | None = None):
    """A registrar grant with a raw ConsentTerms word (to send what the Python types refuse to build)."""
    fn = chain.consent.contract.fn(
        "grant", subject or rand32(), word, rand32() if receipt is None else receipt
    )
    return chain.client.send(fn, sender=chain.acc.registrar)


# ---------------------------------------------------------------------------------------------- views


def test_deployment_views(chain: ChainHelper) -> None:
    c = chain.consent
    assert same_address(c.registrar(), chain.acc.registrar)
    assert c.max_consent_duration() == MAX_DURATION
    assert c.platform_notice_version() == 1
    assert c.partner_notice_version(chain.acc.partner) >= 1
    assert c.partner_notice_version(chain.acc.outsider) == 0
    assert c.notice_admin_role() == keccak(text="NOTICE_ADMIN_ROLE")
    assert c.has_role(c.notice_admin_role(), chain.acc.admin)
    assert c.has_role(b"\0" * 32, chain.acc.admin)
    assert not c.has_role(c.notice_admin_role(), chain.acc.outsider)
    assert c.get_role_admin(c.notice_admin_role()) == b"\0" * 32
    admin_role = chain.client.call(c.contract.fn("DEFAULT_ADMIN_ROLE"))
    assert bytes(admin_role) == b"\0" * 32


def test_supports_interface(chain: ChainHelper) -> None:
    assert chain.consent.supports_interface(bytes.fromhex("01ffc9a7"))  # ERC-165
    assert chain.consent.supports_interface(bytes.fromhex("7965db0b"))  # IAccessControl
    assert not chain.consent.supports_interface(bytes.fromhex("ffffffff"))


def test_eip712_domain_and_separator(chain: ChainHelper) -> None:
    domain = chain.consent.eip712_domain()
    assert domain["name"] == "KnowLedger ConsentRegistry"
    assert domain["version"] == "1"
    assert domain["chainId"] == chain.client.chain_id
    assert same_address(domain["verifyingContract"], chain.consent.address)
    from eth_abi import encode

    type_hash = keccak(
        text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    )
    expected = keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                type_hash,
                keccak(text=domain["name"]),
                keccak(text="1"),
                domain["chainId"],
                chain.consent.address,
            ],
        )
    )
    assert chain.consent.domain_separator() == expected


def test_unknown_record_is_zero_and_not_consented(chain: ChainHelper) -> None:
    s = rand32()
    state = chain.consent.consent_of(s, chain.acc.partner, Purpose.PROFILING)
    assert (state.granted_at, state.expires_at, state.revoked_at, state.nonce) == (0, 0, 0, 0)
    assert not chain.consent.is_consented(s, chain.acc.partner, Purpose.PROFILING)
    assert chain.consent.nonce_of(s, chain.acc.partner, Purpose.PROFILING) == 0
    assert chain.consent.consent_mask(s, chain.acc.partner) == 0


# ------------------------------------------------------------------------------------- registrar path


def test_grant_records_and_counts(chain: ChainHelper) -> None:
    s = rand32()
    terms = chain.terms(Purpose.PROFILING)
    receipt = rand32()
    result = chain.consent.grant(s, terms, receipt, sender=chain.acc.registrar)
    ev = result.event("ConsentGranted")
    assert ev["subject"] == s
    assert ConsentTerms.unpack(ev["terms"]) == terms
    assert ev["receiptHash"] == receipt
    state = chain.consent.consent_of(s, chain.acc.partner, Purpose.PROFILING)
    block_time = chain.client.w3.eth.get_block(result.block_number)["timestamp"]
    assert state.granted_at == block_time
    assert state.expires_at == terms.expires_at
    assert state.revoked_at == 0
    assert (state.platform_notice_version, state.partner_notice_version) == (
        terms.platform_notice_version,
        terms.partner_notice_version,
    )
    assert state.nonce == 1
    assert chain.consent.is_consented(s, chain.acc.partner, Purpose.PROFILING)
    assert not chain.consent.is_consented(s, chain.acc.partner, Purpose.MARKETING_CONTACT)
    assert not chain.consent.is_consented(s, chain.acc.outsider, Purpose.PROFILING)


def test_revoke_records_and_stops_counting(chain: ChainHelper) -> None:
    s = chain.grant()
    granted = chain.consent.consent_of(s, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION)
    chain.advance(100)
    result = chain.consent.revoke(
        s, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION, sender=chain.acc.registrar
    )
    ev = result.event("ConsentRevoked")
    assert ev["subject"] == s and same_address(ev["partner"], chain.acc.partner) and ev["purpose"] == 1
    state = chain.consent.consent_of(s, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION)
    assert state.revoked_at == chain.client.w3.eth.get_block(result.block_number)["timestamp"]
    assert state.granted_at == granted.granted_at and state.nonce == 2
    assert not chain.consent.is_consented(s, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION)
    # still counted for the time it was held
    assert chain.consent.is_consented_at(
        s, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION, granted.granted_at
    )
    assert not chain.consent.is_consented_at(
        s, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION, state.revoked_at
    )


def test_renewal_keeps_granted_at_and_regrant_after_revoke_restarts(chain: ChainHelper) -> None:
    s = chain.grant(expires_in=10 * DAY)
    first = chain.consent.consent_of(s, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION)
    chain.advance(DAY)
    chain.grant(s, expires_in=200 * DAY)
    renewed = chain.consent.consent_of(s, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION)
    assert renewed.granted_at == first.granted_at
    assert renewed.expires_at > first.expires_at and renewed.nonce == 2
    chain.consent.revoke(s, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION, sender=chain.acc.registrar)
    chain.advance(DAY)
    chain.grant(s)
    again = chain.consent.consent_of(s, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION)
    assert again.granted_at > first.granted_at and again.revoked_at == 0 and again.nonce == 4
    # only the latest interval is kept
    assert not chain.consent.is_consented_at(
        s, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION, first.granted_at
    )


def test_grant_after_expiry_starts_a_new_interval(chain: ChainHelper) -> None:
    s = chain.grant(expires_in=DAY)
    first = chain.consent.consent_of(s, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION)
    chain.advance(2 * DAY)
    assert not chain.consent.is_consented(s, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION)
    chain.grant(s)
    assert (
        chain.consent.consent_of(s, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION).granted_at
        > first.granted_at
    )


def test_expired_unrevoked_record_can_be_revoked(chain: ChainHelper) -> None:
    s = chain.grant(expires_in=DAY)
    chain.advance(2 * DAY)
    chain.consent.revoke(s, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION, sender=chain.acc.registrar)
    assert chain.consent.consent_of(s, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION).revoked_at != 0


def test_grant_batch_and_revoke_batch(chain: ChainHelper) -> None:
    subjects = [rand32() for _ in range(4)]
    terms = chain.terms()
    result = chain.consent.grant_batch(
        [ConsentGrant(s, terms, rand32()) for s in subjects], sender=chain.acc.registrar
    )
    assert [e["subject"] for e in result.events_named("ConsentGranted")] == subjects
    assert (
        chain.consent.are_consented(subjects, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION) == [True] * 4
    )
    result = chain.consent.revoke_batch(
        [ConsentRevocation(s, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION) for s in subjects[:2]],
        sender=chain.acc.registrar,
    )
    assert [e["subject"] for e in result.events_named("ConsentRevoked")] == subjects[:2]
    assert chain.consent.are_consented(subjects, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION) == [
        False,
        False,
        True,
        True,
    ]


def test_batches_are_all_or_nothing(chain: ChainHelper) -> None:
    good = rand32()
    terms = chain.terms()
    bad = ConsentGrant(rand32(), terms, rand32())
    with pytest.raises(errors.ConsentRegistryMissingReceipt):
        raw = [ConsentGrant(good, terms, rand32()).as_abi(), (bad.subject, terms.pack(), b"\0" * 32)]
        chain.client.send(chain.consent.contract.fn("grantBatch", raw), sender=chain.acc.registrar)
    assert chain.consent.nonce_of(good, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION) == 0


def test_consent_mask_names_each_purpose(chain: ChainHelper) -> None:
    s = chain.grant(purpose=Purpose.PROFILING)
    chain.grant(s, purpose=Purpose.PRODUCT_RECOMMENDATION)
    chain.grant(s, purpose=Purpose.DATA_SHARING)
    mask = chain.consent.consent_mask(s, chain.acc.partner)
    assert mask == 0b1011
    assert purposes_in_mask(mask) == {Purpose.PROFILING, Purpose.PRODUCT_RECOMMENDATION, Purpose.DATA_SHARING}
    chain.consent.revoke(s, chain.acc.partner, Purpose.PROFILING, sender=chain.acc.registrar)
    assert chain.consent.consent_mask(s, chain.acc.partner) == 0b1010


def test_is_consented_at_bounds(chain: ChainHelper) -> None:
    s = chain.grant(expires_in=2 * DAY)
    st = chain.consent.consent_of(s, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION)
    at = lambda t: chain.consent.is_consented_at(s, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION, t)  # noqa: E731
    assert not at(st.granted_at - 1)
    assert at(st.granted_at)
    assert not at(chain.now() + 10)  # the future never counts
    chain.advance(3 * DAY)
    assert at(st.expires_at - 1)
    assert not at(st.expires_at)


def test_are_consented_at(chain: ChainHelper) -> None:
    a, b = chain.grant(), rand32()
    granted = chain.consent.consent_of(a, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION).granted_at
    chain.advance(60)
    got = chain.consent.are_consented_at(
        [a, a, b, a],
        chain.acc.partner,
        Purpose.PRODUCT_RECOMMENDATION,
        [granted, granted - 1, granted, 2**40 - 1],
    )
    assert got == [True, False, False, False]
    assert chain.consent.are_consented_at([], chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION, []) == []


def test_notice_bumps_invalidate_older_consents(chain: ChainHelper) -> None:
    s = chain.grant()
    granted = chain.consent.consent_of(s, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION).granted_at
    current = chain.consent.partner_notice_version(chain.acc.partner)
    result = chain.consent.set_partner_notice_version(chain.acc.partner, current + 1, sender=chain.acc.admin)
    ev = result.event("PartnerNoticeVersionChanged")
    assert same_address(ev["partner"], chain.acc.partner) and (ev["previous"], ev["current"]) == (
        current,
        current + 1,
    )
    assert chain.consent.partner_notice_version(chain.acc.partner) == current + 1
    assert not chain.consent.is_consented(s, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION)
    assert not chain.consent.is_consented_at(s, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION, granted)
    chain.grant(s)  # consent again under the new notice
    assert chain.consent.is_consented(s, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION)
    result = chain.consent.set_platform_notice_version(2, sender=chain.acc.admin)
    assert (
        result.event("PlatformNoticeVersionChanged")["previous"],
        result.event("PlatformNoticeVersionChanged")["current"],
    ) == (1, 2)
    assert chain.consent.platform_notice_version() == 2
    assert not chain.consent.is_consented(s, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION)


def test_grant_under_a_stale_notice_is_recorded_but_does_not_count(chain: ChainHelper) -> None:
    s = rand32()
    stale = ConsentTerms(chain.acc.partner, Purpose.PROFILING, chain.next_block_time() + DAY, 1, 99)
    chain.consent.grant(s, stale, rand32(), sender=chain.acc.registrar)
    assert chain.consent.consent_of(s, chain.acc.partner, Purpose.PROFILING).partner_notice_version == 99
    assert not chain.consent.is_consented(s, chain.acc.partner, Purpose.PROFILING)


def test_partner_without_notice_has_no_counting_consent(chain: ChainHelper) -> None:
    s = rand32()
    terms = ConsentTerms(chain.acc.outsider, Purpose.PROFILING, chain.next_block_time() + DAY, 1, 1)
    chain.consent.grant(s, terms, rand32(), sender=chain.acc.registrar)
    assert not chain.consent.is_consented(s, chain.acc.outsider, Purpose.PROFILING)
    chain.consent.set_partner_notice_version(chain.acc.outsider, 1, sender=chain.acc.admin)
    assert chain.consent.is_consented(s, chain.acc.outsider, Purpose.PROFILING)


def test_access_control_role_management(chain: ChainHelper) -> None:
    c, role = chain.consent, chain.consent.notice_admin_role()
    c.grant_role(role, chain.acc.outsider, sender=chain.acc.admin)
    assert c.has_role(role, chain.acc.outsider)
    c.set_partner_notice_version(chain.acc.creator, 1, sender=chain.acc.outsider)
    c.revoke_role(role, chain.acc.outsider, sender=chain.acc.admin)
    assert not c.has_role(role, chain.acc.outsider)
    c.grant_role(role, chain.acc.outsider, sender=chain.acc.admin)
    c.renounce_role(role, chain.acc.outsider, sender=chain.acc.outsider)
    assert not c.has_role(role, chain.acc.outsider)


# ---------------------------------------------------------------------------------------- wallet path


def test_grant_by_sig_relayed_by_anyone(chain: ChainHelper) -> None:
    w = wallet()
    signed = signed_grant(chain, w)
    result = chain.consent.grant_by_sig(signed, sender=chain.acc.outsider)
    assert result.event("ConsentGranted")["subject"] == subject_for_wallet(w.address)
    assert chain.consent.is_consented(
        subject_for_wallet(w.address), chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION
    )
    assert (
        chain.consent.nonce_of(
            subject_for_wallet(w.address), chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION
        )
        == 1
    )


def test_revoke_by_sig_is_as_easy_as_granting(chain: ChainHelper) -> None:
    w = wallet()
    chain.consent.grant_by_sig(signed_grant(chain, w), sender=chain.acc.outsider)
    result = chain.consent.revoke_by_sig(signed_revocation(chain, w), sender=chain.acc.outsider)
    assert result.event("ConsentRevoked")["subject"] == subject_for_wallet(w.address)
    s = subject_for_wallet(w.address)
    assert not chain.consent.is_consented(s, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION)
    assert chain.consent.nonce_of(s, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION) == 2


def test_signed_batches(chain: ChainHelper) -> None:
    wallets = [wallet() for _ in range(3)]
    result = chain.consent.grant_by_sig_batch(
        [signed_grant(chain, w) for w in wallets], sender=chain.acc.outsider
    )
    assert len(result.events_named("ConsentGranted")) == 3
    subjects = [subject_for_wallet(w.address) for w in wallets]
    assert (
        chain.consent.are_consented(subjects, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION) == [True] * 3
    )
    result = chain.consent.revoke_by_sig_batch(
        [signed_revocation(chain, w) for w in wallets], sender=chain.acc.outsider
    )
    assert len(result.events_named("ConsentRevoked")) == 3
    assert (
        chain.consent.are_consented(subjects, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION)
        == [False] * 3
    )


def test_signed_batch_front_run_then_resubmitted_without_the_item(chain: ChainHelper) -> None:
    """Signed batches are all or nothing: an item relayed first on its own makes the batch revert on that
    item's nonce, and the relayer resubmits the batch without it."""
    wallets = [wallet() for _ in range(3)]
    signed = [signed_grant(chain, w) for w in wallets]
    chain.consent.grant_by_sig(signed[1], sender=chain.acc.outsider)  # someone relays one item first
    with pytest.raises(errors.ConsentRegistryInvalidNonce) as exc:
        chain.consent.grant_by_sig_batch(signed, sender=chain.acc.platform)
    assert exc.value.args_by_name == {"subject": signed[1].subject, "expected": 1, "given": 0}
    assert not chain.consent.is_consented(
        signed[0].subject, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION
    )
    result = chain.consent.grant_by_sig_batch([signed[0], signed[2]], sender=chain.acc.platform)
    assert len(result.events_named("ConsentGranted")) == 2
    subjects = [g.subject for g in signed]
    assert (
        chain.consent.are_consented(subjects, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION) == [True] * 3
    )


# -------------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("fn", ["grant", "revoke", "grantBatch", "revokeBatch"])
def test_RevertWhen_NonRegistrarWritesConsent(chain: ChainHelper, fn: str) -> None:
    s = chain.grant()
    terms = chain.terms()
    args = {
        "grant": (s, terms.pack(), rand32()),
        "revoke": (s, chain.acc.partner, 1),
        "grantBatch": ([(s, terms.pack(), rand32())],),
        "revokeBatch": ([(s, chain.acc.partner, 1)],),
    }[fn]
    with pytest.raises(errors.ConsentRegistryUnauthorizedRegistrar) as exc:
        chain.client.send(chain.consent.contract.fn(fn, *args), sender=chain.acc.outsider)
    assert same_address(exc.value.args_by_name["caller"], chain.acc.outsider)


def test_RevertWhen_RegistrarGrantsForAWalletSubject(chain: ChainHelper) -> None:
    """Only the wallet itself writes its consents: the registrar cannot grant (or renew) for it."""
    w = wallet()
    s = subject_for_wallet(w.address)
    with pytest.raises(errors.ConsentRegistrySubjectIsAWallet) as exc:
        chain.consent.grant(s, chain.terms(), rand32(), sender=chain.acc.registrar)
    assert exc.value.args_by_name == {"subject": s}
    with pytest.raises(errors.ConsentRegistrySubjectIsAWallet) as exc:
        chain.consent.grant_batch(
            [ConsentGrant(rand32(), chain.terms(), rand32()), ConsentGrant(s, chain.terms(), rand32())],
            sender=chain.acc.registrar,
        )
    assert exc.value.args_by_name == {"subject": s}
    assert chain.consent.consent_of(s, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION).nonce == 0


def test_RevertWhen_RegistrarGrantsForAWalletSubjectWithBadTerms(chain: ChainHelper) -> None:
    """The wallet-subject check comes first in the single-branch validation of ``grant``."""
    s = subject_for_wallet(wallet().address)
    with pytest.raises(errors.ConsentRegistrySubjectIsAWallet) as exc:
        raw_grant(chain, chain.terms().pack(), receipt=b"\0" * 32, subject=s)
    assert exc.value.args_by_name == {"subject": s}


def test_RevertWhen_RegistrarRevokesForAWalletSubject(chain: ChainHelper) -> None:
    """A wallet's consent, granted by its signature, cannot be revoked (nor overridden) by the registrar."""
    w = wallet()
    s = subject_for_wallet(w.address)
    chain.consent.grant_by_sig(signed_grant(chain, w), sender=chain.acc.outsider)
    p = Purpose.PRODUCT_RECOMMENDATION
    with pytest.raises(errors.ConsentRegistrySubjectIsAWallet) as exc:
        chain.consent.revoke(s, chain.acc.partner, p, sender=chain.acc.registrar)
    assert exc.value.args_by_name == {"subject": s}
    with pytest.raises(errors.ConsentRegistrySubjectIsAWallet) as exc:
        chain.consent.revoke_batch([ConsentRevocation(s, chain.acc.partner, p)], sender=chain.acc.registrar)
    assert exc.value.args_by_name == {"subject": s}
    assert chain.consent.is_consented(s, chain.acc.partner, p)
    # the wallet's own revocation still works, and the registrar cannot re-grant over it
    chain.consent.revoke_by_sig(signed_revocation(chain, w), sender=chain.acc.outsider)
    with pytest.raises(errors.ConsentRegistrySubjectIsAWallet):
        chain.consent.grant(s, chain.terms(), rand32(), sender=chain.acc.registrar)
    assert not chain.consent.is_consented(s, chain.acc.partner, p)


def test_RevertWhen_SignatureByWrongKey(chain: ChainHelper) -> None:
    w, thief = wallet(), wallet()
    grant = ConsentGrant(subject_for_wallet(w.address), chain.terms(), rand32())
    forged = chain.consent.sign_grant(thief, grant, chain.next_block_time() + 3_600)
    with pytest.raises(errors.ConsentRegistryInvalidSignature) as exc:
        chain.consent.grant_by_sig(forged, sender=chain.acc.outsider)
    assert same_address(exc.value.args_by_name["signer"], thief.address)
    assert exc.value.args_by_name["subject"] == subject_for_wallet(w.address)


def test_RevertWhen_RevocationSignedByWrongKey(chain: ChainHelper) -> None:
    w, thief = wallet(), wallet()
    chain.consent.grant_by_sig(signed_grant(chain, w), sender=chain.acc.outsider)
    revocation = ConsentRevocation(
        subject_for_wallet(w.address), chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION
    )
    forged = chain.consent.sign_revocation(thief, revocation, chain.next_block_time() + 3_600)
    with pytest.raises(errors.ConsentRegistryInvalidSignature) as exc:
        chain.consent.revoke_by_sig(forged, sender=chain.acc.outsider)
    assert same_address(exc.value.args_by_name["signer"], thief.address)


def test_RevertWhen_SignatureIsGarbage(chain: ChainHelper) -> None:
    from dataclasses import replace

    w = wallet()
    signed = replace(signed_grant(chain, w), r=b"\0" * 32)
    with pytest.raises(errors.ConsentRegistryInvalidSignature) as exc:
        chain.consent.grant_by_sig(signed, sender=chain.acc.outsider)
    assert int(exc.value.args_by_name["signer"], 16) == 0


def test_RevertWhen_SignatureReplayed(chain: ChainHelper) -> None:
    w = wallet()
    signed = signed_grant(chain, w)
    chain.consent.grant_by_sig(signed, sender=chain.acc.outsider)
    with pytest.raises(errors.ConsentRegistryInvalidNonce) as exc:
        chain.consent.grant_by_sig(signed, sender=chain.acc.outsider)
    assert exc.value.args_by_name == {"subject": subject_for_wallet(w.address), "expected": 1, "given": 0}


def test_RevertWhen_RevocationReplayedAfterRegrant(chain: ChainHelper) -> None:
    w = wallet()
    chain.consent.grant_by_sig(signed_grant(chain, w), sender=chain.acc.outsider)
    revocation = signed_revocation(chain, w)
    chain.consent.revoke_by_sig(revocation, sender=chain.acc.outsider)
    chain.consent.grant_by_sig(signed_grant(chain, w), sender=chain.acc.outsider)
    with pytest.raises(errors.ConsentRegistryInvalidNonce) as exc:
        chain.consent.revoke_by_sig(revocation, sender=chain.acc.outsider)
    assert (exc.value.args_by_name["expected"], exc.value.args_by_name["given"]) == (3, 1)


def test_RevertWhen_DeadlineExpired(chain: ChainHelper) -> None:
    w = wallet()
    signed = signed_grant(chain, w, deadline_in=60)
    chain.travel_to(signed.deadline)
    relayed_at = chain.next_block_time()  # one second past the deadline
    with pytest.raises(errors.ConsentRegistrySignatureExpired) as exc:
        chain.consent.grant_by_sig(signed, sender=chain.acc.outsider)
    assert exc.value.args_by_name == {"deadline": signed.deadline, "timestamp": relayed_at}
    assert relayed_at == signed.deadline + 1


def test_RevertWhen_RevocationDeadlineExpired(chain: ChainHelper) -> None:
    w = wallet()
    chain.consent.grant_by_sig(signed_grant(chain, w), sender=chain.acc.outsider)
    signed = signed_revocation(chain, w, deadline_in=60)
    chain.travel_to(signed.deadline)
    chain.next_block_time()  # the revocation is relayed one second past the deadline
    with pytest.raises(errors.ConsentRegistrySignatureExpired):
        chain.consent.revoke_by_sig(signed, sender=chain.acc.outsider)


def test_RevertWhen_SignedSubjectIsNotAWallet(chain: ChainHelper) -> None:
    from dataclasses import replace

    w = wallet()
    pseudonym = rand32()
    signed = replace(signed_grant(chain, w), subject=pseudonym)
    with pytest.raises(errors.ConsentRegistrySubjectNotAWallet) as exc:
        chain.consent.grant_by_sig(signed, sender=chain.acc.outsider)
    assert exc.value.args_by_name["subject"] == pseudonym


def test_RevertWhen_OneSignedGrantInABatchIsBad(chain: ChainHelper) -> None:
    w1, w2 = wallet(), wallet()
    good = signed_grant(chain, w1)
    bad = signed_grant(chain, w2, nonce=5)
    with pytest.raises(errors.ConsentRegistryInvalidNonce):
        chain.consent.grant_by_sig_batch([good, bad], sender=chain.acc.outsider)
    assert chain.consent.nonce_of(good.subject, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION) == 0


def test_RevertWhen_RevokingWhatWasNeverGranted(chain: ChainHelper) -> None:
    s = rand32()
    with pytest.raises(errors.ConsentRegistryNotGranted) as exc:
        chain.consent.revoke(s, chain.acc.partner, Purpose.MARKETING_CONTACT, sender=chain.acc.registrar)
    assert exc.value.args_by_name["subject"] == s
    assert same_address(exc.value.args_by_name["partner"], chain.acc.partner)
    assert exc.value.args_by_name["purpose"] == Purpose.MARKETING_CONTACT


def test_RevertWhen_RevokingTwice(chain: ChainHelper) -> None:
    s = chain.grant()
    chain.consent.revoke(s, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION, sender=chain.acc.registrar)
    with pytest.raises(errors.ConsentRegistryNotGranted):
        chain.consent.revoke(s, chain.acc.partner, Purpose.PRODUCT_RECOMMENDATION, sender=chain.acc.registrar)


def test_RevertWhen_ExpiryInThePast(chain: ChainHelper) -> None:
    granted_at = chain.next_block_time()
    # expiring at the grant's own second: already over (the expiry is exclusive)
    word = ConsentTerms(chain.acc.partner, Purpose.PROFILING, granted_at).pack()
    with pytest.raises(errors.ConsentRegistryInvalidExpiry) as exc:
        raw_grant(chain, word)
    assert exc.value.args_by_name == {"expiresAt": granted_at, "maxExpiresAt": granted_at + MAX_DURATION}


def test_RevertWhen_ExpiryBeyondMaxDuration(chain: ChainHelper) -> None:
    granted_at = chain.next_block_time()
    expires = granted_at + MAX_DURATION + 1
    word = ConsentTerms(chain.acc.partner, Purpose.PROFILING, expires).pack()
    with pytest.raises(errors.ConsentRegistryInvalidExpiry) as exc:
        raw_grant(chain, word)
    assert exc.value.args_by_name == {"expiresAt": expires, "maxExpiresAt": granted_at + MAX_DURATION}


def test_RevertWhen_UnknownPurpose(chain: ChainHelper) -> None:
    word = ConsentTerms(chain.acc.partner, Purpose.PROFILING, chain.next_block_time() + DAY).pack() | (
        7 << 160
    )
    with pytest.raises(errors.ConsentRegistryUnknownPurpose) as exc:
        raw_grant(chain, word)
    assert exc.value.args_by_name["purpose"] == 7


def test_RevertWhen_PartnerIsZero(chain: ChainHelper) -> None:
    word = (
        ConsentTerms(chain.acc.partner, Purpose.PROFILING, chain.next_block_time() + DAY).pack() >> 160 << 160
    )
    with pytest.raises(errors.ConsentRegistryInvalidPartner):
        raw_grant(chain, word)


def test_RevertWhen_NoticeVersionIsZero(chain: ChainHelper) -> None:
    # ConsentTerms refuses a zero version client-side: build the word by hand, partner version cleared
    word = ConsentTerms(chain.acc.partner, Purpose.PROFILING, chain.next_block_time() + DAY, 1, 1).pack()
    with pytest.raises(errors.ConsentRegistryInvalidNoticeVersion) as exc:
        raw_grant(chain, word & ~(((1 << 24) - 1) << 232))
    assert exc.value.args_by_name == {"platformNoticeVersion": 1, "partnerNoticeVersion": 0}


def test_RevertWhen_ReceiptHashIsZero(chain: ChainHelper) -> None:
    s = rand32()
    with pytest.raises(errors.ConsentRegistryMissingReceipt) as exc:
        raw_grant(chain, chain.terms().pack(), receipt=b"\0" * 32, subject=s)
    assert exc.value.args_by_name["subject"] == s


def test_RevertWhen_SignedGrantHasBadTerms(chain: ChainHelper) -> None:
    w = wallet()
    grant = ConsentGrant(subject_for_wallet(w.address), chain.terms(expires_in=MAX_DURATION + DAY), rand32())
    signed = chain.consent.sign_grant(w, grant, chain.next_block_time() + 3_600)
    with pytest.raises(errors.ConsentRegistryInvalidExpiry):
        chain.consent.grant_by_sig(signed, sender=chain.acc.outsider)


def test_RevertWhen_NoticeVersionDoesNotIncrease(chain: ChainHelper) -> None:
    with pytest.raises(errors.ConsentRegistryNoticeVersionNotIncreasing) as exc:
        chain.consent.set_platform_notice_version(1, sender=chain.acc.admin)
    assert exc.value.args_by_name == {"current": 1, "given": 1}
    current = chain.consent.partner_notice_version(chain.acc.partner)
    with pytest.raises(errors.ConsentRegistryNoticeVersionNotIncreasing):
        chain.consent.set_partner_notice_version(chain.acc.partner, current, sender=chain.acc.admin)


def test_RevertWhen_NonAdminBumpsNotice(chain: ChainHelper) -> None:
    with pytest.raises(errors.AccessControlUnauthorizedAccount) as exc:
        chain.consent.set_platform_notice_version(5, sender=chain.acc.outsider)
    assert same_address(exc.value.args_by_name["account"], chain.acc.outsider)
    assert exc.value.args_by_name["neededRole"] == keccak(text="NOTICE_ADMIN_ROLE")
    with pytest.raises(errors.AccessControlUnauthorizedAccount):
        chain.consent.set_partner_notice_version(chain.acc.partner, 9, sender=chain.acc.registrar)


def test_RevertWhen_NoticeForZeroPartner(chain: ChainHelper) -> None:
    fn = chain.consent.contract.fn("setPartnerNoticeVersion", "0x" + "00" * 20, 1)
    with pytest.raises(errors.ConsentRegistryInvalidPartner):
        chain.client.send(fn, sender=chain.acc.admin)


def test_RevertWhen_BatchCheckLengthsDiffer(chain: ChainHelper) -> None:
    with pytest.raises(errors.ConsentRegistryLengthMismatch) as exc:
        chain.consent.are_consented_at([rand32(), rand32()], chain.acc.partner, Purpose.PROFILING, [1])
    assert exc.value.args_by_name == {"subjects": 2, "times": 1}
