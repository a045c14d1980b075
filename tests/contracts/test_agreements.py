"""PartnershipAgreements: proposing, accepting (by transaction and by signature), amending, terminating,
the views, and each refusal with its named error."""

from __future__ import annotations

from dataclasses import replace

import pytest
from eth_abi import encode
from eth_account import Account
from eth_utils import keccak

from backend.chain import errors
from backend.chain.types import AgreementStatus, Party, Wallet

from .conftest import DAY, ChainHelper, same_address

ZERO = "0x" + "00" * 20


def test_propose_records_hash_state_and_proposer_acceptance(chain: ChainHelper) -> None:
    terms = chain.agreement_terms()
    result = chain.agreements.propose(terms, sender=chain.acc.platform)
    agreement_id = result.value
    assert agreement_id == chain.agreements.agreement_count() == 1
    proposed = result.event("AgreementProposed")
    assert proposed["agreementId"] == agreement_id
    assert proposed["termsHash"] == terms.hash()
    assert same_address(proposed["proposer"], chain.acc.platform)
    from backend.chain.types import AgreementTerms

    assert AgreementTerms.from_abi(proposed["terms"]) == terms  # the full terms can be rebuilt from the log
    assert same_address(result.event("AgreementAccepted")["party"], chain.acc.platform)
    state = chain.agreements.agreement_of(agreement_id)
    assert state.terms_hash == terms.hash()
    assert state.status == AgreementStatus.PROPOSED
    assert state.accepted_mask == 0b001
    assert state.party_count == 3
    assert (state.valid_from, state.valid_until) == (terms.valid_from, terms.valid_until)
    assert not chain.agreements.is_active(agreement_id)
    assert chain.agreements.terms_of(agreement_id) == terms


def test_any_party_may_propose(chain: ChainHelper) -> None:
    a = chain.propose(proposer=chain.acc.creator)
    assert chain.agreements.has_accepted(a.id, 2) and not chain.agreements.has_accepted(a.id, 0)


def test_hash_terms_matches_python(chain: ChainHelper) -> None:
    terms = chain.agreement_terms()
    assert chain.agreements.hash_terms(terms) == terms.hash()
    assert terms.hash() == keccak(
        encode(
            ["((address,uint32)[],address,address,uint32,uint32,uint32,uint40,uint40,bytes32,uint256)"],
            [terms.as_abi()],
        )
    )


def test_accepting_by_every_party_activates(chain: ChainHelper) -> None:
    a = chain.propose()
    r1 = chain.agreements.accept(a.id, a.terms, sender=chain.acc.partner)
    assert same_address(r1.event("AgreementAccepted")["party"], chain.acc.partner)
    assert not r1.events_named("AgreementActivated")
    assert chain.agreements.agreement_of(a.id).accepted_mask == 0b011
    r2 = chain.agreements.accept(a.id, a.terms, sender=chain.acc.creator)
    assert r2.event("AgreementActivated")["agreementId"] == a.id
    state = chain.agreements.agreement_of(a.id)
    assert state.status == AgreementStatus.ACTIVE and state.accepted_mask == 0b111
    assert chain.agreements.is_active(a.id)
    assert all(chain.agreements.has_accepted(a.id, i) for i in range(3))
    assert not chain.agreements.has_accepted(a.id, 3)
    assert not chain.agreements.has_accepted(a.id, 300)
    chain.agreements.require_active_terms(a.id, a.terms)
    chain.agreements.require_terms(a.id, a.terms)


def test_accept_by_signature_relayed_by_anyone(chain: ChainHelper) -> None:
    a = chain.propose()
    deadline = chain.next_block_time() + 3_600
    for party in (chain.acc.partner, chain.acc.creator):
        sig = chain.agreements.sign_acceptance(party, a.id, a.terms, deadline)
        result = chain.agreements.accept_by_sig(
            a.id, a.terms, party, deadline, sig, sender=chain.acc.outsider
        )
        assert same_address(result.event("AgreementAccepted")["party"], party)
    assert chain.agreements.is_active(a.id)


