"""Plain Python mirrors of the contracts' structs, enums and packed value types.

Nothing here talks to a node: these are the values the typed clients take and return, so callers outside
``backend.chain`` (the recommender, the API service) never handle ABI tuples. The packed wrappers
(``ConsentTerms``, ``ConversionData``) pack exactly like their Solidity libraries in ``contracts/types/``;
``split_commission`` and the Merkle helpers reproduce the ledger's arithmetic so a partner can check the
chain's numbers without trusting the platform.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from eth_abi import encode as abi_encode
from eth_account import Account
from eth_utils import keccak, to_checksum_address

from . import merkle

#: Shares and commission rates are parts per million.
SCALE = 1_000_000

UINT24_MAX = (1 << 24) - 1
UINT32_MAX = (1 << 32) - 1
UINT40_MAX = (1 << 40) - 1
UINT64_MAX = (1 << 64) - 1
UINT112_MAX = (1 << 112) - 1

AGREEMENT_TERMS_ABI_TYPE = (
    "((address,uint32)[],address,address,uint32,uint32,uint32,uint40,uint40,bytes32,uint256)"
)
CONVERSION_ABI_TYPE = "(uint256,bytes32,bytes32)"


def _check_range(name: str, value: int, maximum: int, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise ValueError(f"{name} must be an integer in [{minimum}, {maximum}], got {value!r}")
    return value


def to_bytes32(value: bytes | str | int) -> bytes:
    """Normalise a bytes32 given as bytes, a 0x-hex string or an int (for hashes, subjects, refs)."""
    if isinstance(value, int):
        return value.to_bytes(32, "big")
    if isinstance(value, str):
        text = value[2:] if value.startswith(("0x", "0X")) else value
        raw = bytes.fromhex(text)
    else:
        raw = bytes(value)
    if len(raw) != 32:
        raise ValueError(f"expected 32 bytes, got {len(raw)}: {value!r}")
    return raw


def checksum(address: str) -> str:
    """A checksummed address; raises ``ValueError`` with the bad value otherwise."""
    try:
        return str(to_checksum_address(str(address)))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not an Ethereum address: {address!r}") from exc


class Wallet(str):
    """An account this process can sign for: the ``str`` value is the checksummed address.

    Being a ``str`` it can be passed wherever an address is expected (terms, parties, ``sender=``), while
    ``.private_key`` is there for EIP-712 signing. ``repr`` never shows the key.
    """

    private_key: bytes

    def __new__(cls, private_key: bytes | str) -> Wallet:
        acct = Account.from_key(private_key)
        obj = super().__new__(cls, acct.address)
        obj.private_key = bytes(acct.key)
        return obj

    @property
    def address(self) -> str:
        return str(self)

    @property
    def key(self) -> bytes:
        return self.private_key

    def __repr__(self) -> str:
        return f"Wallet({self!s})"

    def __reduce__(self) -> tuple[Any, ...]:  # pragma: no cover - pickling keeps the key, on purpose
        return (Wallet, (self.private_key,))


class Purpose(IntEnum):
    """Consent purposes: the one Python table of ``contracts/types/Purposes.sol`` (a test checks that they
    agree). Bit ``p`` of ``consentMask`` is purpose ``p``; every other name of a purpose is derived from the
    member's name: ``api_name`` ("product_recommendation", what the HTTP API and the database use) and
    ``display_name`` ("ProductRecommendation", used in revert messages)."""

    PROFILING = 0
    PRODUCT_RECOMMENDATION = 1
    MARKETING_CONTACT = 2
    DATA_SHARING = 3

    @property
    def bit(self) -> int:
        return 1 << int(self)

    @property
    def api_name(self) -> str:
        return self.name.lower()

    @property
    def display_name(self) -> str:
        return "".join(word.capitalize() for word in self.name.split("_"))


#: ``Purpose`` → its API name ("profiling", "product_recommendation", "marketing_contact", "data_sharing").
PURPOSE_NAMES: dict[Purpose, str] = {p: p.api_name for p in Purpose}


def purpose_from_name(name: str) -> Purpose | None:
    """The purpose whose API name is ``name`` (exactly), or None."""
    for purpose, text in PURPOSE_NAMES.items():
        if text == name:
            return purpose
    return None


def purposes_in_mask(mask: int) -> frozenset[Purpose]:
    """The purposes whose bit is set in a ``consentMask`` result."""
    return frozenset(p for p in Purpose if mask & p.bit)


def subject_for_wallet(address: str) -> bytes:
    """The subject of a wallet-signed consent: ``bytes32(uint256(uint160(wallet)))``."""
    return int(checksum(address), 16).to_bytes(32, "big")


def wallet_for_subject(subject: bytes) -> str | None:
    """The wallet a subject stands for, or None if it is a pseudonym (upper 96 bits set)."""
    value = int.from_bytes(to_bytes32(subject), "big")
    if value >> 160:
        return None
    return checksum("0x" + value.to_bytes(20, "big").hex())


def currency_code(code: str) -> bytes:
    """A currency unit as the contracts store it: right-padded ASCII in a bytes32 ("CNY", "wei")."""
    raw = code.encode("ascii")
    if not 0 < len(raw) <= 32:
        raise ValueError(f"currency code must be 1..32 ASCII characters, got {code!r}")
    return raw.ljust(32, b"\0")


def currency_name(raw: bytes) -> str:
    return bytes(raw).rstrip(b"\0").decode("ascii", errors="replace")


# --------------------------------------------------------------------------------------------- consent


@dataclass(frozen=True)
class ConsentTerms:
    """``ConsentTerms`` (uint256): partner [0,160), purpose [160,168), expiresAt [168,208),
    platformNoticeVersion [208,232), partnerNoticeVersion [232,256)."""

    partner: str
    purpose: Purpose
    expires_at: int
    platform_notice_version: int = 1
    partner_notice_version: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "partner", checksum(self.partner))
        object.__setattr__(self, "purpose", Purpose(self.purpose))
        _check_range("expires_at", self.expires_at, UINT40_MAX)
        for name in ("platform_notice_version", "partner_notice_version"):
            version = _check_range(name, getattr(self, name), UINT24_MAX)
            if version == 0:
                # The registry refuses it (ConsentRegistryInvalidNoticeVersion): refuse it here, by name.
                raise ValueError(
                    f"{name} must be at least 1, got 0: notice versions start at 1 (a partner without a "
                    "notice needs consent.set_partner_notice_version first)"
                )

    def pack(self) -> int:
        return (
            int(self.partner, 16)
            | (int(self.purpose) << 160)
            | (self.expires_at << 168)
            | (self.platform_notice_version << 208)
            | (self.partner_notice_version << 232)
        )

    @classmethod
    def unpack(cls, word: int) -> ConsentTerms:
        _check_range("ConsentTerms word", word, (1 << 256) - 1)
        return cls(
            partner=checksum("0x" + (word & ((1 << 160) - 1)).to_bytes(20, "big").hex()),
            purpose=Purpose((word >> 160) & 0xFF),
            expires_at=(word >> 168) & UINT40_MAX,
            platform_notice_version=(word >> 208) & UINT24_MAX,
            partner_notice_version=(word >> 232) & UINT24_MAX,
        )


@dataclass(frozen=True)
class ConsentGrant:
    subject: bytes
    terms: ConsentTerms
    receipt_hash: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "subject", to_bytes32(self.subject))
        object.__setattr__(self, "receipt_hash", to_bytes32(self.receipt_hash))

    def as_abi(self) -> tuple[bytes, int, bytes]:
        return (self.subject, self.terms.pack(), self.receipt_hash)


@dataclass(frozen=True)
class ConsentRevocation:
    subject: bytes
    partner: str
    purpose: Purpose

    def __post_init__(self) -> None:
        object.__setattr__(self, "subject", to_bytes32(self.subject))
        object.__setattr__(self, "partner", checksum(self.partner))
        object.__setattr__(self, "purpose", Purpose(self.purpose))

    def as_abi(self) -> tuple[bytes, str, int]:
        return (self.subject, self.partner, int(self.purpose))


@dataclass(frozen=True)
class SignedConsentGrant:
    """A grant signed by the subject's wallet (EIP-712, EIP-2098 compact ``r``/``vs``)."""

    subject: bytes
    terms: ConsentTerms
    receipt_hash: bytes
    nonce: int
    deadline: int
    r: bytes
    vs: bytes

    def __post_init__(self) -> None:
        _check_range("nonce", self.nonce, UINT32_MAX)
        _check_range("deadline", self.deadline, UINT40_MAX)

    def as_abi(self) -> tuple[bytes, int, bytes, int, int, bytes, bytes]:
        return (
            self.subject,
            self.terms.pack(),
            self.receipt_hash,
            self.nonce,
            self.deadline,
            self.r,
            self.vs,
        )


