"""The Python mirrors of the packed types, the split rule and the Merkle tree (no chain needed)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from eth_account import Account
from hypothesis import given
from hypothesis import strategies as st

from backend.chain import merkle
from backend.chain.types import (
    PURPOSE_NAMES,
    AgreementTerms,
    ConsentTerms,
    Conversion,
    ConversionData,
    Party,
    Purpose,
    SignedConsentGrant,
    SignedConsentRevocation,
    Wallet,
    conversions_root,
    currency_code,
    currency_name,
    merkle_proof,
    purpose_from_name,
    purposes_in_mask,
    split_commission,
    subject_for_wallet,
    wallet_for_subject,
)

REPO = Path(__file__).resolve().parents[2]
addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
uint = lambda bits: st.integers(min_value=0, max_value=(1 << bits) - 1)  # noqa: E731


versions = st.integers(min_value=1, max_value=(1 << 24) - 1)


@given(addresses, st.sampled_from(list(Purpose)), uint(40), versions, versions)
def test_consent_terms_pack_round_trip(
    partner: str, purpose: Purpose, expires: int, pv: int, qv: int
) -> None:
    terms = ConsentTerms(partner, purpose, expires, pv, qv)
    word = terms.pack()
    assert 0 <= word < 1 << 256
    assert word & ((1 << 160) - 1) == int(partner, 16)
    assert (word >> 160) & 0xFF == purpose
    assert (word >> 168) & ((1 << 40) - 1) == expires
    assert ConsentTerms.unpack(word) == terms


@given(uint(64), uint(40), uint(40), uint(112))
def test_conversion_data_pack_round_trip(cid: int, time: int, rec: int, value: int) -> None:
    data = ConversionData(cid, time, rec, value)
    word = data.pack()
    assert word >> 144 == value
    assert ConversionData.unpack(word) == data


def test_out_of_range_fields_are_refused_with_the_field_name() -> None:
    with pytest.raises(ValueError, match="expires_at"):
        ConsentTerms("0x" + "11" * 20, Purpose.PROFILING, 1 << 40)
    with pytest.raises(ValueError, match="value"):
        ConversionData(1, 1, 1, 1 << 112)
    with pytest.raises(ValueError, match="not an Ethereum address"):
        ConsentTerms("0x1234", Purpose.PROFILING, 1)


@pytest.mark.parametrize("field", ["platform_notice_version", "partner_notice_version"])
def test_zero_notice_version_is_refused_client_side_by_name(field: str) -> None:
    versions = {"platform_notice_version": 1, "partner_notice_version": 1, field: 0}
    with pytest.raises(ValueError, match=f"{field} must be at least 1, got 0"):
        ConsentTerms("0x" + "11" * 20, Purpose.PROFILING, 1, **versions)
    shift = {"platform_notice_version": 208, "partner_notice_version": 232}[field]
    word = ConsentTerms("0x" + "11" * 20, Purpose.PROFILING, 1).pack() & ~(((1 << 24) - 1) << shift)
    with pytest.raises(ValueError, match=field):
        ConsentTerms.unpack(word)


@pytest.mark.parametrize(
    ("field", "bad"),
    [("nonce", 1 << 32), ("nonce", -1), ("deadline", 1 << 40), ("deadline", -1), ("nonce", True)],
)
def test_signed_writes_range_check_nonce_and_deadline(field: str, bad: int) -> None:
    terms = ConsentTerms("0x" + "11" * 20, Purpose.PROFILING, 1)
    values = {"nonce": (1 << 32) - 1, "deadline": (1 << 40) - 1, field: bad}
    with pytest.raises(ValueError, match=field):
        SignedConsentGrant(b"\1" * 32, terms, b"\2" * 32, r=b"\3" * 32, vs=b"\4" * 32, **values)
    with pytest.raises(ValueError, match=field):
        SignedConsentRevocation(
            b"\1" * 32, "0x" + "11" * 20, Purpose.PROFILING, r=b"\3" * 32, vs=b"\4" * 32, **values
        )
    ok = {"nonce": (1 << 32) - 1, "deadline": (1 << 40) - 1}
    assert (
        SignedConsentGrant(b"\1" * 32, terms, b"\2" * 32, r=b"\3" * 32, vs=b"\4" * 32, **ok).nonce
        == ok["nonce"]
    )


def test_subject_for_wallet_is_the_address_left_padded() -> None:
    w = Wallet(b"\x05" * 32)
    subject = subject_for_wallet(w)
    assert subject[:12] == b"\0" * 12 and subject[12:] == bytes.fromhex(w.address[2:])
    assert wallet_for_subject(subject) == w.address
    assert wallet_for_subject(b"\xff" * 32) is None


def test_wallet_is_an_address_that_keeps_its_key_out_of_repr() -> None:
    w = Wallet(b"\x09" * 32)
    assert w == Account.from_key(b"\x09" * 32).address
    assert w.address == str(w) and w.private_key == b"\x09" * 32
    assert (b"\x09" * 32).hex() not in repr(w)


def test_purposes_in_mask_and_currency() -> None:
    assert purposes_in_mask(0b1010) == {Purpose.PRODUCT_RECOMMENDATION, Purpose.DATA_SHARING}
    assert currency_code("CNY") == b"CNY" + b"\0" * 29
    assert currency_name(currency_code("wei")) == "wei"


def _solidity_purposes() -> dict[str, int]:
    """The ``uint8 internal constant NAME = N;`` entries of ``library Purposes`` in Purposes.sol."""
    source = (REPO / "contracts" / "types" / "Purposes.sol").read_text(encoding="utf-8")
    library = re.search(r"library\s+Purposes\s*\{(.*)\n\}", source, re.DOTALL)
    assert library is not None, "no `library Purposes` in contracts/types/Purposes.sol"
    constants = re.findall(r"uint8\s+internal\s+constant\s+([A-Z_]+)\s*=\s*(\d+)\s*;", library.group(1))
    assert constants, "no purpose constants found in contracts/types/Purposes.sol"
    return {name: int(value) for name, value in constants}


def test_purpose_enum_is_purposes_sol_bit_for_bit() -> None:
    solidity = _solidity_purposes()
    count = solidity.pop("COUNT")
    assert {p.name: p.value for p in Purpose} == solidity
    assert count == len(Purpose) and sorted(p.value for p in Purpose) == list(range(count))
    assert [p.bit for p in Purpose] == [1 << solidity[p.name] for p in Purpose]
    assert purposes_in_mask((1 << count) - 1) == frozenset(Purpose)


def test_purpose_names_are_derived_from_the_enum() -> None:
    assert [p.api_name for p in Purpose] == [
        "profiling",
        "product_recommendation",
        "marketing_contact",
        "data_sharing",
    ]
    assert Purpose.PRODUCT_RECOMMENDATION.display_name == "ProductRecommendation"
    assert {p: p.api_name for p in Purpose} == PURPOSE_NAMES
    assert all(purpose_from_name(p.api_name) is p for p in Purpose)
    assert purpose_from_name("Profiling") is None and purpose_from_name("") is None


def _terms(shares: list[int], rate: int) -> AgreementTerms:
    parties = tuple(Party("0x" + f"{i + 1:040x}", s) for i, s in enumerate(shares))
    return AgreementTerms(
        parties=parties,
        partner=parties[1].account,
        reporter=parties[0].account,
        commission_rate=rate,
        attribution_window=1,
        validation_window=1,
        valid_from=0,
        valid_until=1,
    )


@st.composite
def share_lists(draw: st.DrawFn) -> list[int]:
    n = draw(st.integers(min_value=2, max_value=32))
    cuts = sorted(draw(st.lists(st.integers(0, 1_000_000), min_size=n - 1, max_size=n - 1)))
    bounds = [0, *cuts, 1_000_000]
    return [b - a for a, b in itertools.pairwise(bounds)]


@given(share_lists(), st.integers(0, 1_000_000), st.integers(0, (1 << 112) - 1))
def test_split_is_exact_to_the_unit(shares: list[int], rate: int, value: int) -> None:
    terms = _terms(shares, rate)
    commission, amounts = split_commission(terms, value)
    assert commission == value * rate // 1_000_000
    assert sum(amounts) == commission
    for share, amount in zip(shares[1:], amounts[1:], strict=True):
        assert amount == commission * share // 1_000_000
    # the first party's remainder is below one unit per party
    assert 0 <= amounts[0] - commission * shares[0] // 1_000_000 < len(shares)


def test_terms_hash_is_keccak_of_abi_encode() -> None:
    t = _terms([600_000, 400_000], 50_000)
    assert len(t.hash()) == 32
    assert t.hash() != _terms([400_000, 600_000], 50_000).hash()
    assert AgreementTerms.from_abi(t.as_abi()) == t


def _conversions(n: int) -> list[Conversion]:
    return [
        Conversion(ConversionData(i + 1, 100, 50, 7 + i), bytes([i]) * 32, bytes([i + 1]) * 32)
        for i in range(n)
    ]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 16, 33])
def test_every_merkle_proof_verifies(n: int) -> None:
    conversions = _conversions(n)
    root = conversions_root(conversions)
    if n == 1:
        assert root == conversions[0].leaf() and merkle_proof(conversions, 0) == []
    for i, c in enumerate(conversions):
        assert merkle.verify(merkle_proof(conversions, i), root, c.leaf())
    wrong = Conversion(ConversionData(999, 100, 50, 7), b"\x01" * 32, b"\x02" * 32)
    assert not merkle.verify(merkle_proof(conversions, 0), root, wrong.leaf())


def test_merkle_refuses_empty_and_bad_index() -> None:
    with pytest.raises(ValueError):
        merkle.root([])
    with pytest.raises(IndexError):
        merkle.proof([b"\0" * 32], 1)
