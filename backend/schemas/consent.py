"""Consent: the purposes and their notices, a learner's state on chain, changes with their receipts."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.models import ConsentAction
from backend.schemas.common import JsonInt


class PurposeNotice(BaseModel):
    #: The API name (``profiling``, ``product_recommendation``, ``marketing_contact``, ``data_sharing``).
    id: str
    #: The purpose's bit in the registry's consent mask.
    bit: int
    title: str
    notice: str
    pii_categories: list[str]


class PurposeList(BaseModel):
    #: The platform's notice version on chain; null when the chain cannot be read (``chain_unavailable``).
    platform_notice_version: int | None
    chain_unavailable: str | None = None
    purposes: list[PurposeNotice]


class ConsentStateItem(BaseModel):
    partner_id: str
    partner_name: str
    purpose: str
    granted: bool
    notice_version: int
    checked_at_block: int


class ConsentState(BaseModel):
    pseudonym: str
    consents: list[ConsentStateItem]


class ConsentEventPublic(BaseModel):
    """One mined consent change made through the service."""

    id: int
    partner_id: str
    purpose: str
    action: str
    #: ``registrar`` (the service signed for the learner) or ``wallet 0x…`` (the learner's own signature).
    path: str
    receipt_id: str | None
    receipt_hash: str | None
    tx_hash: str
    block_number: int
    chain_time: int
    created_at: str


class ConsentChange(ConsentEventPublic):
    """A change just made, with its ISO/IEC TS 27560 receipt (null for a revocation)."""

    receipt: dict[str, Any] | None


class ConsentHistory(BaseModel):
    history: list[ConsentEventPublic]


class ReceiptPublic(BaseModel):
    receipt: dict[str, Any]
    receipt_hash: str | None
    tx_hash: str
    block_number: int


class TypedDataPublic(BaseModel):
    """The EIP-712 message for ``eth_signTypedData_v4``, and for a grant the receipt it commits to."""

    typed_data: dict[str, Any]
    receipt: dict[str, Any] | None


class GrantBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Days until the consent expires (default ``KNOWLEDGER_CONSENT_DAYS``; at most 390).
    days: JsonInt | None = Field(default=None, ge=1, le=390)


class TypedDataBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: ConsentAction
    days: JsonInt | None = Field(default=None, ge=1, le=390)


class RelayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: ConsentAction
    #: The EIP-712 ``message`` that was signed (as returned in ``typed_data.message``).
    message: dict[str, Any]
    #: ``r‖s‖v`` (65 bytes) or EIP-2098 ``r‖vs`` (64 bytes), hex.
    signature: str = Field(min_length=128, max_length=132)
    #: The receipt whose hash is ``message.receiptHash`` (grants).
    receipt: dict[str, Any] | None = None


class EraseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Must be the string "erase" (a confirmation, so no erasure happens by accident).
    confirm: Literal["erase"]