@dataclass(frozen=True)
class SignedConsentRevocation:
    subject: bytes
    partner: str
    purpose: Purpose
    nonce: int
    deadline: int
    r: bytes
    vs: bytes

    def __post_init__(self) -> None:
        _check_range("nonce", self.nonce, UINT32_MAX)
        _check_range("deadline", self.deadline, UINT40_MAX)

    def as_abi(self) -> tuple[bytes, str, int, int, int, bytes, bytes]:
        return (self.subject, self.partner, int(self.purpose), self.nonce, self.deadline, self.r, self.vs)


@dataclass(frozen=True)
class ConsentState:
    """``consentOf``: the stored record (zeros if never granted)."""

    granted_at: int
    expires_at: int
    revoked_at: int
    platform_notice_version: int
    partner_notice_version: int
    nonce: int

    @classmethod
    def from_abi(cls, value: Sequence[int]) -> ConsentState:
        return cls(*(int(v) for v in value))

    @property
    def ever_granted(self) -> bool:
        return self.granted_at != 0


# ------------------------------------------------------------------------------------------ agreements


@dataclass(frozen=True)
class Party:
    account: str
    share: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "account", checksum(self.account))
        _check_range("share", self.share, UINT32_MAX)

    def as_abi(self) -> tuple[str, int]:
        return (self.account, self.share)


