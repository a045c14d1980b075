"""End to end over HTTP (a real uvicorn server on loopback), on SQLite and on PostgreSQL: consent,
recommend, convert, settle, statement, revoke; then the next recommendation is refused and a conversion
for the revoked user is rejected on chain. Plus the chain going down while conversions arrive: accepted,
then settled exactly once after recovery (a real anvil node behind a proxy that is cut)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.chain import connect_devnet, split_commission
from backend.chain.devnet import AnvilNode
from backend.main import create_app
from backend.models import ConversionState
from backend.services.agreements import terms_from_json

from ._live import ChainProxy, live_server
from .conftest import Service


def _story(svc: Service, http: httpx.Client) -> None:
    bank = svc.partner("bank")
    user = svc.new_user()
    subject = user["pseudonym"]

    # before consent: refused, with the reason
    r = http.post("/api/v1/recommendations", json={"subject": subject}, headers=bank)
    assert r.status_code == 403 and r.json()["error"]["code"] == "consent_required"

    # consent through the registrar path: mined, with receipt and transaction
    for purpose in ("profiling", "product_recommendation"):
        g = http.put(f"/api/v1/me/consents/bank/{purpose}", headers=user["headers"])
        assert g.status_code == 201, g.text
        grant = g.json()
        assert grant["tx_hash"].startswith("0x") and grant["block_number"] > 0
        assert grant["receipt"]["pii_principal_id"] == subject
    state = http.get("/api/v1/me/consents", headers=user["headers"]).json()["consents"]
    held = {(c["partner_id"], c["purpose"]) for c in state if c["granted"]}
    assert held == {("bank", "profiling"), ("bank", "product_recommendation")}

    # recommend: consent verified on chain at the current block, products with explanations
    r = http.post("/api/v1/recommendations", json={"subject": subject, "k": 3}, headers=bank)
    assert r.status_code == 200, r.text
    rec = r.json()
    head = svc.container.chain.head()
    assert rec["consent"]["verified_at_block"] == head.number
    assert len(rec["products"]) == 3 and rec["model_version"]
    bank_products = {p["id"] for p in http.get("/api/v1/products?partner_id=bank").json()["products"]}
    assert {p["product_id"] for p in rec["products"]} <= bank_products
    assert "platform_user_id" not in r.text

    # convert: accepted into the outbox, settled on chain by the settler
    c = http.post(
        "/api/v1/conversions",
        json={"recommendation_id": rec["recommendation_id"], "order_id": "ORD-1", "value": 250_000},
        headers=bank,
    )
    assert c.status_code == 202 and c.json()["state"] == "pending"
    s = http.post("/api/v1/operator/settle", headers=svc.operator)
    assert s.status_code == 200 and s.json()["round"]["settled"] == 1
    conv = http.get(f"/api/v1/conversions/{c.json()['id']}", headers=bank).json()
    assert conv["state"] == "settled" and conv["tx_hash"].startswith("0x")

    # statement: the exact split, per party, with the transaction; reconcile finds no difference
    agreement_id = conv["agreement_id"]
    st = http.get(f"/api/v1/ledger/agreements/{agreement_id}/statement", headers=bank).json()
    terms = terms_from_json(
        http.get(f"/api/v1/ledger/agreements/{agreement_id}", headers=bank).json()["terms"]
    )
    commission, amounts = split_commission(terms, 250_000)
    assert [p["provisional"] for p in st["parties"]] == amounts
    assert st["totals"]["provisional"] == commission
    assert st["conversions"]["items"][0]["tx_hash"] == conv["tx_hash"]
    rc = http.get(f"/api/v1/ledger/agreements/{agreement_id}/reconcile", headers=bank).json()
    assert rc["ok"] is True and rc["conversions"]["on_chain"] == 1
    ledger = svc.container.deployment.ledger
    assert [ledger.totals_of(agreement_id, p.account).provisional for p in terms.parties] == amounts

    # revoke: the very next request is refused
    rv = http.delete("/api/v1/me/consents/bank/product_recommendation", headers=user["headers"])
    assert rv.status_code == 200
    r = http.post("/api/v1/recommendations", json={"subject": subject}, headers=bank)
    assert r.status_code == 403
    assert r.json()["error"]["details"]["missing"] == ["product_recommendation"]
    assert r.json()["error"]["details"]["block"] >= rv.json()["block_number"]

    # a conversion for the revoked user is accepted by the API but rejected on chain
    late = http.post(
        "/api/v1/conversions",
        json={"recommendation_id": rec["recommendation_id"], "order_id": "ORD-2", "value": 99_000},
        headers=bank,
    )
    assert late.status_code == 202
    http.post("/api/v1/operator/settle", headers=svc.operator)
    late_row = http.get(f"/api/v1/conversions/{late.json()['id']}", headers=bank).json()
    assert late_row["state"] == "rejected" and late_row["error"].startswith("SettlementLedgerNoConsent")
    st2 = http.get(f"/api/v1/ledger/agreements/{agreement_id}/statement", headers=bank).json()
    assert st2["totals"]["provisional"] == commission  # nothing added
    assert http.get(f"/api/v1/ledger/agreements/{agreement_id}/reconcile", headers=bank).json()["ok"] is True

    # the history shows all three changes, in order
    hist = http.get("/api/v1/me/consents/history", headers=user["headers"]).json()["history"]
    assert [(h["purpose"], h["action"]) for h in hist] == [
        ("profiling", "grant"),
        ("product_recommendation", "grant"),
        ("product_recommendation", "revoke"),
    ]


def test_end_to_end_over_http_on_sqlite(make_service: Callable[..., Service]) -> None:
    svc = make_service()
    with live_server(create_app(container=svc.container)) as http:
        _story(svc, http)


@pytest.mark.postgres
def test_end_to_end_over_http_on_postgresql(make_service: Callable[..., Service], pg_url: str) -> None:
    svc = make_service(database_url=pg_url)
    assert svc.container.engine.dialect.name == "postgresql"
    with live_server(create_app(container=svc.container)) as http:
        _story(svc, http)


def _events_per_conversion(svc: Service, agreement_id: int) -> Counter[int]:
    events = svc.container.deployment.ledger.conversions_recorded(agreement_id, from_block=0)
    return Counter(c.data.id for e in events for c in e.conversions)


@pytest.mark.anvil
def test_chain_down_conversions_are_accepted_then_settled_exactly_once(
    anvil_bin: Path, tmp_path: Path, make_service: Callable[..., Service]
) -> None:
    node = AnvilNode(run_dir=tmp_path / "anvil", binary=anvil_bin).start()
    proxy = ChainProxy("127.0.0.1", int(node.url.rsplit(":", 1)[1]))
    try:
        chain = connect_devnet(proxy.url, timeout=2.0)
        svc = make_service(chain=chain, manifest_path=tmp_path / "manifest.json")
        api, bank = svc.api, svc.partner("bank")
        user = svc.new_user()
        svc.grant(user)
        rec = api.post("/api/v1/recommendations", json={"subject": user["pseudonym"]}, headers=bank).json()

        # the node becomes unreachable
        proxy.cut()
        r = api.post("/api/v1/recommendations", json={"subject": user["pseudonym"]}, headers=bank)
        assert r.status_code == 503 and r.json()["error"]["code"] == "chain_unavailable"  # fail closed
        ids = []
        for i in range(3):
            body: dict[str, Any] = {
                "recommendation_id": rec["recommendation_id"],
                "order_id": f"D-{i}",
                "value": 10_000 + i,
            }
            c = api.post("/api/v1/conversions", json=body, headers=bank)
            assert c.status_code == 202, c.text
            ids.append(c.json()["id"])
        again = api.post(
            "/api/v1/conversions",
            json={"recommendation_id": rec["recommendation_id"], "order_id": "D-0", "value": 10_000},
            headers=bank,
        )
        assert again.status_code == 200 and again.json()["id"] == ids[0]
        stats = svc.container.settler.run_once()  # type: ignore[union-attr]
        assert stats["settled"] == 0
        assert api.get("/health").status_code == 503

        # the node answers again, but the answer to our transaction is lost: it is mined all the same
        proxy.restore()
        proxy.lose_next_send()
        svc.container.settler.run_once()  # type: ignore[union-attr]
        states = {api.get(f"/api/v1/conversions/{i}", headers=bank).json()["state"] for i in ids}
        assert states == {ConversionState.SUBMITTING}

        # healed: the service finds the batch on chain instead of sending it again
        proxy.restore()
        stats = svc.container.settler.run_once()  # type: ignore[union-attr]
        assert stats["recovered"] == 3
        svc.container.settler.run_once()  # type: ignore[union-attr]
        svc.container.indexer.run_once()
        rows = [api.get(f"/api/v1/conversions/{i}", headers=bank).json() for i in ids]
        assert {r["state"] for r in rows} == {"settled"} and all(r["tx_hash"] for r in rows)
        agreement_id = rows[0]["agreement_id"]
        assert _events_per_conversion(svc, agreement_id) == Counter(dict.fromkeys(ids, 1))
        rc = api.get(f"/api/v1/ledger/agreements/{agreement_id}/reconcile", headers=bank).json()
        assert rc["ok"] is True and rc["conversions"]["on_chain"] == 3
        assert api.get("/health").status_code == 200
    finally:
        proxy.close()
        node.stop()