def test_eip712_of_acceptances(chain: ChainHelper) -> None:
    assert chain.agreements.accept_agreement_typehash() == keccak(
        text="AcceptAgreement(uint256 agreementId,bytes32 termsHash,address party,uint40 deadline)"
    )
    domain = chain.agreements.eip712_domain()
    assert domain["name"] == "KnowLedger PartnershipAgreements" and domain["version"] == "1"
    assert domain["chainId"] == chain.client.chain_id
    type_hash = keccak(
        text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    )
    assert chain.agreements.domain_separator() == keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                type_hash,
                keccak(text=domain["name"]),
                keccak(text="1"),
                domain["chainId"],
                chain.agreements.address,
            ],
        )
    )


def test_is_party(chain: ChainHelper) -> None:
    a = chain.propose()
    assert chain.agreements.is_party(a.id, chain.acc.partner)
    assert not chain.agreements.is_party(a.id, chain.acc.outsider)
    assert not chain.agreements.is_party(a.id + 1, chain.acc.partner)


def test_is_active_follows_the_validity_period(chain: ChainHelper) -> None:
    proposed_at = chain.next_block_time()
    valid_from, valid_until = proposed_at + DAY, proposed_at + 3 * DAY
    a = chain.activate(chain.propose(chain.agreement_terms(valid_from=valid_from, valid_until=valid_until)))
    assert chain.agreements.agreement_of(a.id).status == AgreementStatus.ACTIVE
    assert not chain.agreements.is_active(a.id)  # not yet
    with pytest.raises(errors.PartnershipAgreementsNotActive):
        chain.agreements.require_active_terms(a.id, a.terms)
    chain.travel_to(valid_from - 1)
    assert not chain.agreements.is_active(a.id)
    chain.travel_to(valid_from)
    assert chain.agreements.is_active(a.id)
    chain.travel_to(valid_until - 1)
    assert chain.agreements.is_active(a.id)
    chain.travel_to(valid_until)
    assert not chain.agreements.is_active(a.id)  # over


def test_terminate_by_any_party(chain: ChainHelper) -> None:
    a = chain.active_agreement()
    result = chain.agreements.terminate(a.id, a.terms, sender=chain.acc.creator)
    ev = result.event("AgreementTerminated")
    assert ev["agreementId"] == a.id and same_address(ev["by"], chain.acc.creator)
    assert chain.agreements.agreement_of(a.id).status == AgreementStatus.TERMINATED
    assert not chain.agreements.is_active(a.id)
    proposed = chain.propose()
    chain.agreements.terminate(proposed.id, proposed.terms, sender=chain.acc.partner)
    assert chain.agreements.agreement_of(proposed.id).status == AgreementStatus.TERMINATED


def test_amendment_supersedes_when_active(chain: ChainHelper) -> None:
    old = chain.active_agreement()
    new_terms = chain.agreement_terms(commission_rate=60_000, supersedes=old.id)
    new = chain.propose(new_terms, proposer=chain.acc.partner)
    assert chain.agreements.is_active(old.id)  # the old terms hold until the amendment is accepted by all
    chain.agreements.accept(new.id, new.terms, sender=chain.acc.platform)
    result = chain.agreements.accept(new.id, new.terms, sender=chain.acc.creator)
    ev = result.event("AgreementSuperseded")
    assert (ev["previousId"], ev["nextId"]) == (old.id, new.id)
    assert chain.agreements.agreement_of(old.id).status == AgreementStatus.SUPERSEDED
    assert chain.agreements.is_active(new.id) and not chain.agreements.is_active(old.id)


def test_activation_and_end_times_and_the_in_force_window(chain: ChainHelper) -> None:
    proposed = chain.propose()
    state = chain.agreements.agreement_of(proposed.id)
    assert (state.activated_at, state.ended_at, state.in_force) == (0, 0, None)
    a = chain.activate(proposed)
    activated = chain.now()
    state = chain.agreements.agreement_of(a.id)
    assert (state.activated_at, state.ended_at) == (activated, 0)
    # validFrom (a day ago) is before the activation: the window starts at the activation
    window = (activated, a.terms.valid_until)
    assert state.in_force == window == chain.agreements.require_terms_in_force(a.id, a.terms)
    chain.advance(DAY)
    chain.agreements.terminate(a.id, a.terms, sender=chain.acc.creator)
    ended = chain.now()
    state = chain.agreements.agreement_of(a.id)
    assert (state.status, state.activated_at, state.ended_at) == (
        AgreementStatus.TERMINATED,
        activated,
        ended,
    )
    assert state.in_force == (activated, ended) == chain.agreements.require_terms_in_force(a.id, a.terms)


