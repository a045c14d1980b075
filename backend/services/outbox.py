"""A conversion's state, owned by one function.

Every change of a conversion row's state, by the settler (which sends it) or by the indexer (which reads
what the chain says happened), goes through :func:`transition`, which refuses a move the state machine does
not allow::

    pending ──send──▶ submitting ──mined──▶ settled ──window passes──▶ final
       ▲                  │                    │
       └──chain down──────┘                    └──reversal──▶ reversal_pending ──▶ reversed
    (a named refusal from the chain for one conversion marks it rejected; the rest are retried)

Facts read from the chain may arrive after the settler already recorded them, or twice (a re-index): the
indexer's helpers below turn such a fact into the state it implies (never a step backwards).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from backend.models import Conversion, ConversionState, utcnow
from backend.services.notifications import conversion_changed

S = ConversionState

#: state → the states it may move to (staying put, with new fields, is always allowed).
ALLOWED: dict[ConversionState, frozenset[ConversionState]] = {
    S.PENDING: frozenset({S.SUBMITTING, S.SETTLED, S.REJECTED}),
    S.SUBMITTING: frozenset({S.PENDING, S.SETTLED, S.REJECTED}),
    S.SETTLED: frozenset({S.REVERSAL_PENDING, S.REVERSED, S.FINAL}),
    S.REVERSAL_PENDING: frozenset({S.SETTLED, S.REVERSED, S.FINAL}),
    S.REVERSED: frozenset(),
    S.FINAL: frozenset(),
    S.REJECTED: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A move the state machine does not allow (a bug in the caller, never the partner's input)."""


def transition(s: Session, row: Conversion, state: ConversionState, **fields: Any) -> None:
    """Move ``row`` to ``state`` with the fields that come with it, stamping the time of the change, and
    record what its partner is told about it (:mod:`backend.services.notifications`) in the same session.
    The caller commits: the change and its notification are one transaction."""
    current = ConversionState(row.state)
    if state != current and state not in ALLOWED[current]:
        raise IllegalTransition(f"conversion {row.id}: {current} → {state} is not a valid move")
    previous_tx_hash = row.tx_hash
    row.state = state
    for name, value in fields.items():
        setattr(row, name, value)
    row.updated_at = utcnow()
    s.add(row)
    conversion_changed(s, row, current, previous_tx_hash)


def recorded_on_chain(
    s: Session, row: Conversion, *, batch_id: int, batch_index: int, tx_hash: str | None, block: int | None
) -> None:
    """The chain recorded ``row`` in ``batch_id``: it is settled, unless it has already moved on."""
    current = ConversionState(row.state)
    state = S.SETTLED if current in (S.PENDING, S.SUBMITTING) else current
    transition(s, row, state, batch_id=batch_id, batch_index=batch_index, tx_hash=tx_hash, block_number=block)


def reversed_on_chain(s: Session, row: Conversion, tx_hash: str | None) -> None:
    """The chain reversed ``row``."""
    transition(s, row, S.REVERSED, reversal_tx_hash=tx_hash)


def finalized_on_chain(s: Session, row: Conversion) -> None:
    """``row``'s batch passed its validation window and was finalized on chain (a reversal still pending
    is left to the settler, which hears the chain's refusal and says why)."""
    if ConversionState(row.state) == S.SETTLED:
        transition(s, row, S.FINAL)


def counts(engine: Engine) -> dict[str, int]:
    """Conversions per state."""
    with Session(engine) as s:
        rows = s.exec(select(Conversion.state, func.count()).group_by(Conversion.state)).all()
    return {str(state): int(n) for state, n in rows}
