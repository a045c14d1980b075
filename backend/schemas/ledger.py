"""Agreements, conversions, statements and their reconciliation with the chain."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from backend.models import ConversionPublic
from backend.schemas.common import ADDRESS_PATTERN, INTEGER, MAX_ID, UINT40_MAX, JsonInt


class PartyShare(BaseModel):
    account: str
    share: int


class TermsPublic(BaseModel):
    """An agreement's terms as proposed on chain (the chain stores their hash)."""

    parties: list[PartyShare]
    partner: str
    reporter: str
    commission_rate: int
    attribution_window: int
    validation_window: int
    valid_from: int
    valid_until: int
    currency: str
    supersedes: int


class NamedParty(BaseModel):
    account: str
    share: int
    share_percent: float
    #: A display name where the service knows one (a partner, the platform, the creators), else null.
    name: str | None


class AgreementPublic(BaseModel):
    id: int
    partner_id: str
    status: str
    terms_hash: str
    terms: TermsPublic
    parties: list[NamedParty]


class AgreementProposed(AgreementPublic):
    proposed_tx: str | None


class AgreementAccepted(AgreementPublic):
    tx_hash: str
    block_number: int


class AgreementList(BaseModel):
    agreements: list[AgreementPublic]


class AgreementTypedData(BaseModel):
    typed_data: dict[str, Any]
    terms: TermsPublic


class PartyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: str = Field(pattern=ADDRESS_PATTERN)
    #: Share of the commission, scale 1e6 (600000 = 60 %); the shares sum to exactly 1e6.
    share: JsonInt = Field(ge=0, le=1_000_000)


class AgreementCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    partner_id: str = Field(min_length=1, max_length=40)
    #: Parties in order; ``parties[0]`` receives the rounding remainder of each split.
    parties: list[PartyIn] = Field(min_length=1, max_length=16)
    #: Commission rate on the conversion value, scale 1e6 (80000 = 8 %).
    commission_rate: JsonInt = Field(ge=0, le=1_000_000)
    attribution_window_days: JsonInt = Field(default=30, ge=1, le=365)
    validation_window_days: JsonInt = Field(default=14, ge=0, le=365)
    #: Validity; ``valid_from`` defaults to now (chain time).
    valid_from: Annotated[int, Field(ge=0, le=UINT40_MAX), INTEGER] | None = None
    valid_days: JsonInt = Field(default=365, ge=1, le=3650)
    currency: str = Field(default="CNY", min_length=3, max_length=3, pattern=r"^[A-Z]{3}$")
    #: The agreement this one amends (0: none).
    supersedes: JsonInt = Field(default=0, ge=0, le=MAX_ID)


class AcceptanceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    party: str = Field(pattern=ADDRESS_PATTERN)
    deadline: JsonInt = Field(ge=0, le=UINT40_MAX)
    #: The party's ``AcceptAgreement`` EIP-712 signature, 65 bytes hex (``r‖s‖v``, v 0, 1, 27 or 28).
    signature: str = Field(pattern=r"^(0x)?[0-9a-fA-F]{128}(00|01|1[bB]|1[cC])$")


class Buckets(BaseModel):
    provisional: int
    final: int
    reversed: int


class PartyTotals(Buckets):
    account: str


class OutboxSummary(BaseModel):
    #: Conversions accepted but not yet on chain, and their value.
    pending: int
    pending_value: int
    #: Conversions the chain refused (each carries its reason).
    rejected: int


class ConversionPage(BaseModel):
    total: int
    items: list[ConversionPublic]


class Statement(BaseModel):
    agreement_id: int
    terms_hash: str
    currency: str
    parties: list[PartyTotals]
    totals: Buckets
    outbox: OutboxSummary
    conversions: ConversionPage


class PartyReconciliation(BaseModel):
    account: str
    statement: Buckets
    from_events: Buckets
    ledger_totals: Buckets
    statement_minus_events: Buckets
    ledger_minus_events: Buckets


class ConversionReconciliation(BaseModel):
    on_chain: int
    in_statement: int
    missing_on_chain: list[int]
    missing_in_statement: list[int]
    mismatched: list[int]


class Reconciliation(BaseModel):
    agreement_id: int
    #: True when the statement, the events and the ledger's totals agree to the smallest unit.
    ok: bool
    checked_at_block: int
    terms_hash_matches: bool
    #: How many events of each kind were read from the node.
    events: dict[str, int]
    parties: list[PartyReconciliation]
    conversions: ConversionReconciliation