def test_in_force_window_of_a_superseded_agreement_ends_at_the_supersession(chain: ChainHelper) -> None:
    now = chain.next_block_time()
    old = chain.active_agreement(valid_from=now + DAY, valid_until=now + 10 * DAY)
    new = chain.propose(chain.agreement_terms(supersedes=old.id))
    chain.advance(2 * DAY)
    chain.activate(new)
    superseded = chain.now()
    state = chain.agreements.agreement_of(old.id)
    assert (state.status, state.ended_at) == (AgreementStatus.SUPERSEDED, superseded)
    # validFrom is after the activation: the window starts at validFrom
    assert chain.agreements.require_terms_in_force(old.id, old.terms) == (now + DAY, superseded)
    assert chain.agreements.require_terms_in_force(new.id, new.terms) == (superseded, new.terms.valid_until)


def test_partner_with_zero_share_and_many_parties(chain: ChainHelper) -> None:
    extra = [Wallet(Account.create().key).address for _ in range(29)]
    parties = (
        Party(chain.acc.platform, 1_000_000 - 29 * 1_000),
        Party(chain.acc.partner, 0),
        Party(chain.acc.creator, 0),
        *(Party(x, 1_000) for x in extra),
    )
    a = chain.propose(chain.agreement_terms(parties=parties))
    assert chain.agreements.agreement_of(a.id).party_count == 32


# -------------------------------------------------------------------------------------------- refusals


def test_RevertWhen_NonPartyAccepts(chain: ChainHelper) -> None:
    a = chain.propose()
    with pytest.raises(errors.PartnershipAgreementsNotAParty) as exc:
        chain.agreements.accept(a.id, a.terms, sender=chain.acc.outsider)
    assert same_address(exc.value.args_by_name["account"], chain.acc.outsider)


def test_RevertWhen_NonPartyProposes(chain: ChainHelper) -> None:
    with pytest.raises(errors.PartnershipAgreementsNotAParty) as exc:
        chain.agreements.propose(chain.agreement_terms(), sender=chain.acc.outsider)
    assert same_address(exc.value.args_by_name["account"], chain.acc.outsider)


def test_RevertWhen_NonPartyTerminates(chain: ChainHelper) -> None:
    a = chain.active_agreement()
    with pytest.raises(errors.PartnershipAgreementsNotAParty):
        chain.agreements.terminate(a.id, a.terms, sender=chain.acc.outsider)


def test_RevertWhen_AgreementNotAccepted(chain: ChainHelper) -> None:
    a = chain.propose()
    with pytest.raises(errors.PartnershipAgreementsNotActive) as exc:
        chain.agreements.require_active_terms(a.id, a.terms)
    assert exc.value.args_by_name["agreementId"] == a.id


def test_RevertWhen_AcceptingTwice(chain: ChainHelper) -> None:
    a = chain.propose()
    with pytest.raises(errors.PartnershipAgreementsAlreadyAccepted) as exc:
        chain.agreements.accept(a.id, a.terms, sender=chain.acc.platform)
    assert exc.value.args_by_name["agreementId"] == a.id
    assert same_address(exc.value.args_by_name["party"], chain.acc.platform)


def test_RevertWhen_AcceptingAnActiveAgreement(chain: ChainHelper) -> None:
    a = chain.active_agreement()
    with pytest.raises(errors.PartnershipAgreementsNotProposed) as exc:
        chain.agreements.accept(a.id, a.terms, sender=chain.acc.partner)
    assert exc.value.args_by_name == {"agreementId": a.id, "status": AgreementStatus.ACTIVE}


def test_RevertWhen_TermsMismatch(chain: ChainHelper) -> None:
    a = chain.propose()
    other = replace(a.terms, commission_rate=a.terms.commission_rate + 1)
    with pytest.raises(errors.PartnershipAgreementsTermsMismatch) as exc:
        chain.agreements.accept(a.id, other, sender=chain.acc.partner)
    assert exc.value.args_by_name == {"agreementId": a.id, "expected": a.terms.hash(), "given": other.hash()}
    with pytest.raises(errors.PartnershipAgreementsTermsMismatch):
        chain.agreements.require_terms(a.id, other)


