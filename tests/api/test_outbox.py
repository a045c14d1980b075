"""A conversion's state machine (``backend.services.outbox``): the one function that moves a row, the moves
it allows and refuses, and the facts read from the chain that may arrive late or twice."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, SQLModel, create_engine

import backend.disclosures  # noqa: F401  (the notification tables)
from backend.models import Conversion, ConversionState
from backend.services.outbox import (
    ALLOWED,
    IllegalTransition,
    finalized_on_chain,
    recorded_on_chain,
    reversed_on_chain,
    transition,
)

S = ConversionState
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def session() -> Iterator[Session]:
    engine = create_engine("sqlite://")
    SQLModel.metadata.create_all(engine)  # the conversions and the notifications written with each move
    with Session(engine) as s:
        yield s


def row(session: Session, state: ConversionState) -> Conversion:
    r = Conversion(
        partner_id="bank",
        order_id=f"o-{state}",
        recommendation_id="rec_1",
        agreement_id=1,
        pseudonym="0x" + "11" * 32,
        value=100,
        occurred_at=1,
        recommended_at=1,
        state=state,
    )
    session.add(r)
    session.commit()
    return r


@pytest.mark.parametrize("start", list(S))
@pytest.mark.parametrize("end", list(S))
def test_a_move_is_made_exactly_when_the_machine_allows_it(
    session: Session, start: ConversionState, end: ConversionState
) -> None:
    r = row(session, start)
    before = r.updated_at
    if end == start or end in ALLOWED[start]:
        transition(session, r, end, error="why")
        assert r.state == end and r.error == "why" and r.updated_at >= before
    else:
        with pytest.raises(IllegalTransition, match=f"{start} → {end}"):
            transition(session, r, end, error="why")
        assert r.state == start and r.error is None


def test_final_and_rejected_and_reversed_are_terminal() -> None:
    assert ALLOWED[S.FINAL] == ALLOWED[S.REJECTED] == ALLOWED[S.REVERSED] == frozenset()


def test_a_recorded_fact_settles_a_pending_row_and_never_steps_a_later_one_back(session: Session) -> None:
    pending, final = row(session, S.SUBMITTING), row(session, S.FINAL)
    for r in (pending, final):
        recorded_on_chain(session, r, batch_id=7, batch_index=2, tx_hash="0xabc", block=40)
    assert pending.state == S.SETTLED and final.state == S.FINAL
    assert (pending.batch_id, pending.batch_index, pending.tx_hash, pending.block_number) == (
        7,
        2,
        "0xabc",
        40,
    )
    assert (final.batch_id, final.tx_hash) == (7, "0xabc")
    recorded_on_chain(session, pending, batch_id=7, batch_index=2, tx_hash="0xabc", block=40)  # indexed twice
    assert pending.state == S.SETTLED


def test_finalized_moves_settled_rows_and_leaves_a_pending_reversal_to_the_settler(session: Session) -> None:
    settled, reversing = row(session, S.SETTLED), row(session, S.REVERSAL_PENDING)
    finalized_on_chain(session, settled)
    finalized_on_chain(session, reversing)
    assert settled.state == S.FINAL and reversing.state == S.REVERSAL_PENDING


def test_a_reversal_fact_reverses(session: Session) -> None:
    r = row(session, S.REVERSAL_PENDING)
    reversed_on_chain(session, r, "0xdef")
    assert r.state == S.REVERSED and r.reversal_tx_hash == "0xdef"


def test_no_other_module_assigns_a_conversion_state() -> None:
    """``transition`` is the one writer: no other service module assigns ``.state``."""
    offenders = []
    for path in sorted((ROOT / "backend").rglob("*.py")):
        if path.name == "outbox.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assign | ast.AugAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Attribute) and t.attr == "state":
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
