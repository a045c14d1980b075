"""What a partner is told about a conversion, for every path through the state machine: each change it can
see is announced once, in the lifecycle's order, and written with the change (a webhook row per event when
the partner has an endpoint, none when it has not)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import Session, SQLModel, create_engine, select

from backend.disclosures import ConversionEvent, WebhookDelivery, WebhookEndpoint
from backend.models import Conversion, ConversionState
from backend.services.notifications import conversion_accepted
from backend.services.outbox import ALLOWED, transition

S = ConversionState
LIFECYCLE = ["accepted", "settled", "final", "reversed", "rejected"]


@pytest.fixture(scope="module")
def engine() -> Iterator[object]:
    e = create_engine("sqlite://")
    SQLModel.metadata.create_all(e)
    with Session(e) as s:
        s.add(WebhookEndpoint(partner_id="bank", url="https://hooks.example.com/k", secret="whsec_x"))
        s.commit()
    yield e


#: A move: the next state (an index into the allowed moves) and whether it carries a transaction hash.
moves = st.lists(st.tuples(st.integers(0, 10), st.booleans()), max_size=8)


@settings(max_examples=150, deadline=None)
@given(path=moves, partner=st.sampled_from(["bank", "insurer"]))
def test_each_visible_change_is_announced_once_in_order(engine: object, path: list, partner: str) -> None:
    with Session(engine) as s:  # type: ignore[arg-type]
        row = Conversion(
            partner_id=partner, order_id="o", recommendation_id="r", agreement_id=1,
            pseudonym="0x" + "11" * 32, value=1, occurred_at=1, recommended_at=1,
        )  # fmt: skip
        s.add(row)
        s.flush()
        conversion_accepted(s, row)
        refusals = 0
        for pick, with_tx in path:
            options = sorted(ALLOWED[S(row.state)] | {S(row.state)})
            target = options[pick % len(options)]
            fields = {"tx_hash": "0xabc", "block_number": 9} if with_tx and row.tx_hash is None else {}
            refusals += S(row.state) == S.REVERSAL_PENDING and target == S.SETTLED
            transition(s, row, target, **fields)
        s.flush()
        events = [
            e.event for e in s.exec(select(ConversionEvent).where(ConversionEvent.conversion_id == row.id))
        ]
        hooks = [
            d.event for d in s.exec(select(WebhookDelivery).where(WebhookDelivery.conversion_id == row.id))
        ]
        final, tx = S(row.state), row.tx_hash
        s.rollback()

    visible = [e for e in events if e != "reversal_refused"]
    assert visible[0] == "accepted"
    assert len(visible) == len(set(visible))  # each at most once
    assert visible == sorted(visible, key=LIFECYCLE.index)  # in the lifecycle's order
    assert events.count("reversal_refused") == refusals
    on_chain_with_tx = tx is not None and final in (S.SETTLED, S.REVERSAL_PENDING)
    assert ("settled" in visible) == (final in (S.FINAL, S.REVERSED) or on_chain_with_tx)
    assert ("final" in visible) == (final == S.FINAL)
    assert ("reversed" in visible) == (final == S.REVERSED)
    assert ("rejected" in visible) == (final == S.REJECTED)
    # a webhook per event for the partner with an endpoint, none for the other
    assert hooks == ([f"conversion.{e}" for e in events] if partner == "bank" else [])