@dataclass(frozen=True)
class AgreementTerms:
    """``IPartnershipAgreements.AgreementTerms``; the chain stores only ``keccak256(abi.encode(terms))``."""

    parties: tuple[Party, ...]
    partner: str
    reporter: str
    commission_rate: int
    attribution_window: int
    validation_window: int
    valid_from: int
    valid_until: int
    currency: bytes = field(default_factory=lambda: currency_code("CNY"))
    supersedes: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "parties",
            tuple(p if isinstance(p, Party) else Party(*p) for p in self.parties),
        )
        object.__setattr__(self, "partner", checksum(self.partner))
        object.__setattr__(self, "reporter", checksum(self.reporter))
        if isinstance(self.currency, str):
            object.__setattr__(self, "currency", currency_code(self.currency))
        object.__setattr__(self, "currency", to_bytes32(self.currency))
        _check_range("commission_rate", self.commission_rate, UINT32_MAX)
        _check_range("attribution_window", self.attribution_window, UINT32_MAX)
        _check_range("validation_window", self.validation_window, UINT32_MAX)
        _check_range("valid_from", self.valid_from, UINT40_MAX)
        _check_range("valid_until", self.valid_until, UINT40_MAX)

    def as_abi(self) -> tuple[Any, ...]:
        return (
            [p.as_abi() for p in self.parties],
            self.partner,
            self.reporter,
            self.commission_rate,
            self.attribution_window,
            self.validation_window,
            self.valid_from,
            self.valid_until,
            self.currency,
            self.supersedes,
        )

    def encode(self) -> bytes:
        return abi_encode([AGREEMENT_TERMS_ABI_TYPE], [self.as_abi()])

    def hash(self) -> bytes:
        """``keccak256(abi.encode(terms))``, the agreement's ``termsHash``."""
        return bytes(keccak(self.encode()))

    def party_index(self, account: str) -> int:
        wanted = checksum(account)
        for i, p in enumerate(self.parties):
            if p.account == wanted:
                return i
        raise ValueError(f"{account} is not a party of these terms")

    @classmethod
    def from_abi(cls, value: Sequence[Any] | Mapping[str, Any]) -> AgreementTerms:
        if isinstance(value, Mapping):
            parties = value["parties"]
            rest = [
                value[k]
                for k in (
                    "partner",
                    "reporter",
                    "commissionRate",
                    "attributionWindow",
                    "validationWindow",
                    "validFrom",
                    "validUntil",
                    "currency",
                    "supersedes",
                )
            ]
        else:
            parties, *rest = value
        party_objs = tuple(
            Party(p["account"], p["share"]) if isinstance(p, Mapping) else Party(p[0], p[1]) for p in parties
        )
        return cls(party_objs, *rest)


class AgreementStatus(IntEnum):
    NONE = 0
    PROPOSED = 1
    ACTIVE = 2
    TERMINATED = 3
    SUPERSEDED = 4


