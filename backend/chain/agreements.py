"""Typed client of ``PartnershipAgreements``.

The chain stores only a hash of an agreement's terms, so every write passes the full ``AgreementTerms``;
``terms_of(id)`` rebuilds them from the ``AgreementProposed`` event for anyone who only knows the id.
"""

from __future__ import annotations

from typing import Any

from . import eip712
from .base import Eip712Client
from .exceptions import ChainError
from .results import TxResult
from .types import AgreementState, AgreementTerms, Wallet, checksum, to_bytes32


class AgreementsClient(Eip712Client):
    """``PartnershipAgreements`` at ``address`` on ``client``'s chain."""

    contract_name = "PartnershipAgreements"

    # ------------------------------------------------------------------ writes
    def propose(self, terms: AgreementTerms, sender: str | None = None) -> TxResult:
        """Propose ``terms`` (the proposer, a party, accepts at once). ``result.value`` is the agreement "
        "id."""
        result = self._send("propose", terms.as_abi(), sender=sender)
        return _with_value(result, result.event("AgreementProposed")["agreementId"])

    def accept(self, agreement_id: int, terms: AgreementTerms, sender: str | None = None) -> TxResult:
        return self._send("accept", int(agreement_id), terms.as_abi(), sender=sender)

    def accept_by_sig(
        self,
        agreement_id: int,
        terms: AgreementTerms,
        party: str,
        deadline: int,
        signature: bytes,
        sender: str | None = None,
    ) -> TxResult:
        return self._send(
            "acceptBySig",
            int(agreement_id),
            terms.as_abi(),
            checksum(party),
            int(deadline),
            bytes(signature),
            sender=sender,
        )

    def terminate(self, agreement_id: int, terms: AgreementTerms, sender: str | None = None) -> TxResult:
        return self._send("terminate", int(agreement_id), terms.as_abi(), sender=sender)

    def sign_acceptance(
        self, wallet: Wallet, agreement_id: int, terms: AgreementTerms, deadline: int
    ) -> bytes:
        """The ``AcceptAgreement`` signature of ``wallet`` for ``accept_by_sig``."""
        return eip712.sign_agreement_acceptance(
            wallet.private_key,
            self.address,
            self.client.chain_id,
            agreement_id,
            terms.hash(),
            wallet.address,
            deadline,
        )

    # ------------------------------------------------------------------ views
    def agreement_of(self, agreement_id: int) -> AgreementState:
        return AgreementState.from_abi(self._call("agreementOf", int(agreement_id)))

    def is_active(self, agreement_id: int) -> bool:
        return bool(self._call("isActive", int(agreement_id)))

    def hash_terms(self, terms: AgreementTerms) -> bytes:
        return bytes(self._call("hashTerms", terms.as_abi()))

    def agreement_count(self) -> int:
        return int(self._call("agreementCount"))

    def has_accepted(self, agreement_id: int, party_index: int) -> bool:
        return bool(self._call("hasAccepted", int(agreement_id), int(party_index)))

    def is_party(self, agreement_id: int, account: str) -> bool:
        return bool(self._call("isParty", int(agreement_id), checksum(account)))

    def require_terms(self, agreement_id: int, terms: AgreementTerms) -> None:
        """Raises the named error unless ``terms`` are the agreement's."""
        self._call("requireTerms", int(agreement_id), terms.as_abi())

    def require_active_terms(self, agreement_id: int, terms: AgreementTerms) -> None:
        """Raises the named error unless ``terms`` are the agreement's and it is active now."""
        self._call("requireActiveTerms", int(agreement_id), terms.as_abi())

    def require_terms_in_force(self, agreement_id: int, terms: AgreementTerms) -> tuple[int, int]:
        """The in-force window ``(start, end)`` (end exclusive) the ledger settles conversions in; raises the
        named error unless ``terms`` are the agreement's and it was activated."""
        start, end = self._call("requireTermsInForce", int(agreement_id), terms.as_abi())
        return int(start), int(end)

    def accept_agreement_typehash(self) -> bytes:
        return bytes(self._call("ACCEPT_AGREEMENT_TYPEHASH"))

    # ------------------------------------------------------------------ logs
    def terms_of(self, agreement_id: int) -> AgreementTerms:
        """The terms of ``agreement_id``, rebuilt from its ``AgreementProposed`` event and checked against the
        stored hash."""
        for event in self._logs("AgreementProposed", [int(agreement_id)]):
            terms = AgreementTerms.from_abi(event["terms"])
            if terms.hash() == to_bytes32(event["termsHash"]):
                return terms
        raise ChainError(f"no AgreementProposed event for agreement {agreement_id} at {self.address}")


def _with_value(result: TxResult, value: Any) -> TxResult:
    return TxResult(result.tx_hash, result.block_number, result.gas_used, result.events, int(value))
