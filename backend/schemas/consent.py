"""Consent: the purposes and their notices, a learner's state on chain, changes with their receipts."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.chain import Purpose
from backend.models import ConsentAction
from backend.schemas.common import (
    ADDRESS_PATTERN,
    BYTES32_PATTERN,
    INTEGER,
    SIGNATURE_PATTERN,
    UINT24_MAX,
    UINT32_MAX,
    UINT40_MAX,
    UNION_TAGS,
    JsonInt,
)

#: A purpose by its API name, as the path and the schema spell it.
PurposeName = StrEnum("PurposeName", {p.name: p.api_name for p in Purpose})  # type: ignore[misc]


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
    days: Annotated[int, Field(ge=1, le=390), INTEGER] | None = None


class TypedDataBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: ConsentAction
    days: Annotated[int, Field(ge=1, le=390), INTEGER] | None = None


Bytes32 = Annotated[str, Field(pattern=BYTES32_PATTERN)]
Address = Annotated[str, Field(pattern=ADDRESS_PATTERN)]


class RevocationMessage(BaseModel):
    """The signed EIP-712 ``ConsentRevocation`` message, as returned in ``typed_data.message``."""

    model_config = ConfigDict(extra="forbid")

    subject: Bytes32
    partner: Address
    #: The purpose's bit (0 profiling, 1 product recommendation, 2 marketing contact, 3 data sharing).
    purpose: JsonInt = Field(ge=0, le=len(Purpose) - 1)
    nonce: JsonInt = Field(ge=0, le=UINT32_MAX)
    deadline: JsonInt = Field(ge=0, le=UINT40_MAX)


class GrantMessage(RevocationMessage):
    """The signed EIP-712 ``ConsentGrant`` message, as returned in ``typed_data.message``."""

    expiresAt: JsonInt = Field(ge=0, le=UINT40_MAX)
    platformNoticeVersion: JsonInt = Field(ge=0, le=UINT24_MAX)
    partnerNoticeVersion: JsonInt = Field(ge=0, le=UINT24_MAX)
    receiptHash: Bytes32


class GrantRelay(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["grant"]
    message: GrantMessage
    #: ``r‖s‖v`` (65 bytes) or EIP-2098 ``r‖vs`` (64 bytes), hex.
    signature: str = Field(pattern=SIGNATURE_PATTERN)
    #: The receipt whose hash is ``message.receiptHash``.
    receipt: dict[str, Any] | None = None


class RevocationRelay(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["revoke"]
    message: RevocationMessage
    signature: str = Field(pattern=SIGNATURE_PATTERN)
    receipt: None = None


#: A wallet-signed grant or revocation to relay, told apart by ``action``.
RelayBody = Annotated[GrantRelay | RevocationRelay, Field(discriminator="action")]
UNION_TAGS.update({"grant", "revoke"})


class EraseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Must be the string "erase" (a confirmation, so no erasure happens by accident).
    confirm: Literal["erase"]