def test_RevertWhen_UnknownAgreement(chain: ChainHelper) -> None:
    with pytest.raises(errors.PartnershipAgreementsUnknownAgreement) as exc:
        chain.agreements.accept(42, chain.agreement_terms(), sender=chain.acc.partner)
    assert exc.value.args_by_name["agreementId"] == 42


def test_RevertWhen_AcceptanceSignedByWrongKey(chain: ChainHelper) -> None:
    a = chain.propose()
    deadline = chain.next_block_time() + 3_600
    sig = chain.agreements.sign_acceptance(chain.acc.outsider, a.id, a.terms, deadline)
    with pytest.raises(errors.PartnershipAgreementsInvalidSignature) as exc:
        chain.agreements.accept_by_sig(
            a.id, a.terms, chain.acc.partner, deadline, sig, sender=chain.acc.outsider
        )
    assert same_address(exc.value.args_by_name["party"], chain.acc.partner)


def test_RevertWhen_AcceptanceSignatureReplayed(chain: ChainHelper) -> None:
    a = chain.propose()
    deadline = chain.next_block_time() + 3_600
    sig = chain.agreements.sign_acceptance(chain.acc.partner, a.id, a.terms, deadline)
    chain.agreements.accept_by_sig(a.id, a.terms, chain.acc.partner, deadline, sig, sender=chain.acc.outsider)
    with pytest.raises(errors.PartnershipAgreementsAlreadyAccepted):
        chain.agreements.accept_by_sig(
            a.id, a.terms, chain.acc.partner, deadline, sig, sender=chain.acc.outsider
        )


def test_RevertWhen_AcceptanceDeadlineExpired(chain: ChainHelper) -> None:
    a = chain.propose()
    deadline = chain.next_block_time() + 60
    sig = chain.agreements.sign_acceptance(chain.acc.partner, a.id, a.terms, deadline)
    chain.travel_to(deadline)
    relayed_at = chain.next_block_time()  # one second past the deadline
    with pytest.raises(errors.PartnershipAgreementsSignatureExpired) as exc:
        chain.agreements.accept_by_sig(
            a.id, a.terms, chain.acc.partner, deadline, sig, sender=chain.acc.outsider
        )
    assert exc.value.args_by_name == {"deadline": deadline, "timestamp": relayed_at}
    assert relayed_at == deadline + 1


def test_RevertWhen_AcceptanceSignatureForAnotherAgreement(chain: ChainHelper) -> None:
    a, b = chain.propose(), chain.propose()
    deadline = chain.next_block_time() + 3_600
    sig = chain.agreements.sign_acceptance(chain.acc.partner, a.id, a.terms, deadline)
    with pytest.raises(errors.PartnershipAgreementsInvalidSignature):
        chain.agreements.accept_by_sig(
            b.id, b.terms, chain.acc.partner, deadline, sig, sender=chain.acc.outsider
        )


@pytest.mark.parametrize(
    ("shares", "total"),
    [((500_000, 300_000, 199_999), 999_999), ((500_000, 300_000, 200_001), 1_000_001), ((0, 0, 0), 0)],
)
def test_RevertWhen_BadShares(chain: ChainHelper, shares: tuple[int, int, int], total: int) -> None:
    parties = tuple(Party(p.account, s) for p, s in zip(chain.agreement_terms().parties, shares, strict=True))
    with pytest.raises(errors.PartnershipAgreementsInvalidShares) as exc:
        chain.agreements.propose(chain.agreement_terms(parties=parties), sender=chain.acc.platform)
    assert exc.value.args_by_name["sum"] == total


def test_RevertWhen_TooFewOrTooManyParties(chain: ChainHelper) -> None:
    one = (Party(chain.acc.platform, 1_000_000),)
    with pytest.raises(errors.PartnershipAgreementsInvalidParties) as exc:
        chain.agreements.propose(
            chain.agreement_terms(parties=one, partner=chain.acc.platform), sender=chain.acc.platform
        )
    assert exc.value.args_by_name["count"] == 1
    many = (
        Party(chain.acc.platform, 1_000_000),
        *(Party(Wallet(Account.create().key).address, 0) for _ in range(32)),
    )
    with pytest.raises(errors.PartnershipAgreementsInvalidParties) as exc:
        chain.agreements.propose(
            chain.agreement_terms(parties=many, partner=chain.acc.platform), sender=chain.acc.platform
        )
    assert exc.value.args_by_name["count"] == 33


