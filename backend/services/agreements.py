"""Agreements: the service's mirror of on-chain partnership agreements. The chain keeps only the terms'
hash; the terms travel in calldata and live here, and anyone can check them against the hash.

The operator proposes terms on chain; each party accepts by its own EIP-712 signature, relayed here, or by
its own transaction. The agreement is active once every party has accepted; the indexer keeps the mirror's
status in step with the chain."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlmodel import Session, col, select

from backend.chain import (
    AgreementsClient,
    AgreementStatus,
    AgreementTerms,
    Party,
    agreement_acceptance_typed_data,
    currency_code,
)
from backend.chain.types import checksum, currency_name
from backend.core.platform import PLATFORM
from backend.errors import Conflict, NotFound, Unprocessable
from backend.models import Agreement, Partner, utcnow
from backend.schemas.ledger import (
    AcceptanceIn,
    AgreementAccepted,
    AgreementCreate,
    AgreementList,
    AgreementProposed,
    AgreementPublic,
    AgreementTypedData,
    NamedParty,
    TermsPublic,
)
from backend.services.accounts import Roles
from backend.services.gateway import ChainGateway

DAY = 86_400


def terms_to_json(terms: AgreementTerms) -> dict[str, Any]:
    return {
        "parties": [{"account": p.account, "share": p.share} for p in terms.parties],
        "partner": terms.partner,
        "reporter": terms.reporter,
        "commission_rate": terms.commission_rate,
        "attribution_window": terms.attribution_window,
        "validation_window": terms.validation_window,
        "valid_from": terms.valid_from,
        "valid_until": terms.valid_until,
        "currency": currency_name(terms.currency),
        "supersedes": terms.supersedes,
    }


def terms_from_json(data: dict[str, Any]) -> AgreementTerms:
    return AgreementTerms(
        parties=tuple(Party(p["account"], int(p["share"])) for p in data["parties"]),
        partner=data["partner"],
        reporter=data["reporter"],
        commission_rate=int(data["commission_rate"]),
        attribution_window=int(data["attribution_window"]),
        validation_window=int(data["validation_window"]),
        valid_from=int(data["valid_from"]),
        valid_until=int(data["valid_until"]),
        currency=currency_code(str(data.get("currency", "CNY"))),
        supersedes=int(data.get("supersedes", 0)),
    )


def get_agreement(session: Session, agreement_id: int, partner_id: str | None) -> Agreement:
    """The agreement, if ``partner_id`` is None or its partner (another partner's id answers 404)."""
    a = session.get(Agreement, agreement_id)
    if a is None or (partner_id is not None and a.partner_id != partner_id):
        raise NotFound(f"unknown agreement {agreement_id}")
    return a


def agreement_public(a: Agreement, names: dict[str, str] | None = None) -> AgreementPublic:
    return AgreementPublic(**_public_fields(a, names))


def _public_fields(a: Agreement, names: dict[str, str] | None) -> dict[str, Any]:
    terms = a.terms
    return {
        "id": a.id,
        "partner_id": a.partner_id,
        "status": a.status,
        "terms_hash": a.terms_hash,
        "terms": TermsPublic(**terms),
        "parties": [
            NamedParty(
                account=p["account"],
                share=p["share"],
                share_percent=p["share"] / 10_000,
                name=(names or {}).get(p["account"]),
            )
            for p in terms["parties"]
        ],
    }


class AgreementService:
    def __init__(
        self,
        gateway: ChainGateway,
        client: AgreementsClient,
        roles: Roles,
        signers: Iterable[str],
        signature_ttl_s: int,
    ) -> None:
        self._gateway = gateway
        self._client = client
        self._roles = roles
        self._signers = frozenset(signers)
        self._signature_ttl_s = signature_ttl_s

    # ------------------------------------------------------------------ reads
    def party_names(self, session: Session) -> dict[str, str]:
        """Display names for agreement parties: the partners by their on-chain address, and on a local
        chain the demo's platform and creator accounts. Accounts nobody named stay unnamed (``null``)."""
        names = {p.address: p.name for p in session.exec(select(Partner)).all() if p.address}
        named = self._roles.named
        if named is not None:
            names.setdefault(named.platform.address, PLATFORM["name"])
            names.setdefault(named.creator.address, "Course creators")
        return names

    def list_for(self, session: Session, partner_id: str) -> AgreementList:
        rows = session.exec(
            select(Agreement).where(Agreement.partner_id == partner_id).order_by(col(Agreement.id))
        ).all()
        names = self.party_names(session)
        return AgreementList(agreements=[agreement_public(a, names) for a in rows])

    def get(self, session: Session, agreement_id: int, partner_id: str | None) -> AgreementPublic:
        names = self.party_names(session) if partner_id is not None else None
        return agreement_public(get_agreement(session, agreement_id, partner_id), names)

    # ------------------------------------------------------------------ proposing
    def propose(self, session: Session, body: AgreementCreate) -> AgreementProposed:
        """Propose on chain, signed by the first party whose key this service holds (the platform)."""
        partner = session.get(Partner, body.partner_id)
        if partner is None:
            raise NotFound(f"unknown partner {body.partner_id!r}", field="partner_id")
        proposer = next(
            (checksum(p.account) for p in body.parties if checksum(p.account) in self._signers), None
        )
        if proposer is None:
            raise Unprocessable(
                "parties: none of the parties is an account this service can sign for (the proposer must be "
                "one)",
                field="parties",
            )
        now = self._gateway.chain_time()
        valid_from = body.valid_from if body.valid_from is not None else now - 60
        terms = AgreementTerms(
            parties=tuple(Party(p.account, p.share) for p in body.parties),
            partner=partner.address,
            reporter=self._roles.reporter.address,
            commission_rate=body.commission_rate,
            attribution_window=body.attribution_window_days * DAY,
            validation_window=body.validation_window_days * DAY,
            valid_from=valid_from,
            valid_until=valid_from + body.valid_days * DAY,
            currency=currency_code(body.currency),
            supersedes=body.supersedes,
        )
        agreement = self.propose_terms(session, partner, terms, sender=proposer)
        agreement = self._refresh_status(session, agreement)
        return AgreementProposed(**_public_fields(agreement, None), proposed_tx=agreement.proposed_tx)

    def propose_terms(
        self, session: Session, partner: Partner, terms: AgreementTerms, sender: str
    ) -> Agreement:
        """Propose ``terms`` on chain (``sender`` must be a party whose key the service holds) and mirror
        them."""
        if terms.partner != partner.address:
            raise Unprocessable("terms.partner must be the partner's address", field="terms.partner")
        tx = self._gateway.run("proposing the agreement", lambda: self._client.propose(terms, sender=sender))
        agreement = Agreement(
            id=int(tx.value),
            partner_id=partner.id,
            terms=terms_to_json(terms),
            terms_hash="0x" + terms.hash().hex(),
            status="proposed",
            proposed_tx=tx.tx_hash,
        )
        session.add(agreement)
        session.commit()
        return agreement

    def _refresh_status(self, session: Session, agreement: Agreement) -> Agreement:
        state = self._gateway.run("reading the agreement", lambda: self._client.agreement_of(agreement.id))
        agreement.status = AgreementStatus(state.status).name.lower()
        agreement.updated_at = utcnow()
        session.add(agreement)
        session.commit()
        return agreement

    # ------------------------------------------------------------------ accepting
    def typed_data(self, session: Session, agreement_id: int, party: str) -> AgreementTypedData:
        """The ``AcceptAgreement`` EIP-712 message a party signs (``eth_signTypedData_v4``)."""
        agreement = get_agreement(session, agreement_id, None)
        account = checksum(party)  # the route's schema admits only 0x and 40 hex digits
        if account not in [p["account"] for p in agreement.terms["parties"]]:
            raise Unprocessable(f"party: {account} is not a party of agreement {agreement_id}", field="party")
        deadline = self._gateway.chain_time() + self._signature_ttl_s
        typed = agreement_acceptance_typed_data(
            self._client.address,
            self._gateway.client.chain_id,
            agreement_id,
            bytes.fromhex(agreement.terms_hash[2:]),
            account,
            deadline,
        )
        typed["message"]["termsHash"] = agreement.terms_hash
        return AgreementTypedData(typed_data=typed, terms=TermsPublic(**agreement.terms))

    def accept(self, session: Session, agreement_id: int, body: AcceptanceIn) -> AgreementAccepted:
        """Relay a party's signed acceptance; the contract checks the signature (EOA or ERC-1271)."""
        agreement = get_agreement(session, agreement_id, None)
        if agreement.status != "proposed":
            raise Conflict(f"agreement {agreement_id} is {agreement.status}, not proposed")
        raw = bytes.fromhex(body.signature.removeprefix("0x"))  # 65 bytes: checked by the schema
        terms = terms_from_json(agreement.terms)
        party = checksum(body.party)
        tx = self._gateway.run(
            "relaying the acceptance",
            lambda: self._client.accept_by_sig(
                agreement_id, terms, party, body.deadline, raw, sender=self._roles.registrar
            ),
        )
        agreement = self._refresh_status(session, agreement)
        return AgreementAccepted(
            **_public_fields(agreement, None), tx_hash=tx.tx_hash, block_number=tx.block_number
        )

    def accept_as(self, agreement_id: int, terms: AgreementTerms, party: str) -> None:
        """Accept with a key this service holds (the demo world's parties on a local chain)."""
        self._gateway.run(
            "accepting the agreement", lambda: self._client.accept(agreement_id, terms, sender=party)
        )
