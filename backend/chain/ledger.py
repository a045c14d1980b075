"""Typed client of ``SettlementLedger``.

Recording defaults to the terms' reporter as sender when this process holds its key. The ledger's events
are read back typed: ``conversions_recorded``, ``conversion_reversed`` and ``batch_finalized`` (filtered by
agreement or batch, over a block range); ``conversions_of`` reads a batch's conversions, which is what
``merkle_proof`` needs to reverse one conversion later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import ContractClient
from .exceptions import ChainError
from .results import BatchFinalizedEvent, ConversionReversedEvent, ConversionsRecordedEvent, TxResult
from .types import (
    AgreementTerms,
    BatchState,
    Conversion,
    ConversionStatus,
    Totals,
    checksum,
    to_bytes32,
)


class LedgerClient(ContractClient):
    """``SettlementLedger`` at ``address`` on ``client``'s chain."""

    contract_name = "SettlementLedger"

    def _reporter(self, terms: AgreementTerms, sender: str | None) -> str | None:
        return sender if sender is not None else self._if_held(terms.reporter)

    # ------------------------------------------------------------------ writes
    def record_conversions(
        self,
        agreement_id: int,
        terms: AgreementTerms,
        conversions: Sequence[Conversion],
        sender: str | None = None,
    ) -> TxResult:
        """Record a batch (all or nothing). ``result.value`` is the batch id."""
        result = self._send(
            "recordConversions",
            int(agreement_id),
            terms.as_abi(),
            [c.as_abi() for c in conversions],
            sender=self._reporter(terms, sender),
        )
        return _with_value(result, result.event("ConversionsRecorded")["batchId"])

    def record_conversion(
        self, agreement_id: int, terms: AgreementTerms, conversion: Conversion, sender: str | None = None
    ) -> TxResult:
        result = self._send(
            "recordConversion",
            int(agreement_id),
            terms.as_abi(),
            conversion.as_abi(),
            sender=self._reporter(terms, sender),
        )
        return _with_value(result, result.event("ConversionsRecorded")["batchId"])

    def reverse_conversion(
        self,
        batch_id: int,
        terms: AgreementTerms,
        conversion: Conversion,
        proof: Sequence[bytes],
        sender: str | None = None,
    ) -> TxResult:
        return self._send(
            "reverseConversion",
            int(batch_id),
            terms.as_abi(),
            conversion.as_abi(),
            [to_bytes32(p) for p in proof],
            sender=self._reporter(terms, sender),
        )

    def finalize_batch(self, batch_id: int, terms: AgreementTerms, sender: str | None = None) -> TxResult:
        """Anyone may finalize once the batch's validation window has passed."""
        return self._send("finalizeBatch", int(batch_id), terms.as_abi(), sender=sender)

    # ------------------------------------------------------------------ views
    def split_commission(self, terms: AgreementTerms, value: int) -> tuple[int, list[int]]:
        commission, amounts = self._call("splitCommission", terms.as_abi(), int(value))
        return int(commission), [int(a) for a in amounts]

    def totals_of(self, agreement_id: int, party: str) -> Totals:
        provisional, final, reversed_ = self._call("totalsOf", int(agreement_id), checksum(party))
        return Totals(int(provisional), int(final), int(reversed_))

    def conversion_status(self, agreement_id: int, conversion_id: int) -> ConversionStatus:
        """The status of ``conversion_id`` under ``agreement_id`` (ids are unique per agreement)."""
        return ConversionStatus(int(self._call("conversionStatus", int(agreement_id), int(conversion_id))))

    def batch_of(self, batch_id: int) -> BatchState:
        return BatchState.from_abi(self._call("batchOf", int(batch_id)))

    def batch_count(self) -> int:
        return int(self._call("batchCount"))

    def registry(self) -> str:
        return checksum(self._call("registry"))

    def agreements(self) -> str:
        return checksum(self._call("agreements"))

    # ------------------------------------------------------------------ events
    def conversions_recorded(
        self,
        agreement_id: int | None = None,
        batch_id: int | None = None,
        *,
        from_block: int | None = None,
        to_block: int | str = "latest",
    ) -> list[ConversionsRecordedEvent]:
        """The ``ConversionsRecorded`` events (of one agreement and/or batch if given) from ``from_block``
        (default: the deployment block) to ``to_block``, in chain order."""
        logs = self._logs(
            "ConversionsRecorded", [agreement_id, batch_id], from_block=from_block, to_block=to_block
        )
        return [ConversionsRecordedEvent.from_event(e) for e in logs]

    def conversion_reversed(
        self,
        agreement_id: int | None = None,
        batch_id: int | None = None,
        conversion_id: int | None = None,
        *,
        from_block: int | None = None,
        to_block: int | str = "latest",
    ) -> list[ConversionReversedEvent]:
        """The ``ConversionReversed`` events (of one agreement, batch and/or conversion if given), in chain
        order."""
        logs = self._logs(
            "ConversionReversed",
            [agreement_id, batch_id, conversion_id],
            from_block=from_block,
            to_block=to_block,
        )
        return [ConversionReversedEvent.from_event(e) for e in logs]

    def batch_finalized(
        self,
        agreement_id: int | None = None,
        batch_id: int | None = None,
        *,
        from_block: int | None = None,
        to_block: int | str = "latest",
    ) -> list[BatchFinalizedEvent]:
        """The ``BatchFinalized`` events (of one agreement and/or batch if given), in chain order."""
        logs = self._logs(
            "BatchFinalized", [agreement_id, batch_id], from_block=from_block, to_block=to_block
        )
        return [BatchFinalizedEvent.from_event(e) for e in logs]

    def conversions_of(self, batch_id: int) -> list[Conversion]:
        """The conversions of ``batch_id`` in batch order, from its ``ConversionsRecorded`` event."""
        for event in self.conversions_recorded(batch_id=batch_id):
            return list(event.conversions)
        raise ChainError(f"no ConversionsRecorded event for batch {batch_id} at {self.address}")


def _with_value(result: TxResult, value: Any) -> TxResult:
    return TxResult(result.tx_hash, result.block_number, result.gas_used, result.events, int(value))
