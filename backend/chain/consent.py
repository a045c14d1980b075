"""Typed client of ``ConsentRegistry``: one snake_case method per contract function.

Writes return ``TxResult`` (decoded events); views return Python values and dataclasses. Registrar writes
default to the registrar's account when this process holds its key, notice-version writes to the admin's.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import eip712
from .base import Eip712Client
from .client import ChainClient
from .results import ConsentChangeEvent, TxResult
from .types import (
    ConsentGrant,
    ConsentRevocation,
    ConsentState,
    ConsentTerms,
    Purpose,
    SignedConsentGrant,
    SignedConsentRevocation,
    Wallet,
    checksum,
    to_bytes32,
)

DEFAULT_ADMIN_ROLE = b"\0" * 32


class ConsentRegistryClient(Eip712Client):
    """``ConsentRegistry`` at ``address`` on ``client``'s chain."""

    contract_name = "ConsentRegistry"

    def __init__(
        self, client: ChainClient, address: str, *, admin: str | None = None, from_block: int = 0
    ) -> None:
        super().__init__(client, address, from_block=from_block)
        self.admin = checksum(admin) if admin else None
        self._registrar: str | None = None
        self._max_consent_duration: int | None = None

    # ------------------------------------------------------------------ internals
    def _registrar_sender(self, sender: str | None) -> str | None:
        return sender if sender is not None else self._if_held(self.registrar())

    def _admin_sender(self, sender: str | None) -> str | None:
        return sender if sender is not None else self._if_held(self.admin)

    # ------------------------------------------------------------------ registrar path
    def grant(
        self, subject: bytes, terms: ConsentTerms, receipt_hash: bytes, sender: str | None = None
    ) -> TxResult:
        return self._send(
            "grant",
            to_bytes32(subject),
            terms.pack(),
            to_bytes32(receipt_hash),
            sender=self._registrar_sender(sender),
        )

    def revoke(
        self, subject: bytes, partner: str, purpose: Purpose | int, sender: str | None = None
    ) -> TxResult:
        return self._send(
            "revoke",
            to_bytes32(subject),
            checksum(partner),
            int(purpose),
            sender=self._registrar_sender(sender),
        )

    def grant_batch(self, grants: Sequence[ConsentGrant], sender: str | None = None) -> TxResult:
        return self._send("grantBatch", [g.as_abi() for g in grants], sender=self._registrar_sender(sender))

    def revoke_batch(self, revocations: Sequence[ConsentRevocation], sender: str | None = None) -> TxResult:
        return self._send(
            "revokeBatch", [r.as_abi() for r in revocations], sender=self._registrar_sender(sender)
        )

    # ------------------------------------------------------------------ wallet path (anyone relays)
    def grant_by_sig(self, signed: SignedConsentGrant, sender: str | None = None) -> TxResult:
        return self._send("grantBySig", signed.as_abi(), sender=sender)

    def revoke_by_sig(self, signed: SignedConsentRevocation, sender: str | None = None) -> TxResult:
        return self._send("revokeBySig", signed.as_abi(), sender=sender)

    def grant_by_sig_batch(self, signed: Sequence[SignedConsentGrant], sender: str | None = None) -> TxResult:
        return self._send("grantBySigBatch", [s.as_abi() for s in signed], sender=sender)

    def revoke_by_sig_batch(
        self, signed: Sequence[SignedConsentRevocation], sender: str | None = None
    ) -> TxResult:
        return self._send("revokeBySigBatch", [s.as_abi() for s in signed], sender=sender)

    def sign_grant(
        self, wallet: Wallet, grant: ConsentGrant, deadline: int, nonce: int | None = None
    ) -> SignedConsentGrant:
        """Sign ``grant`` with the subject's wallet for this registry (reads the nonce unless given)."""
        if nonce is None:
            nonce = self.nonce_of(grant.subject, grant.terms.partner, grant.terms.purpose)
        return eip712.sign_consent_grant(
            wallet.private_key, self.address, self.client.chain_id, grant, nonce, deadline
        )

    def sign_revocation(
        self, wallet: Wallet, revocation: ConsentRevocation, deadline: int, nonce: int | None = None
    ) -> SignedConsentRevocation:
        if nonce is None:
            nonce = self.nonce_of(revocation.subject, revocation.partner, revocation.purpose)
        return eip712.sign_consent_revocation(
            wallet.private_key, self.address, self.client.chain_id, revocation, nonce, deadline
        )

    # ------------------------------------------------------------------ notice versions (NOTICE_ADMIN_ROLE)
    def set_platform_notice_version(self, version: int, sender: str | None = None) -> TxResult:
        return self._send("setPlatformNoticeVersion", int(version), sender=self._admin_sender(sender))

    def set_partner_notice_version(self, partner: str, version: int, sender: str | None = None) -> TxResult:
        return self._send(
            "setPartnerNoticeVersion", checksum(partner), int(version), sender=self._admin_sender(sender)
        )

    # ------------------------------------------------------------------ AccessControl (OpenZeppelin)
    def grant_role(self, role: bytes, account: str, sender: str | None = None) -> TxResult:
        return self._send("grantRole", to_bytes32(role), checksum(account), sender=self._admin_sender(sender))

    def revoke_role(self, role: bytes, account: str, sender: str | None = None) -> TxResult:
        return self._send(
            "revokeRole", to_bytes32(role), checksum(account), sender=self._admin_sender(sender)
        )

    def renounce_role(self, role: bytes, account: str, sender: str | None = None) -> TxResult:
        return self._send("renounceRole", to_bytes32(role), checksum(account), sender=sender or account)

    def has_role(self, role: bytes, account: str) -> bool:
        return bool(self._call("hasRole", to_bytes32(role), checksum(account)))

    def get_role_admin(self, role: bytes) -> bytes:
        return bytes(self._call("getRoleAdmin", to_bytes32(role)))

    def supports_interface(self, interface_id: bytes) -> bool:
        return bool(self._call("supportsInterface", bytes(interface_id)))

    # ------------------------------------------------------------------ views
    def consent_of(
        self, subject: bytes, partner: str, purpose: Purpose | int, block: int | str = "latest"
    ) -> ConsentState:
        return ConsentState.from_abi(
            self._call("consentOf", to_bytes32(subject), checksum(partner), int(purpose), block=block)
        )

    def changes(
        self, *, from_block: int | None = None, to_block: int | str = "latest"
    ) -> list[ConsentChangeEvent]:
        """Every change that can alter a consent check (grants, revocations, notice versions) in blocks
        ``from_block..to_block``, in chain order (one ``eth_getLogs``)."""
        start = self.from_block if from_block is None else from_block
        events = self.client.get_logs(self.address, [], start, to_block)
        return [ConsentChangeEvent.from_event(e) for e in events if e.name in ConsentChangeEvent.EVENTS]

    def is_consented(self, subject: bytes, partner: str, purpose: Purpose | int) -> bool:
        return bool(self._call("isConsented", to_bytes32(subject), checksum(partner), int(purpose)))

    def is_consented_at(self, subject: bytes, partner: str, purpose: Purpose | int, at: int) -> bool:
        return bool(
            self._call("isConsentedAt", to_bytes32(subject), checksum(partner), int(purpose), int(at))
        )

    def consent_mask(self, subject: bytes, partner: str, block: int | str = "latest") -> int:
        """Bit ``p`` is set iff purpose ``p`` counts at ``block`` (default: now); ``types.purposes_in_mask``
        names them."""
        return int(self._call("consentMask", to_bytes32(subject), checksum(partner), block=block))

    def are_consented(self, subjects: Sequence[bytes], partner: str, purpose: Purpose | int) -> list[bool]:
        return [
            bool(b)
            for b in self._call(
                "areConsented", [to_bytes32(s) for s in subjects], checksum(partner), int(purpose)
            )
        ]

    def are_consented_at(
        self, subjects: Sequence[bytes], partner: str, purpose: Purpose | int, times: Sequence[int]
    ) -> list[bool]:
        result = self._call(
            "areConsentedAt",
            [to_bytes32(s) for s in subjects],
            checksum(partner),
            int(purpose),
            [int(t) for t in times],
        )
        return [bool(b) for b in result]

    def nonce_of(self, subject: bytes, partner: str, purpose: Purpose | int) -> int:
        return int(self._call("nonceOf", to_bytes32(subject), checksum(partner), int(purpose)))

    def platform_notice_version(self) -> int:
        return int(self._call("platformNoticeVersion"))

    def partner_notice_version(self, partner: str) -> int:
        return int(self._call("partnerNoticeVersion", checksum(partner)))

    def registrar(self) -> str:
        if self._registrar is None:  # immutable in the contract: read once
            self._registrar = checksum(self._call("registrar"))
        return self._registrar

    def max_consent_duration(self) -> int:
        if self._max_consent_duration is None:  # immutable in the contract: read once
            self._max_consent_duration = int(self._call("maxConsentDuration"))
        return self._max_consent_duration

    def notice_admin_role(self) -> bytes:
        return bytes(self._call("NOTICE_ADMIN_ROLE"))

    # ------------------------------------------------------------------ helpers
    def current_terms(self, partner: str, purpose: Purpose | int, expires_at: int) -> ConsentTerms:
        """Terms under the current notice versions (a grant under an older version never counts)."""
        return ConsentTerms(
            partner=partner,
            purpose=Purpose(purpose),
            expires_at=int(expires_at),
            platform_notice_version=self.platform_notice_version(),
            partner_notice_version=self.partner_notice_version(partner),
        )
