"""What reading and writing the chain returns.

- ``TxResult``: a mined, successful transaction with its decoded events;
- ``Event``: one decoded log, its arguments as a standard client shows them;
- ``BlockHead``: the chain head one request saw;
- the typed ledger events (``ConversionsRecordedEvent``, ``ConversionReversedEvent``,
  ``BatchFinalizedEvent``) that ``LedgerClient.conversions_recorded`` / ``conversion_reversed`` /
  ``batch_finalized`` return: the event's values as Python types (conversions as ``Conversion`` objects),
  with where it was emitted (transaction, block, log index).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .types import Conversion, to_bytes32


@dataclass(frozen=True)
class BlockHead:
    """The chain head as one request saw it: state at ``hash`` never changes, so an answer read at this
    block stays the answer for as long as the head is this block."""

    number: int
    hash: str
    timestamp: int


@dataclass(frozen=True)
class Event:
    """A decoded log: ``args`` holds the ABI values (structs as dicts, bytes32 as bytes, addresses
    checksummed), as a standard client (ethers, cast) would show them."""

    name: str
    args: dict[str, Any]
    address: str
    log_index: int
    block_number: int | None = None
    tx_hash: str | None = None

    def __getitem__(self, key: str) -> Any:
        return self.args[key]


@dataclass(frozen=True)
class TxResult:
    """A mined, successful transaction. ``value`` is the function's main result where the client can
    read it from the events (a new agreement or batch id, a deployed address)."""

    tx_hash: str
    block_number: int
    gas_used: int
    events: tuple[Event, ...] = ()
    value: Any = None

    def events_named(self, name: str) -> list[Event]:
        return [e for e in self.events if e.name == name]

    def event(self, name: str) -> Event:
        """The first event called ``name``; ``KeyError`` listing what was emitted otherwise."""
        for e in self.events:
            if e.name == name:
                return e
        emitted = ", ".join(e.name for e in self.events) or "no events"
        raise KeyError(f"transaction {self.tx_hash} emitted no {name} ({emitted})")

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)


# ------------------------------------------------------------------------------------ typed ledger events


def _expect(event: Event, name: str) -> None:
    if event.name != name:
        raise ValueError(f"expected a {name} event, got {event.name}")


@dataclass(frozen=True)
class ConversionsRecordedEvent:
    """``SettlementLedger.ConversionsRecorded``: a batch of conversions settled under an agreement."""

    agreement_id: int
    batch_id: int
    conversions_root: bytes
    conversions: tuple[Conversion, ...]
    tx_hash: str
    block_number: int
    log_index: int

    @classmethod
    def from_event(cls, event: Event) -> ConversionsRecordedEvent:
        _expect(event, "ConversionsRecorded")
        return cls(
            agreement_id=int(event["agreementId"]),
            batch_id=int(event["batchId"]),
            conversions_root=to_bytes32(event["conversionsRoot"]),
            conversions=tuple(Conversion.from_abi(c) for c in event["conversions"]),
            tx_hash=event.tx_hash or "",
            block_number=event.block_number or 0,
            log_index=event.log_index,
        )


@dataclass(frozen=True)
class ConversionReversedEvent:
    """``SettlementLedger.ConversionReversed``: one conversion of a batch reversed, ``commission`` undone."""

    agreement_id: int
    batch_id: int
    conversion_id: int
    commission: int
    tx_hash: str
    block_number: int
    log_index: int

    @classmethod
    def from_event(cls, event: Event) -> ConversionReversedEvent:
        _expect(event, "ConversionReversed")
        return cls(
            agreement_id=int(event["agreementId"]),
            batch_id=int(event["batchId"]),
            conversion_id=int(event["conversionId"]),
            commission=int(event["commission"]),
            tx_hash=event.tx_hash or "",
            block_number=event.block_number or 0,
            log_index=event.log_index,
        )


@dataclass(frozen=True)
class BatchFinalizedEvent:
    """``SettlementLedger.BatchFinalized``: a batch's conversions became final."""

    agreement_id: int
    batch_id: int
    tx_hash: str
    block_number: int
    log_index: int

    @classmethod
    def from_event(cls, event: Event) -> BatchFinalizedEvent:
        _expect(event, "BatchFinalized")
        return cls(
            agreement_id=int(event["agreementId"]),
            batch_id=int(event["batchId"]),
            tx_hash=event.tx_hash or "",
            block_number=event.block_number or 0,
            log_index=event.log_index,
        )


@dataclass(frozen=True)
class ConsentChangeEvent:
    """A change in the registry that can change what a consent check answers, from its events:

    - ``granted`` / ``revoked``: one subject's consent to one partner (``ConsentGranted``,
      ``ConsentRevoked``);
    - ``partner_notice``: a partner's notice version changed, voiding every earlier consent to it
      (``PartnerNoticeVersionChanged``; ``subject`` is None);
    - ``platform_notice``: the platform's notice version changed, voiding every earlier consent
      (``PlatformNoticeVersionChanged``; ``subject`` and ``partner`` are None).
    """

    kind: str
    subject: bytes | None
    partner: str | None
    purpose: int | None
    block_number: int
    log_index: int
    tx_hash: str

    #: The registry events this type reads, by name.
    EVENTS = (
        "ConsentGranted",
        "ConsentRevoked",
        "PartnerNoticeVersionChanged",
        "PlatformNoticeVersionChanged",
    )

    @classmethod
    def from_event(cls, event: Event) -> ConsentChangeEvent:
        from .types import ConsentTerms

        at = (event.block_number or 0, event.log_index, event.tx_hash or "")
        if event.name == "ConsentGranted":
            terms = ConsentTerms.unpack(int(event["terms"]))
            return cls("granted", to_bytes32(event["subject"]), terms.partner, int(terms.purpose), *at)
        if event.name == "ConsentRevoked":
            subject = to_bytes32(event["subject"])
            return cls("revoked", subject, str(event["partner"]), int(event["purpose"]), *at)
        if event.name == "PartnerNoticeVersionChanged":
            return cls("partner_notice", None, str(event["partner"]), None, *at)
        _expect(event, "PlatformNoticeVersionChanged")
        return cls("platform_notice", None, None, None, *at)
