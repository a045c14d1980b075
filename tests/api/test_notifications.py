"""What a partner is told about a conversion, for every path through the state machine: each change it can
see is announced once, in the lifecycle's order, and written with the change (a webhook row per event when
the partner has an endpoint, none when it has not)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from alembic import command
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlmodel import Session, SQLModel, create_engine, select

from backend.core.db import alembic_config, make_engine
from backend.disclosures import ConversionEvent, WebhookDelivery, WebhookEndpoint
from backend.models import Conversion, ConversionState, utcnow
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


# ------------------------------------------------------------------------------------------ migration 0003
def _upgrade(engine: Any, revision: str) -> None:
    cfg = alembic_config(str(engine.url.render_as_string(hide_password=False)))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def _backfill(engine: Any) -> None:
    """A database of the previous revision with conversions in every state gets their history."""
    _upgrade(engine, "0002")
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO partner (id, name, kind, address, notice_text, notice_version, api_key_hash, "
                "created_at) VALUES ('bank', 'Bank', 'bank', :a, 'n', 1, 'h', :t)"
            ),
            {"a": "0x" + "11" * 20, "t": now},
        )
        conn.execute(
            text(
                "INSERT INTO agreement (id, partner_id, terms, terms_hash, status, updated_at) "
                "VALUES (1, 'bank', '{}', '0x', 'active', :t)"
            ),
            {"t": now},
        )
        conn.execute(
            text(
                "INSERT INTO recommendation (id, pseudonym, partner_id, products, model_version, "
                "consent_block, served_at, created_at) VALUES ('rec_1', '0x', 'bank', '[]', 'v', 1, 1, :t)"
            ),
            {"t": now},
        )
        rows = [
            ("pending", None),
            ("settled", "0xa"),
            ("settled", None),  # recovered, its transaction not yet known
            ("final", "0xb"),
            ("reversed", "0xc"),
            ("rejected", None),
        ]
        for i, (state, tx) in enumerate(rows, 1):
            conn.execute(
                text(
                    "INSERT INTO conversion (id, partner_id, order_id, recommendation_id, agreement_id, "
                    "pseudonym, value, occurred_at, recommended_at, state, commission, amounts, tx_hash, "
                    "attempts, created_at, updated_at) VALUES (:id, 'bank', :o, 'rec_1', 1, '0x', 1, 1, 1, "
                    ":s, 0, '[]', :tx, 0, :t, :t)"
                ),
                {"id": i, "o": f"o{i}", "s": state, "tx": tx, "t": now},
            )
    _upgrade(engine, "head")
    with engine.connect() as conn:
        got = conn.execute(
            text("SELECT conversion_id, event FROM conversion_event ORDER BY conversion_id, id")
        ).all()
    history: dict[int, list[str]] = {}
    for cid, event in got:
        history.setdefault(int(cid), []).append(str(event))
    assert history == {
        1: ["accepted"],
        2: ["accepted", "settled"],
        3: ["accepted"],
        4: ["accepted", "settled", "final"],
        5: ["accepted", "settled", "reversed"],
        6: ["accepted", "rejected"],
    }


def test_migration_0003_gives_existing_conversions_their_history(tmp_path: Any) -> None:
    _backfill(make_engine(f"sqlite:///{tmp_path / 'old.db'}"))


def test_migration_0003_on_postgresql(pg_url: str) -> None:
    engine = make_engine(pg_url)
    try:
        _backfill(engine)
    finally:
        engine.dispose()
