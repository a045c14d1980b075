"""EIP-712 typed data for the wallet paths: consent grants/revocations and agreement acceptances.

The typed data is what a wallet shows its user, so it is readable (the consent terms unpacked, the purpose as
a number with its meaning documented), while the contract takes the packed ``ConsentTerms`` word in calldata
and rebuilds the same struct hash. ``*_typed_data`` return the full message (for a browser wallet's
``eth_signTypedData_v4``); ``sign_*`` sign it locally with a key (tests, scripts, custodial wallets).
Consent signatures are returned in EIP-2098 compact form (``r``, ``vs``), which the registry expects.
"""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data

from .types import (
    AgreementTerms,
    ConsentGrant,
    ConsentRevocation,
    SignedConsentGrant,
    SignedConsentRevocation,
    checksum,
    to_bytes32,
)

CONSENT_DOMAIN_NAME = "KnowLedger ConsentRegistry"
AGREEMENTS_DOMAIN_NAME = "KnowLedger PartnershipAgreements"
DOMAIN_VERSION = "1"

_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]

CONSENT_GRANT_TYPE = [
    {"name": "subject", "type": "bytes32"},
    {"name": "partner", "type": "address"},
    {"name": "purpose", "type": "uint8"},
    {"name": "expiresAt", "type": "uint40"},
    {"name": "platformNoticeVersion", "type": "uint24"},
    {"name": "partnerNoticeVersion", "type": "uint24"},
    {"name": "receiptHash", "type": "bytes32"},
    {"name": "nonce", "type": "uint32"},
    {"name": "deadline", "type": "uint40"},
]

CONSENT_REVOCATION_TYPE = [
    {"name": "subject", "type": "bytes32"},
    {"name": "partner", "type": "address"},
    {"name": "purpose", "type": "uint8"},
    {"name": "nonce", "type": "uint32"},
    {"name": "deadline", "type": "uint40"},
]

ACCEPT_AGREEMENT_TYPE = [
    {"name": "agreementId", "type": "uint256"},
    {"name": "termsHash", "type": "bytes32"},
    {"name": "party", "type": "address"},
    {"name": "deadline", "type": "uint40"},
]


def _domain(name: str, contract: str, chain_id: int) -> dict[str, Any]:
    return {
        "name": name,
        "version": DOMAIN_VERSION,
        "chainId": int(chain_id),
        "verifyingContract": checksum(contract),
    }


def consent_grant_typed_data(
    registry_address: str, chain_id: int, grant: ConsentGrant, nonce: int, deadline: int
) -> dict[str, Any]:
    t = grant.terms
    return {
        "types": {"EIP712Domain": _DOMAIN_TYPE, "ConsentGrant": CONSENT_GRANT_TYPE},
        "primaryType": "ConsentGrant",
        "domain": _domain(CONSENT_DOMAIN_NAME, registry_address, chain_id),
        "message": {
            "subject": grant.subject,
            "partner": t.partner,
            "purpose": int(t.purpose),
            "expiresAt": t.expires_at,
            "platformNoticeVersion": t.platform_notice_version,
            "partnerNoticeVersion": t.partner_notice_version,
            "receiptHash": grant.receipt_hash,
            "nonce": int(nonce),
            "deadline": int(deadline),
        },
    }


def consent_revocation_typed_data(
    registry_address: str, chain_id: int, revocation: ConsentRevocation, nonce: int, deadline: int
) -> dict[str, Any]:
    return {
        "types": {"EIP712Domain": _DOMAIN_TYPE, "ConsentRevocation": CONSENT_REVOCATION_TYPE},
        "primaryType": "ConsentRevocation",
        "domain": _domain(CONSENT_DOMAIN_NAME, registry_address, chain_id),
        "message": {
            "subject": revocation.subject,
            "partner": revocation.partner,
            "purpose": int(revocation.purpose),
            "nonce": int(nonce),
            "deadline": int(deadline),
        },
    }


def agreement_acceptance_typed_data(
    agreements_address: str, chain_id: int, agreement_id: int, terms_hash: bytes, party: str, deadline: int
) -> dict[str, Any]:
    return {
        "types": {"EIP712Domain": _DOMAIN_TYPE, "AcceptAgreement": ACCEPT_AGREEMENT_TYPE},
        "primaryType": "AcceptAgreement",
        "domain": _domain(AGREEMENTS_DOMAIN_NAME, agreements_address, chain_id),
        "message": {
            "agreementId": int(agreement_id),
            "termsHash": to_bytes32(terms_hash),
            "party": checksum(party),
            "deadline": int(deadline),
        },
    }


def _sign(private_key: bytes | str, typed: dict[str, Any]) -> tuple[int, int, int]:
    signed = Account.sign_message(encode_typed_data(full_message=typed), private_key)
    return signed.v, signed.r, signed.s


def compact(v: int, r: int, s: int) -> tuple[bytes, bytes]:
    """EIP-2098: fold the recovery bit into the top bit of ``s`` (``vs``)."""
    if v not in (27, 28):
        raise ValueError(f"unexpected signature v={v}")
    vs = ((v - 27) << 255) | s
    return r.to_bytes(32, "big"), vs.to_bytes(32, "big")


def sign_consent_grant(
    private_key: bytes | str,
    registry_address: str,
    chain_id: int,
    grant: ConsentGrant,
    nonce: int,
    deadline: int,
) -> SignedConsentGrant:
    """Sign ``grant`` as the subject's wallet. ``nonce`` is ``consent.nonce_of(subject, partner, "
    "purpose)``."""
    v, r, s = _sign(private_key, consent_grant_typed_data(registry_address, chain_id, grant, nonce, deadline))
    r_b, vs_b = compact(v, r, s)
    return SignedConsentGrant(
        grant.subject, grant.terms, grant.receipt_hash, int(nonce), int(deadline), r_b, vs_b
    )


def sign_consent_revocation(
    private_key: bytes | str,
    registry_address: str,
    chain_id: int,
    revocation: ConsentRevocation,
    nonce: int,
    deadline: int,
) -> SignedConsentRevocation:
    typed = consent_revocation_typed_data(registry_address, chain_id, revocation, nonce, deadline)
    v, r, s = _sign(private_key, typed)
    r_b, vs_b = compact(v, r, s)
    return SignedConsentRevocation(
        revocation.subject, revocation.partner, revocation.purpose, int(nonce), int(deadline), r_b, vs_b
    )


def sign_agreement_acceptance(
    private_key: bytes | str,
    agreements_address: str,
    chain_id: int,
    agreement_id: int,
    terms_hash: bytes | AgreementTerms,
    party: str,
    deadline: int,
) -> bytes:
    """A 65-byte ``r || s || v`` signature of ``AcceptAgreement`` for ``acceptBySig``."""
    if isinstance(terms_hash, AgreementTerms):
        terms_hash = terms_hash.hash()
    typed = agreement_acceptance_typed_data(
        agreements_address, chain_id, agreement_id, terms_hash, party, deadline
    )
    v, r, s = _sign(private_key, typed)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


def recover_signer(typed: dict[str, Any], signature: bytes) -> str:
    """The address that signed ``typed`` (65-byte signature), to check a wallet's signature off chain."""
    return str(Account.recover_message(encode_typed_data(full_message=typed), signature=signature))