def test_RevertWhen_PartyIsDuplicatedOrZero(chain: ChainHelper) -> None:
    dup = (
        Party(chain.acc.platform, 500_000),
        Party(chain.acc.partner, 300_000),
        Party(chain.acc.platform, 200_000),
    )
    with pytest.raises(errors.PartnershipAgreementsInvalidParty) as exc:
        chain.agreements.propose(chain.agreement_terms(parties=dup), sender=chain.acc.platform)
    assert exc.value.args_by_name["index"] == 2 and same_address(
        exc.value.args_by_name["account"], chain.acc.platform
    )
    zero = (Party(chain.acc.platform, 500_000), Party(chain.acc.partner, 300_000), Party(ZERO, 200_000))
    with pytest.raises(errors.PartnershipAgreementsInvalidParty) as exc:
        chain.agreements.propose(chain.agreement_terms(parties=zero), sender=chain.acc.platform)
    assert exc.value.args_by_name["index"] == 2


def test_RevertWhen_CommissionRateAboveOne(chain: ChainHelper) -> None:
    with pytest.raises(errors.PartnershipAgreementsInvalidCommissionRate) as exc:
        chain.agreements.propose(chain.agreement_terms(commission_rate=1_000_001), sender=chain.acc.platform)
    assert exc.value.args_by_name["commissionRate"] == 1_000_001


def test_RevertWhen_ValidityEmptyOrOver(chain: ChainHelper) -> None:
    now = chain.now()
    with pytest.raises(errors.PartnershipAgreementsInvalidValidity) as exc:
        chain.agreements.propose(
            chain.agreement_terms(valid_from=now + 10, valid_until=now + 10), sender=chain.acc.platform
        )
    assert exc.value.args_by_name == {"validFrom": now + 10, "validUntil": now + 10}
    with pytest.raises(errors.PartnershipAgreementsInvalidValidity):
        chain.agreements.propose(
            chain.agreement_terms(valid_from=now - 20, valid_until=now - 10), sender=chain.acc.platform
        )


@pytest.mark.parametrize(
    ("field", "reason"),
    [
        ("partner", "partner not a party"),
        ("reporter", "zero reporter"),
        ("attribution_window", "zero attribution window"),
        ("currency", "zero currency"),
        ("supersedes", "bad supersedes"),
    ],
)
def test_RevertWhen_InvalidTerms(chain: ChainHelper, field: str, reason: str) -> None:
    value = {
        "partner": chain.acc.outsider,
        "reporter": ZERO,
        "attribution_window": 0,
        "currency": b"\0" * 32,
        "supersedes": 99,
    }[field]
    with pytest.raises(errors.PartnershipAgreementsInvalidTerms) as exc:
        chain.agreements.propose(chain.agreement_terms(**{field: value}), sender=chain.acc.platform)
    assert exc.value.args_by_name["reason"] == reason


def test_RevertWhen_AmendmentProposedByOutsiderOfTheOldAgreement(chain: ChainHelper) -> None:
    old = chain.active_agreement()
    parties = (Party(chain.acc.outsider, 500_000), Party(chain.acc.partner, 500_000))
    terms = chain.agreement_terms(parties=parties, supersedes=old.id)
    with pytest.raises(errors.PartnershipAgreementsNotAParty) as exc:
        chain.agreements.propose(terms, sender=chain.acc.outsider)
    assert same_address(exc.value.args_by_name["account"], chain.acc.outsider)


def test_RevertWhen_AmendmentOfATerminatedAgreementCompletes(chain: ChainHelper) -> None:
    old = chain.active_agreement()
    new = chain.propose(chain.agreement_terms(supersedes=old.id))
    chain.agreements.terminate(old.id, old.terms, sender=chain.acc.partner)
    chain.agreements.accept(new.id, new.terms, sender=chain.acc.partner)
    with pytest.raises(errors.PartnershipAgreementsCannotSupersede) as exc:
        chain.agreements.accept(new.id, new.terms, sender=chain.acc.creator)
    assert exc.value.args_by_name == {
        "agreementId": new.id,
        "previousId": old.id,
        "status": AgreementStatus.TERMINATED,
    }
    assert chain.agreements.agreement_of(old.id).status == AgreementStatus.TERMINATED
    assert chain.agreements.agreement_of(new.id).status == AgreementStatus.PROPOSED
    assert not chain.agreements.is_active(new.id)


