"""The event indexer: copies the three contracts' logs into ``chain_event`` and keeps the mirrors (agreement
status, conversion settlement) in step with the chain. It resumes from its cursor after a restart, and on
real networks only takes blocks buried under ``KNOWLEDGER_INDEX_CONFIRMATIONS`` (default
``KNOWLEDGER_CONFIRMATIONS``), so a reorganisation of the newest blocks never reaches the statement.

Conversion states change only through :mod:`backend.services.outbox`."""

from __future__ import annotations

import logging
import threading

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from backend.chain import ChainError, ConversionData, Deployment, Event
from backend.core.jsonable import to_jsonable
from backend.models import Agreement, ChainEvent, Conversion, IndexerCursor, utcnow
from backend.services.gateway import ChainGateway
from backend.services.outbox import finalized_on_chain, recorded_on_chain, reversed_on_chain
from backend.services.worker import PeriodicWorker

log = logging.getLogger("knowledger.indexer")
CURSOR = "events"
CHUNK = 2_000

#: Agreement events → the mirror's new status.
_AGREEMENT_STATUS = {
    "AgreementActivated": ("agreementId", "active"),
    "AgreementTerminated": ("agreementId", "terminated"),
    "AgreementSuperseded": ("previousId", "superseded"),
}


class Indexer(PeriodicWorker[int]):
    name = "indexer"

    def __init__(
        self, engine: Engine, gateway: ChainGateway, deployment: Deployment, confirmations: int
    ) -> None:
        super().__init__()
        self._engine = engine
        self._gateway = gateway
        self._deployment = deployment
        self.confirmations = confirmations
        self._lock = threading.Lock()
        self.head_seen = 0
        d = deployment
        self.contracts = {c.address: c.contract_name for c in (d.consent, d.agreements, d.ledger)}
        self.start_block = d.from_block

    def cursor(self) -> int:
        with Session(self._engine) as s:
            row = s.get(IndexerCursor, CURSOR)
            return row.next_block if row is not None else self.start_block

    def lag(self) -> int:
        return max(0, self.head_seen - self.cursor() + 1)

    def run_once(self) -> int:
        """Index up to the confirmed head; returns the number of new events."""
        with self._lock:
            try:
                with self._gateway.guard():
                    head = self._gateway.client.block_number
            except ChainError as exc:
                self.last_error = str(exc)
                return 0
            self.head_seen = head
            target = head - self.confirmations
            start = self.cursor()
            added = 0
            while start <= target:
                end = min(target, start + CHUNK - 1)
                try:
                    events = self._fetch(start, end)
                except ChainError as exc:
                    self.last_error = str(exc)
                    return added
                added += self._store(events, end + 1)
                start = end + 1
            self.last_error = None
            return added

    def _fetch(self, start: int, end: int) -> list[Event]:
        """The three contracts' events in blocks ``start..end``, in chain order."""
        with self._gateway.guard():
            return self._deployment.events(start, end)

    def _store(self, events: list[Event], next_block: int) -> int:
        added = 0
        with Session(self._engine) as s:
            for e in events:
                exists = s.exec(
                    select(ChainEvent.id).where(
                        ChainEvent.tx_hash == e.tx_hash, ChainEvent.log_index == e.log_index
                    )
                ).first()
                if exists is not None:
                    continue
                agreement_id = e.args.get("agreementId")
                s.add(
                    ChainEvent(
                        block_number=e.block_number or 0,
                        log_index=e.log_index,
                        tx_hash=e.tx_hash or "",
                        contract=self.contracts.get(e.address, e.address),
                        name=e.name,
                        agreement_id=None if agreement_id is None else int(agreement_id),
                        args=to_jsonable(e.args, big_ints_as_str=True),
                    )
                )
                _apply(s, e)
                added += 1
            cursor = s.get(IndexerCursor, CURSOR)
            if cursor is None:
                cursor = IndexerCursor(name=CURSOR, next_block=next_block)
            cursor.next_block = next_block
            cursor.updated_at = utcnow()
            s.add(cursor)
            try:
                s.commit()
            except IntegrityError:  # another indexer (a second process) took these first
                s.rollback()
        return added


def _apply(s: Session, e: Event) -> None:
    """Keep the mirrors in step with what the chain says."""
    if e.name in _AGREEMENT_STATUS:
        key, status = _AGREEMENT_STATUS[e.name]
        a = s.get(Agreement, int(e.args[key]))
        if a is not None:
            a.status = status
            a.updated_at = utcnow()
            s.add(a)
    elif e.name == "ConversionsRecorded":
        agreement_id, batch_id = int(e.args["agreementId"]), int(e.args["batchId"])
        for i, c in enumerate(e.args["conversions"]):
            data = ConversionData.unpack(int(c["data"] if isinstance(c, dict) else c[0]))
            row = s.get(Conversion, data.id)
            if row is not None and row.agreement_id == agreement_id:
                recorded_on_chain(
                    s, row, batch_id=batch_id, batch_index=i, tx_hash=e.tx_hash, block=e.block_number
                )
    elif e.name == "ConversionReversed":
        row = s.get(Conversion, int(e.args["conversionId"]))
        if row is not None and row.agreement_id == int(e.args["agreementId"]):
            reversed_on_chain(s, row, e.tx_hash)
    elif e.name == "BatchFinalized":
        batch_id = int(e.args["batchId"])
        for row in s.exec(select(Conversion).where(Conversion.batch_id == batch_id)).all():
            finalized_on_chain(s, row)
