"""What a partner is told about its conversions, written in the same transaction as the change it reports.

:func:`backend.services.outbox.transition` (the one writer of a conversion's state) calls
:func:`conversion_changed`, and :meth:`backend.services.conversions.ConversionService.report` calls
:func:`conversion_accepted` when it creates the row. Each writes, in the caller's session:

- a ``conversion_event`` row per change the partner can see (the funnel's history);
- when the partner has a webhook endpoint, a ``webhook_delivery`` row per change (the webhook outbox),
  delivered later by :class:`backend.services.webhook_delivery.WebhookDeliverer`.

The caller commits: a notification exists exactly when its change was committed (none invented by a rolled
back change, none lost after a committed one).

Which changes a partner sees: a conversion is ``accepted`` when reported, ``settled`` once the chain recorded
it *and* its transaction is known (a row recovered after a lost answer is settled before the indexer reads
its transaction: the notification waits for it, so it always names the transaction and block), then
``final`` or ``reversed``; or ``rejected`` (with the reason). A reversal the chain refused
(``reversal_pending`` back to ``settled``) is ``reversal_refused``. Internal steps (``submitting``, a retry
back to ``pending``) are not announced. The state machine only moves forward, so each of these is announced
at most once per conversion (``reversal_refused`` once per refused request), even when two workers apply the
same fact from stale copies of a row (:func:`_not_yet_announced`).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from typing import Any

from sqlmodel import Session, select

from backend.disclosures import ConversionEvent, ConversionEventKind, WebhookDelivery, WebhookEndpoint
from backend.models import Conversion, ConversionPublic, ConversionState, iso, utcnow

S = ConversionState
K = ConversionEventKind
_ON_CHAIN = (S.SETTLED, S.REVERSAL_PENDING)


def announced(state: ConversionState, tx_hash: str | None) -> tuple[ConversionEventKind, ...]:
    """The events a conversion in ``state`` (with ``tx_hash``) has been announced with, in order."""
    if state in _ON_CHAIN:
        return (K.ACCEPTED, K.SETTLED) if tx_hash else (K.ACCEPTED,)
    if state == S.FINAL:
        return K.ACCEPTED, K.SETTLED, K.FINAL
    if state == S.REVERSED:
        return K.ACCEPTED, K.SETTLED, K.REVERSED
    if state == S.REJECTED:
        return K.ACCEPTED, K.REJECTED
    return (K.ACCEPTED,)


def conversion_accepted(s: Session, row: Conversion) -> None:
    """``row`` was just created (and flushed, so it has its id)."""
    _record(s, row, (K.ACCEPTED,), None)


def conversion_changed(
    s: Session, row: Conversion, previous: ConversionState, previous_tx_hash: str | None
) -> None:
    """``row`` moved from ``previous`` (with ``previous_tx_hash``) to its current state."""
    current = ConversionState(row.state)
    before = announced(previous, previous_tx_hash)
    kinds = [k for k in announced(current, row.tx_hash) if k not in before]
    if previous == S.REVERSAL_PENDING and current == S.SETTLED:
        kinds.append(K.REVERSAL_REFUSED)
    if kinds:
        _record(s, row, kinds, previous)


def _endpoint(s: Session, partner_id: str) -> bool:
    """Whether the partner has a webhook endpoint (read once per session)."""
    cache: dict[str, bool] = s.info.setdefault("knowledger.webhook_endpoints", {})
    if partner_id not in cache:
        cache[partner_id] = s.get(WebhookEndpoint, partner_id) is not None
    return cache[partner_id]


def _record(
    s: Session,
    row: Conversion,
    kinds: list[ConversionEventKind] | tuple[ConversionEventKind, ...],
    previous: ConversionState | None,
) -> None:
    assert row.id is not None
    if previous is not None:
        kinds = _not_yet_announced(s, row, kinds)
        if not kinds:
            return
    now = utcnow()
    deliver = _endpoint(s, row.partner_id)
    snapshot = ConversionPublic.model_validate(row, from_attributes=True).model_dump(mode="json")
    for kind in kinds:
        s.add(ConversionEvent(conversion_id=row.id, partner_id=row.partner_id, event=kind, at=now))
        if deliver:
            data = {"previous_state": None if previous is None else str(previous), "conversion": snapshot}
            s.add(webhook_delivery(row.partner_id, f"conversion.{kind}", data, row.id, now))


def _not_yet_announced(
    s: Session, row: Conversion, kinds: list[ConversionEventKind] | tuple[ConversionEventKind, ...]
) -> list[ConversionEventKind]:
    """``kinds`` less those already recorded for ``row``: two workers may apply the same fact from stale
    copies of the row (the settler that sent a batch and the indexer that read it on chain). The row's own
    update is written first, so the second transaction waits for the first (PostgreSQL's row lock, SQLite's
    single writer) and then sees its events."""
    s.flush()
    done = set(s.exec(select(ConversionEvent.event).where(ConversionEvent.conversion_id == row.id)).all())
    return [k for k in kinds if k == K.REVERSAL_REFUSED or k.value not in done]


def webhook_delivery(
    partner_id: str, event: str, data: dict[str, Any], conversion_id: int | None, created: dt.datetime
) -> WebhookDelivery:
    """A delivery due at once, its body fixed: the same bytes are signed and sent on every attempt.
    ``created`` (the time of the change it reports) is in the body, for the receiver."""
    event_id = "evt_" + secrets.token_hex(12)
    body = json.dumps(
        {"id": event_id, "type": event, "created": iso(created), "partner_id": partner_id, "data": data},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return WebhookDelivery(
        event_id=event_id,
        partner_id=partner_id,
        conversion_id=conversion_id,
        event=event,
        body=body,
        next_attempt_ms=int(created.timestamp() * 1000),
        created_at=created,
        updated_at=created,
    )