def test_RevertWhen_SecondAmendmentOfTheSameAgreementCompletes(chain: ChainHelper) -> None:
    """Two amendments of one agreement: only the first to collect every acceptance activates."""
    old = chain.active_agreement()
    first = chain.propose(chain.agreement_terms(supersedes=old.id))
    second = chain.propose(chain.agreement_terms(supersedes=old.id, commission_rate=60_000))
    chain.activate(first)
    chain.agreements.accept(second.id, second.terms, sender=chain.acc.partner)
    with pytest.raises(errors.PartnershipAgreementsCannotSupersede) as exc:
        chain.agreements.accept(second.id, second.terms, sender=chain.acc.creator)
    assert exc.value.args_by_name == {
        "agreementId": second.id,
        "previousId": old.id,
        "status": AgreementStatus.SUPERSEDED,
    }
    assert chain.agreements.is_active(first.id) and not chain.agreements.is_active(second.id)
    assert chain.agreements.agreement_of(old.id).status == AgreementStatus.SUPERSEDED


def test_RevertWhen_AmendmentChangesThePartner(chain: ChainHelper) -> None:
    """A minor party cannot replace the agreement with one between itself and a friend."""
    old = chain.active_agreement()
    creator, friend = chain.acc.creator, chain.acc.outsider
    terms = chain.agreement_terms(
        parties=(Party(creator, 500_000), Party(friend, 500_000)),
        partner=friend,
        reporter=creator,
        supersedes=old.id,
    )
    with pytest.raises(errors.PartnershipAgreementsPartnerChanged) as exc:
        chain.agreements.propose(terms, sender=creator)
    assert exc.value.args_by_name["previousId"] == old.id
    assert same_address(exc.value.args_by_name["partner"], friend)
    # another party of the old agreement as partner is refused too: the partner must be the same account
    terms = chain.agreement_terms(partner=chain.acc.creator, supersedes=old.id)
    with pytest.raises(errors.PartnershipAgreementsPartnerChanged):
        chain.agreements.propose(terms, sender=chain.acc.platform)
    assert chain.agreements.is_active(old.id)


def test_RevertWhen_TermsInForceOfAnAgreementNeverActivated(chain: ChainHelper) -> None:
    proposed = chain.propose()
    with pytest.raises(errors.PartnershipAgreementsNotActive) as exc:
        chain.agreements.require_terms_in_force(proposed.id, proposed.terms)
    assert exc.value.args_by_name == {"agreementId": proposed.id}
    chain.agreements.terminate(proposed.id, proposed.terms, sender=chain.acc.platform)
    with pytest.raises(errors.PartnershipAgreementsNotActive):
        chain.agreements.require_terms_in_force(proposed.id, proposed.terms)
    with pytest.raises(errors.PartnershipAgreementsTermsMismatch):
        chain.agreements.require_terms_in_force(proposed.id, replace(proposed.terms, commission_rate=1))


def test_RevertWhen_AmendingATerminatedAgreement(chain: ChainHelper) -> None:
    old = chain.active_agreement()
    chain.agreements.terminate(old.id, old.terms, sender=chain.acc.platform)
    with pytest.raises(errors.PartnershipAgreementsInvalidTerms):
        chain.agreements.propose(chain.agreement_terms(supersedes=old.id), sender=chain.acc.platform)


def test_RevertWhen_TerminatingTwice(chain: ChainHelper) -> None:
    a = chain.active_agreement()
    chain.agreements.terminate(a.id, a.terms, sender=chain.acc.platform)
    with pytest.raises(errors.PartnershipAgreementsCannotTerminate) as exc:
        chain.agreements.terminate(a.id, a.terms, sender=chain.acc.platform)
    assert exc.value.args_by_name == {"agreementId": a.id, "status": AgreementStatus.TERMINATED}


def test_RevertWhen_AcceptingATerminatedAgreement(chain: ChainHelper) -> None:
    a = chain.propose()
    chain.agreements.terminate(a.id, a.terms, sender=chain.acc.platform)
    with pytest.raises(errors.PartnershipAgreementsNotProposed) as exc:
        chain.agreements.accept(a.id, a.terms, sender=chain.acc.partner)
    assert exc.value.args_by_name["status"] == AgreementStatus.TERMINATED