@dataclass(frozen=True)
class AgreementState:
    """``agreementOf``: the stored state. ``activated_at`` is 0 until every party accepted, ``ended_at`` 0
    until it was terminated or superseded; see ``in_force`` for the window conversions are settled in."""

    terms_hash: bytes
    status: AgreementStatus
    accepted_mask: int
    party_count: int
    valid_from: int
    valid_until: int
    activated_at: int = 0
    ended_at: int = 0

    @classmethod
    def from_abi(cls, value: Sequence[Any]) -> AgreementState:
        terms_hash, status, mask, count, valid_from, valid_until, activated_at, ended_at = value
        return cls(
            bytes(terms_hash),
            AgreementStatus(status),
            mask,
            count,
            valid_from,
            valid_until,
            activated_at,
            ended_at,
        )

    @property
    def in_force(self) -> tuple[int, int] | None:
        """The in-force window ``(start, end)`` (end exclusive) of ``requireTermsInForce``, or None if the
        agreement was never activated: a conversion is recordable iff ``start <= time < end`` and
        ``time <= now``."""
        if self.activated_at == 0:
            return None
        start = max(self.valid_from, self.activated_at)
        end = min(self.valid_until, self.ended_at) if self.ended_at else self.valid_until
        return start, end


# ---------------------------------------------------------------------------------------------- ledger


@dataclass(frozen=True)
class ConversionData:
    """``ConversionData`` (uint256): id [0,64), time [64,104), recommendedAt [104,144), value [144,256)."""

    id: int
    time: int
    recommended_at: int
    value: int

    def __post_init__(self) -> None:
        _check_range("id", self.id, UINT64_MAX)
        _check_range("time", self.time, UINT40_MAX)
        _check_range("recommended_at", self.recommended_at, UINT40_MAX)
        _check_range("value", self.value, UINT112_MAX)

    def pack(self) -> int:
        return self.id | (self.time << 64) | (self.recommended_at << 104) | (self.value << 144)

    @classmethod
    def unpack(cls, word: int) -> ConversionData:
        return cls(
            id=word & UINT64_MAX,
            time=(word >> 64) & UINT40_MAX,
            recommended_at=(word >> 104) & UINT40_MAX,
            value=(word >> 144) & UINT112_MAX,
        )


@dataclass(frozen=True)
class Conversion:
    data: ConversionData
    recommendation_ref: bytes
    subject: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "recommendation_ref", to_bytes32(self.recommendation_ref))
        object.__setattr__(self, "subject", to_bytes32(self.subject))

    def as_abi(self) -> tuple[int, bytes, bytes]:
        return (self.data.pack(), self.recommendation_ref, self.subject)

    def leaf(self) -> bytes:
        """``keccak256(abi.encode(conversion))``: the conversion's Merkle leaf."""
        return bytes(keccak(abi_encode([CONVERSION_ABI_TYPE], [self.as_abi()])))

    @classmethod
    def from_abi(cls, value: Sequence[Any] | Mapping[str, Any]) -> Conversion:
        if isinstance(value, Mapping):
            return cls(ConversionData.unpack(value["data"]), value["recommendationRef"], value["subject"])
        return cls(ConversionData.unpack(value[0]), value[1], value[2])


class ConversionStatus(IntEnum):
    UNKNOWN = 0
    RECORDED = 1
    REVERSED = 2


@dataclass(frozen=True)
class BatchState:
    agreement_id: int
    conversions_root: bytes
    count: int
    final_after: int
    finalized: bool
    amounts: tuple[int, ...]

    @classmethod
    def from_abi(cls, value: Sequence[Any]) -> BatchState:
        agreement_id, root, count, final_after, finalized, amounts = value
        return cls(agreement_id, bytes(root), count, final_after, bool(finalized), tuple(amounts))


@dataclass(frozen=True)
class Totals:
    """A party's sums under one agreement, in the agreement's currency unit."""

    provisional: int
    final: int
    reversed: int


def split_commission(terms: AgreementTerms, value: int) -> tuple[int, list[int]]:
    """The ledger's split rule, exactly: commission = floor(value * rate / 1e6); every party but the first
    gets floor(commission * share / 1e6); ``parties[0]`` (the platform, by convention) gets the rest, so the
    amounts always sum to the commission."""
    if value < 0:
        raise ValueError("value must be >= 0")
    commission = value * terms.commission_rate // SCALE
    amounts = [0] * len(terms.parties)
    rest = commission
    for j in range(1, len(terms.parties)):
        a = commission * terms.parties[j].share // SCALE
        amounts[j] = a
        rest -= a
    if amounts:
        amounts[0] = rest
    return commission, amounts


def conversions_root(conversions: Sequence[Conversion]) -> bytes:
    """The batch root the ledger stores for these conversions (in this order)."""
    return merkle.root([c.leaf() for c in conversions])


def merkle_proof(conversions: Sequence[Conversion], index: int) -> list[bytes]:
    """The proof that ``conversions[index]`` is in its batch (empty for a one-conversion batch)."""
    return merkle.proof([c.leaf() for c in conversions], index)
