"""Every endpoint's happy path, and who may call it (users: a bearer token; partners: their API key; the
operator: its key). Bad input on each endpoint is in ``test_bad_input.py``.

Tests share one service per module (``service``) and make their own users; a test that needs a partner of
its own (new notice, new key) creates one, so the seeded "bank" and "insurer" stay as seeded.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from sqlmodel import Session, select

from backend.chain import Purpose, split_commission
from backend.models import ConsentEvent, Conversion, Profile
from backend.services.agreements import terms_from_json
from backend.services.outbox import counts

from .conftest import Service

ALL_PURPOSES = ("profiling", "product_recommendation", "marketing_contact", "data_sharing")


# -------------------------------------------------------------------------------------------------- helpers
def assert_error(r: Any, status: int, code: str, *fragments: str) -> dict[str, Any]:
    """``r`` is the JSON error envelope with ``status`` and ``code``, its message naming each fragment."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert error["code"] == code, error
    for fragment in fragments:
        assert fragment in error["message"], (fragment, error["message"])
    return error


def subject_bytes(user: dict[str, Any]) -> bytes:
    return bytes.fromhex(user["pseudonym"].removeprefix("0x"))


def held_on_chain(service: Service, user: dict[str, Any], partner_id: str = "bank") -> set[str]:
    """The purposes ``user`` holds for ``partner_id``, read from the registry itself."""
    address = partner_address(service, partner_id)
    mask = service.container.deployment.consent.consent_mask(subject_bytes(user), address)
    return {p.name.lower() for p in Purpose if mask >> int(p) & 1}


def partner_address(service: Service, partner_id: str) -> str:
    partners = service.api.get("/api/v1/partners").json()
    return next(p["address"] for p in partners if p["id"] == partner_id)


def history(service: Service, user: dict[str, Any]) -> list[dict[str, Any]]:
    r = service.api.get("/api/v1/me/consents/history", headers=user["headers"])
    assert r.status_code == 200, r.text
    return r.json()["history"]


def recommend(service: Service, user: dict[str, Any], partner_id: str = "bank", k: int = 3) -> dict[str, Any]:
    r = service.api.post(
        "/api/v1/recommendations",
        json={"subject": user["pseudonym"], "k": k},
        headers=service.partner(partner_id),
    )
    assert r.status_code == 200, r.text
    return r.json()


def consenting_user(service: Service, partner_id: str = "bank") -> dict[str, Any]:
    user = service.new_user()
    service.grant(user, partner_id)
    return user


def convert(
    service: Service, rec: dict[str, Any], order_id: str, value: int = 10_000, partner_id: str = "bank"
) -> Any:
    return service.api.post(
        "/api/v1/conversions",
        json={"recommendation_id": rec["recommendation_id"], "order_id": order_id, "value": value},
        headers=service.partner(partner_id),
    )


def conversion_rows(service: Service) -> list[Conversion]:
    with Session(service.container.engine) as s:
        return list(s.exec(select(Conversion).order_by(Conversion.id)).all())


def consent_events(service: Service) -> int:
    with Session(service.container.engine) as s:
        return len(s.exec(select(ConsentEvent.id)).all())


def wallet_user(service: Service) -> dict[str, Any]:
    account = Account.create()
    user = service.new_user(wallet=account.address)
    user["account"] = account
    return user


def sign(typed_data: dict[str, Any], key: Any) -> str:
    signed = Account.sign_message(encode_typed_data(full_message=typed_data), key)
    return "0x" + bytes(signed.signature).hex()


def relay_request(
    service: Service,
    user: dict[str, Any],
    purpose: str,
    action: str = "grant",
    partner_id: str = "bank",
    key: Any = None,
) -> dict[str, Any]:
    """The relay body for ``user``'s wallet-signed ``action`` (signed with ``key``, default the wallet's)."""
    r = service.api.post(
        f"/api/v1/me/consents/{partner_id}/{purpose}/typed-data",
        json={"action": action},
        headers=user["headers"],
    )
    assert r.status_code == 200, r.text
    out = r.json()
    return {
        "action": action,
        "message": out["typed_data"]["message"],
        "signature": sign(out["typed_data"], key if key is not None else user["account"].key),
        "receipt": out["receipt"],
    }


def new_partner(service: Service, partner_id: str) -> dict[str, Any]:
    body = {
        "id": partner_id,
        "name": f"Partner {partner_id}",
        "kind": "bank",
        "address": Account.create().address,
        "notice_text": f"{partner_id} uses your profile to suggest its products.",
    }
    r = service.api.post("/api/v1/partners", json=body, headers=service.operator)
    assert r.status_code == 201, r.text
    return r.json()


# --------------------------------------------------------------------------------------------------- public
def test_health_reports_database_chain_model_and_contracts(service: Service) -> None:
    r = service.api.get("/health")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["chain"]["status"] == "ok" and body["chain"]["target"] == "embedded"
    assert body["chain"]["block"] == service.container.chain.head().number
    assert body["model"]["loaded"] is True and body["model"]["version"]
    assert body["contracts"]["ConsentRegistry"] == service.container.deployment.consent.address


def test_metrics_are_prometheus_text(service: Service) -> None:
    service.api.get("/api/v1/ping")
    r = service.api.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert "knowledger_http_requests_total" in r.text
    assert 'route="/api/v1/ping"' in r.text


def test_ping(service: Service) -> None:
    r = service.api.get("/api/v1/ping")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_purposes_lists_the_four_purposes_with_their_notices(service: Service) -> None:
    r = service.api.get("/api/v1/purposes")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["platform_notice_version"] == service.container.deployment.consent.platform_notice_version()
    assert [p["id"] for p in body["purposes"]] == list(ALL_PURPOSES)
    assert [p["bit"] for p in body["purposes"]] == [int(p) for p in Purpose]
    assert all(p["title"] and p["notice"] and p["pii_categories"] for p in body["purposes"])


def test_partners_lists_public_fields_only(service: Service) -> None:
    r = service.api.get("/api/v1/partners")
    assert r.status_code == 200, r.text
    partners = {p["id"]: p for p in r.json()}
    assert {"bank", "insurer"} <= set(partners)
    bank = partners["bank"]
    assert set(bank) == {"id", "name", "kind", "address", "notice_text", "notice_version"}
    consent = service.container.deployment.consent
    assert bank["notice_version"] == consent.partner_notice_version(bank["address"]) == 1
    assert "api_key" not in r.text


def test_products_are_public_and_filter_by_partner(service: Service) -> None:
    everything = service.api.get("/api/v1/products")
    assert everything.status_code == 200
    bank = service.api.get("/api/v1/products", params={"partner_id": "bank"}).json()["products"]
    insurer = service.api.get("/api/v1/products", params={"partner_id": "insurer"}).json()["products"]
    assert bank and insurer
    assert {p["partner_id"] for p in bank} == {"bank"} and {p["partner_id"] for p in insurer} == {"insurer"}
    assert len(everything.json()["products"]) == len(bank) + len(insurer)
    assert service.api.get("/api/v1/products", params={"partner_id": "nobody"}).json() == {"products": []}


# ------------------------------------------------------------------------------------------------------- me
def test_me_returns_the_signed_in_user(service: Service) -> None:
    user = service.new_user()
    r = service.api.get("/api/v1/me", headers=user["headers"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == user["id"] and body["pseudonym"] == user["pseudonym"] and body["wallet"] is None
    assert body["created_at"].endswith("Z")
    assert "platform_user_id" not in body


def test_grant_is_mined_with_a_receipt_whose_hash_is_on_chain(service: Service) -> None:
    user = service.new_user()
    r = service.api.put("/api/v1/me/consents/bank/profiling", headers=user["headers"])
    assert r.status_code == 201, r.text
    event = r.json()
    assert event["action"] == "grant" and event["path"] == "registrar"
    assert event["partner_id"] == "bank" and event["purpose"] == "profiling"
    assert event["tx_hash"].startswith("0x") and event["block_number"] > 0
    receipt = event["receipt"]
    assert receipt["receipt_id"] == event["receipt_id"]
    assert receipt["pii_principal_id"] == user["pseudonym"]
    assert receipt["chain"]["registry"] == service.container.deployment.consent.address
    assert held_on_chain(service, user) == {"profiling"}


def test_grant_accepts_a_lifetime_in_days(service: Service) -> None:
    user = service.new_user()
    r = service.api.put("/api/v1/me/consents/bank/data_sharing", json={"days": 30}, headers=user["headers"])
    assert r.status_code == 201, r.text
    event = r.json()
    termination = event["receipt"]["services"][0]["purposes"][0]["termination"]
    expires = dt.datetime.fromisoformat(termination.replace("Z", "+00:00")).timestamp()
    assert abs(expires - (event["chain_time"] + 30 * 86_400)) <= 60
    assert held_on_chain(service, user) == {"data_sharing"}


def test_consents_lists_every_partner_and_purpose_as_the_chain_says(service: Service) -> None:
    user = consenting_user(service, "insurer")
    r = service.api.get("/api/v1/me/consents", headers=user["headers"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["pseudonym"] == user["pseudonym"]
    state = {(c["partner_id"], c["purpose"]): c["granted"] for c in body["consents"]}
    assert {pid for pid, _ in state} >= {"bank", "insurer"}
    assert {p for _, p in state} == set(ALL_PURPOSES)
    granted = {k for k, v in state.items() if v}
    assert granted == {("insurer", "profiling"), ("insurer", "product_recommendation")}
    head = service.container.chain.head().number
    assert all(c["checked_at_block"] == head for c in body["consents"])


def test_revoke_stops_recommendations_from_the_next_block(service: Service) -> None:
    user = consenting_user(service)
    recommend(service, user)
    r = service.api.delete("/api/v1/me/consents/bank/product_recommendation", headers=user["headers"])
    assert r.status_code == 200, r.text
    event = r.json()
    assert event["action"] == "revoke" and event["purpose"] == "product_recommendation"
    assert event["receipt_id"] is None and event["tx_hash"].startswith("0x")
    assert held_on_chain(service, user) == {"profiling"}
    refused = service.api.post(
        "/api/v1/recommendations", json={"subject": user["pseudonym"]}, headers=service.partner("bank")
    )
    error = assert_error(refused, 403, "consent_required", "product_recommendation")
    assert error["details"]["missing"] == ["product_recommendation"]


def test_history_lists_grants_and_revocations_in_order(service: Service) -> None:
    user = consenting_user(service)
    service.api.delete("/api/v1/me/consents/bank/profiling", headers=user["headers"])
    events = history(service, user)
    assert [(e["action"], e["purpose"]) for e in events] == [
        ("grant", "profiling"),
        ("grant", "product_recommendation"),
        ("revoke", "profiling"),
    ]
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert "receipt" not in events[0]


def test_receipt_is_served_to_its_owner(service: Service) -> None:
    user = service.new_user()
    grant = service.grant(user, "bank", ("marketing_contact",))[0]
    r = service.api.get(f"/api/v1/me/receipts/{grant['receipt_id']}", headers=user["headers"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["receipt"] == grant["receipt"]
    assert body["receipt_hash"] == grant["receipt_hash"]
    assert body["tx_hash"] == grant["tx_hash"] and body["block_number"] == grant["block_number"]


def test_export_holds_profile_history_recommendations_and_conversions(service: Service) -> None:
    user = consenting_user(service)
    rec = recommend(service, user)
    conversion = convert(service, rec, "export-order").json()
    r = service.api.get("/api/v1/me/export", headers=user["headers"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user"]["id"] == user["id"] and body["user"]["pseudonym"] == user["pseudonym"]
    assert body["user"]["platform_user_id"]
    assert body["profile"]["data"]["user_id"] == user["pseudonym"]
    assert [e["purpose"] for e in body["consent_history"]] == ["profiling", "product_recommendation"]
    assert [x["id"] for x in body["recommendations"]] == [rec["recommendation_id"]]
    assert [c["id"] for c in body["conversions"]] == [conversion["id"]]


def test_erase_revokes_on_chain_and_forgets_the_user(service: Service) -> None:
    user = consenting_user(service)
    platform_id = service.api.get("/api/v1/me/export", headers=user["headers"]).json()["user"][
        "platform_user_id"
    ]
    r = service.api.request("DELETE", "/api/v1/me", json={"confirm": "erase"}, headers=user["headers"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["erased"] is True
    assert {(x["partner_id"], x["purpose"]) for x in body["revoked_on_chain"]} == {
        ("bank", "profiling"),
        ("bank", "product_recommendation"),
    }
    assert held_on_chain(service, user) == set()
    assert_error(service.api.get("/api/v1/me", headers=user["headers"]), 401, "unauthenticated")
    assert_error(
        service.api.get("/api/v1/users", params={"platform_user_id": platform_id}, headers=service.operator),
        404,
        "not_found",
    )
    with Session(service.container.engine) as s:
        assert s.get(Profile, user["id"]) is None
    gone = service.api.post(
        "/api/v1/recommendations", json={"subject": user["pseudonym"]}, headers=service.partner("bank")
    )
    assert_error(gone, 404, "not_found", "unknown user")


# ---------------------------------------------------------------------------------------------- wallet path
def test_wallet_user_grants_by_signature_and_gets_recommendations(service: Service) -> None:
    user = wallet_user(service)
    assert service.api.get("/api/v1/me", headers=user["headers"]).json()["wallet"] == user["account"].address
    for purpose in ("profiling", "product_recommendation"):
        request = relay_request(service, user, purpose)
        assert request["message"]["subject"] == user["pseudonym"]
        r = service.api.post("/api/v1/consents/relay", json=request)
        assert r.status_code == 201, r.text
        event = r.json()
        assert event["action"] == "grant" and event["purpose"] == purpose
        assert event["path"] == f"wallet {user['account'].address}"
        assert event["receipt"] == request["receipt"]
    assert held_on_chain(service, user) == {"profiling", "product_recommendation"}
    rec = recommend(service, user, k=2)
    assert rec["subject"] == user["pseudonym"] and len(rec["products"]) == 2
    assert [e["path"].split()[0] for e in history(service, user)] == ["wallet", "wallet"]


def test_wallet_user_revokes_by_signature(service: Service) -> None:
    user = wallet_user(service)
    for purpose in ("profiling", "product_recommendation"):
        assert (
            service.api.post("/api/v1/consents/relay", json=relay_request(service, user, purpose)).status_code
            == 201
        )
    request = relay_request(service, user, "profiling", action="revoke")
    assert request["receipt"] is None
    r = service.api.post("/api/v1/consents/relay", json=request)
    assert r.status_code == 201, r.text
    assert r.json()["action"] == "revoke"
    assert held_on_chain(service, user) == {"product_recommendation"}
    refused = service.api.post(
        "/api/v1/recommendations", json={"subject": user["pseudonym"]}, headers=service.partner("bank")
    )
    assert_error(refused, 403, "consent_required", "profiling")


def test_typed_data_is_the_eip712_message_for_the_wallet(service: Service) -> None:
    user = wallet_user(service)
    r = service.api.post(
        "/api/v1/me/consents/insurer/data_sharing/typed-data",
        json={"action": "grant", "days": 10},
        headers=user["headers"],
    )
    assert r.status_code == 200, r.text
    body = r.json()
    typed = body["typed_data"]
    assert typed["primaryType"] == "ConsentGrant"
    assert typed["domain"]["verifyingContract"] == service.container.deployment.consent.address
    assert typed["domain"]["chainId"] == service.container.chain.chain_id
    message = typed["message"]
    assert message["subject"] == user["pseudonym"]
    assert message["partner"] == partner_address(service, "insurer")
    assert message["purpose"] == int(Purpose.DATA_SHARING) and message["nonce"] == 0
    now = service.container.chain.now()
    assert now < message["deadline"] <= now + service.settings.signature_ttl_s
    assert abs(message["expiresAt"] - (now + 10 * 86_400)) <= 60
    assert body["receipt"]["pii_principal_id"] == user["pseudonym"]
    revoke = service.api.post(
        "/api/v1/me/consents/insurer/data_sharing/typed-data",
        json={"action": "revoke"},
        headers=user["headers"],
    ).json()
    assert revoke["typed_data"]["primaryType"] == "ConsentRevocation" and revoke["receipt"] is None


# -------------------------------------------------------------------------------------------------- partner
def test_recommendations_are_this_partners_products_after_an_on_chain_check(service: Service) -> None:
    user = consenting_user(service)
    rec = recommend(service, user, k=4)
    assert rec["recommendation_id"].startswith("rec_") and rec["partner_id"] == "bank"
    assert rec["consent"]["verified_at_block"] == service.container.chain.head().number
    assert rec["consent"]["purposes"] == ["product_recommendation", "profiling"]
    assert len(rec["products"]) == 4
    bank_products = {
        p["id"] for p in service.api.get("/api/v1/products", params={"partner_id": "bank"}).json()["products"]
    }
    assert {p["product_id"] for p in rec["products"]} <= bank_products
    assert all("topics" in p["explanation"] and "keywords" in p["explanation"] for p in rec["products"])
    assert "platform_user_id" not in str(rec)


def test_recommendations_default_to_five(service: Service) -> None:
    user = consenting_user(service)
    r = service.api.post(
        "/api/v1/recommendations", json={"subject": user["pseudonym"]}, headers=service.partner("bank")
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["products"]) == 5


def test_conversion_is_accepted_into_the_outbox_and_read_back(service: Service) -> None:
    user = consenting_user(service)
    rec = recommend(service, user)
    product = rec["products"][0]["product_id"]
    r = service.api.post(
        "/api/v1/conversions",
        json={
            "recommendation_id": rec["recommendation_id"],
            "order_id": "happy-1",
            "value": 250_000,
            "product_id": product,
        },
        headers=service.partner("bank"),
    )
    assert r.status_code == 202, r.text
    conversion = r.json()
    assert conversion["state"] == "pending" and conversion["tx_hash"] is None
    assert conversion["product_id"] == product and conversion["value"] == 250_000
    assert conversion["agreement_id"] == service.seeded.agreements["bank"]
    assert conversion["commission"] == 250_000 * 80_000 // 1_000_000
    assert sum(conversion["amounts"]) == conversion["commission"]
    read = service.api.get(f"/api/v1/conversions/{conversion['id']}", headers=service.partner("bank"))
    assert read.status_code == 200 and read.json() == conversion


def test_same_order_twice_returns_the_same_conversion(service: Service) -> None:
    user = consenting_user(service)
    rec = recommend(service, user)
    first = convert(service, rec, "twice-1", value=5_000)
    assert first.status_code == 202, first.text
    before = len(conversion_rows(service))
    again = convert(service, rec, "twice-1", value=5_000)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert len(conversion_rows(service)) == before


def test_settle_records_on_chain_and_the_statement_and_reconciliation_agree(service: Service) -> None:
    user = consenting_user(service)
    rec = recommend(service, user)
    conversion = convert(service, rec, "settle-1", value=1_000_000).json()
    r = service.api.post("/api/v1/operator/settle", headers=service.operator)
    assert r.status_code == 200, r.text
    assert r.json()["round"]["settled"] >= 1 and r.json()["last_error"] is None
    assert not r.json()["outbox"].get("pending")
    settled = service.api.get(
        f"/api/v1/conversions/{conversion['id']}", headers=service.partner("bank")
    ).json()
    assert settled["state"] == "settled" and settled["tx_hash"].startswith("0x")
    assert settled["batch_id"] is not None and settled["block_number"] > 0

    agreement_id = service.seeded.agreements["bank"]
    statement = service.api.get(
        f"/api/v1/ledger/agreements/{agreement_id}/statement", headers=service.partner("bank")
    )
    assert statement.status_code == 200, statement.text
    body = statement.json()
    rows = [c for c in conversion_rows(service) if c.agreement_id == agreement_id and c.state == "settled"]
    assert body["totals"]["provisional"] == sum(sum(int(a) for a in c.amounts) for c in rows)
    assert conversion["id"] in {c["id"] for c in body["conversions"]["items"]}
    terms = terms_from_json(
        service.api.get(f"/api/v1/ledger/agreements/{agreement_id}", headers=service.partner("bank")).json()[
            "terms"
        ]
    )
    assert [int(a) for a in split_commission(terms, 1_000_000)[1]] == settled["amounts"]

    reconcile = service.api.get(
        f"/api/v1/ledger/agreements/{agreement_id}/reconcile", headers=service.partner("bank")
    )
    assert reconcile.status_code == 200, reconcile.text
    report = reconcile.json()
    assert report["ok"] is True and report["terms_hash_matches"] is True
    assert report["conversions"]["missing_on_chain"] == [] and report["conversions"]["mismatched"] == []


def test_statement_filters_by_state_and_pages(service: Service) -> None:
    user = consenting_user(service)
    rec = recommend(service, user)
    ids = [convert(service, rec, f"page-{i}", value=1_000 + i).json()["id"] for i in range(3)]
    url = f"/api/v1/ledger/agreements/{service.seeded.agreements['bank']}/statement"
    pending = service.api.get(url, params={"state": "pending"}, headers=service.partner("bank")).json()
    assert set(ids) <= {c["id"] for c in pending["conversions"]["items"]}
    assert {c["state"] for c in pending["conversions"]["items"]} == {"pending"}
    assert pending["outbox"]["pending"] == pending["conversions"]["total"]
    page = service.api.get(
        url, params={"state": "pending", "limit": 1, "offset": 1}, headers=service.partner("bank")
    ).json()
    assert page["conversions"]["total"] == pending["conversions"]["total"]
    assert [c["id"] for c in page["conversions"]["items"]] == [pending["conversions"]["items"][1]["id"]]
    future = service.api.get(url, params={"since": 2**40}, headers=service.partner("bank")).json()
    assert future["conversions"] == {"total": 0, "items": []}
    service.api.post("/api/v1/operator/settle", headers=service.operator)  # leave the outbox empty


def test_reversal_before_settlement_cancels_in_the_outbox(service: Service) -> None:
    user = consenting_user(service)
    conversion = convert(service, recommend(service, user), "cancel-1").json()
    r = service.api.post(f"/api/v1/conversions/{conversion['id']}/reversal", headers=service.partner("bank"))
    assert r.status_code == 202, r.text
    assert r.json()["state"] == "rejected" and "reversed by the partner" in r.json()["error"]
    service.api.post("/api/v1/operator/settle", headers=service.operator)
    after = service.api.get(f"/api/v1/conversions/{conversion['id']}", headers=service.partner("bank")).json()
    assert after["state"] == "rejected" and after["tx_hash"] is None


def test_reversal_after_settlement_is_reversed_on_chain(service: Service) -> None:
    user = consenting_user(service)
    conversion = convert(service, recommend(service, user), "reverse-1", value=400_000).json()
    service.api.post("/api/v1/operator/settle", headers=service.operator)
    r = service.api.post(f"/api/v1/conversions/{conversion['id']}/reversal", headers=service.partner("bank"))
    assert r.status_code == 202, r.text
    assert r.json()["state"] == "reversal_pending"
    again = service.api.post(
        f"/api/v1/conversions/{conversion['id']}/reversal", headers=service.partner("bank")
    )
    assert again.status_code == 202 and again.json()["state"] == "reversal_pending"
    assert (
        service.api.post("/api/v1/operator/settle", headers=service.operator).json()["round"]["reversed"] == 1
    )
    after = service.api.get(f"/api/v1/conversions/{conversion['id']}", headers=service.partner("bank")).json()
    assert after["state"] == "reversed" and after["reversal_tx_hash"].startswith("0x")
    agreement_id = service.seeded.agreements["bank"]
    report = service.api.get(
        f"/api/v1/ledger/agreements/{agreement_id}/reconcile", headers=service.partner("bank")
    ).json()
    assert report["ok"] is True


def test_agreements_lists_only_the_partners_own(service: Service) -> None:
    for partner_id in ("bank", "insurer"):
        r = service.api.get("/api/v1/ledger/agreements", headers=service.partner(partner_id))
        assert r.status_code == 200, r.text
        agreements = r.json()["agreements"]
        assert [a["id"] for a in agreements] == [service.seeded.agreements[partner_id]]
        assert agreements[0]["partner_id"] == partner_id and agreements[0]["status"] == "active"


def test_agreement_shows_terms_hash_and_parties(service: Service) -> None:
    agreement_id = service.seeded.agreements["insurer"]
    r = service.api.get(f"/api/v1/ledger/agreements/{agreement_id}", headers=service.partner("insurer"))
    assert r.status_code == 200, r.text
    body = r.json()
    on_chain = service.container.deployment.agreements.agreement_of(agreement_id)
    assert body["terms_hash"] == "0x" + bytes(on_chain.terms_hash).hex()
    assert [p["share"] for p in body["parties"]] == [600_000, 400_000, 0]
    assert body["parties"][0]["share_percent"] == 60.0
    assert body["terms"]["partner"] == partner_address(service, "insurer")


# ------------------------------------------------------------------------------------------------- operator
def test_operator_creates_a_partner_with_a_working_key_and_a_notice_on_chain(service: Service) -> None:
    created = new_partner(service, "credit-union")
    assert created["api_key"].startswith("pk_") and created["notice_version"] == 1
    consent = service.container.deployment.consent
    assert consent.partner_notice_version(created["address"]) == 1
    assert "credit-union" in {p["id"] for p in service.api.get("/api/v1/partners").json()}
    r = service.api.get("/api/v1/ledger/agreements", headers={"X-API-Key": created["api_key"]})
    assert r.status_code == 200 and r.json() == {"agreements": []}


def test_a_new_notice_version_voids_earlier_consents(service: Service) -> None:
    created = new_partner(service, "broker")
    user = service.new_user()
    service.grant(user, "broker", ("profiling",))
    assert held_on_chain(service, user, "broker") == {"profiling"}
    r = service.api.put(
        "/api/v1/partners/broker/notice", json={"notice_text": "A new notice."}, headers=service.operator
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"partner_id": "broker", "notice_version": 2}
    assert service.container.deployment.consent.partner_notice_version(created["address"]) == 2
    assert held_on_chain(service, user, "broker") == set()
    listed = {p["id"]: p for p in service.api.get("/api/v1/partners").json()}["broker"]
    assert listed["notice_text"] == "A new notice." and listed["notice_version"] == 2
    service.grant(user, "broker", ("profiling",))
    assert held_on_chain(service, user, "broker") == {"profiling"}


def test_rotating_a_partner_key_retires_the_old_one(service: Service) -> None:
    created = new_partner(service, "fund-house")
    old = {"X-API-Key": created["api_key"]}
    r = service.api.post("/api/v1/partners/fund-house/api-key", headers=service.operator)
    assert r.status_code == 201, r.text
    new = {"X-API-Key": r.json()["api_key"]}
    assert r.json()["partner_id"] == "fund-house" and new != old
    assert service.api.get("/api/v1/ledger/agreements", headers=new).status_code == 200
    assert_error(service.api.get("/api/v1/ledger/agreements", headers=old), 401, "unauthenticated", "unknown")


def test_operator_creates_finds_and_signs_in_users(service: Service) -> None:
    r = service.api.post(
        "/api/v1/users", json={"platform_user_id": "learner-ops-1"}, headers=service.operator
    )
    assert r.status_code == 201, r.text
    user = r.json()
    assert user["id"].startswith("u_") and user["pseudonym"].startswith("0x") and len(user["pseudonym"]) == 66
    assert user["wallet"] is None and user["token"].startswith("usr_")
    found = service.api.get(
        "/api/v1/users", params={"platform_user_id": "learner-ops-1"}, headers=service.operator
    )
    assert found.status_code == 200 and found.json() == {
        "id": user["id"],
        "pseudonym": user["pseudonym"],
        "wallet": None,
    }
    first = {"Authorization": f"Bearer {user['token']}"}
    assert service.api.get("/api/v1/me", headers=first).status_code == 200
    signed_in = service.api.post(f"/api/v1/users/{user['id']}/token", headers=service.operator)
    assert signed_in.status_code == 201, signed_in.text
    assert signed_in.json()["user_id"] == user["id"]
    second = {"Authorization": f"Bearer {signed_in.json()['token']}"}
    assert service.api.get("/api/v1/me", headers=second).json()["id"] == user["id"]
    assert_error(service.api.get("/api/v1/me", headers=first), 401, "unauthenticated")


def test_a_wallet_users_subject_is_the_wallet(service: Service) -> None:
    account = Account.create()
    r = service.api.post(
        "/api/v1/users",
        json={"platform_user_id": "learner-wallet-1", "wallet": account.address},
        headers=service.operator,
    )
    assert r.status_code == 201, r.text
    assert r.json()["wallet"] == account.address
    assert r.json()["pseudonym"] == "0x" + "00" * 12 + account.address[2:].lower()


def test_operator_stores_a_profile(service: Service) -> None:
    user = service.new_user()  # new_user stores one; store another and read it back
    courses = service.split.train_dataset.items["item_id"].tolist()[3:5]  # type: ignore[attr-defined]
    product = service.api.get("/api/v1/products", params={"partner_id": "bank"}).json()["products"][0]["id"]
    with Session(service.container.engine) as s:
        profile = s.get(Profile, user["id"])
        assert profile is not None
        data = dict(profile.data)
    r = service.api.put(
        f"/api/v1/users/{user['id']}/profile",
        json={"profile": data, "course_ids": courses, "product_ids": [product]},
        headers=service.operator,
    )
    assert r.status_code == 200, r.text
    assert (
        r.json()["user_id"] == user["id"]
        and r.json()["features"] == service.container.model.ranker.feature_dim
    )
    with Session(service.container.engine) as s:
        stored = s.get(Profile, user["id"])
        assert stored is not None
        assert len(stored.course_indices) == 2 and len(stored.product_indices) == 1
        assert stored.data["user_id"] == user["pseudonym"]


def test_operator_settle_and_index_run_a_round(service: Service) -> None:
    settle = service.api.post("/api/v1/operator/settle", headers=service.operator)
    assert settle.status_code == 200, settle.text
    assert set(settle.json()["round"]) == {"recovered", "settled", "rejected", "reversed", "finalized"}
    assert settle.json()["outbox"] == counts(service.container.engine)
    index = service.api.post("/api/v1/operator/index", headers=service.operator)
    assert index.status_code == 200, index.text
    assert index.json()["added"] >= 0
    assert index.json()["next_block"] == service.container.chain.head().number + 1


# ---------------------------------------------------------------------------------------- who may call what
PARTNER_ENDPOINTS = [
    ("POST", "/api/v1/recommendations", {"subject": "0x" + "ab" * 32}),
    ("POST", "/api/v1/conversions", {"recommendation_id": "rec_x", "order_id": "o", "value": 1}),
    ("GET", "/api/v1/conversions/1", None),
    ("POST", "/api/v1/conversions/1/reversal", None),
    ("GET", "/api/v1/ledger/agreements", None),
    ("GET", "/api/v1/ledger/agreements/1", None),
    ("GET", "/api/v1/ledger/agreements/1/statement", None),
    ("GET", "/api/v1/ledger/agreements/1/reconcile", None),
    ("POST", "/api/v1/exports", {"subject": "0x" + "ab" * 32}),
    ("POST", "/api/v1/audiences", {"campaign": "c", "subjects": ["0x" + "ab" * 32]}),
    ("GET", "/api/v1/segments", None),
    ("PUT", "/api/v1/webhooks", {"url": "https://hooks.example.com/k"}),
    ("GET", "/api/v1/webhooks", None),
    ("DELETE", "/api/v1/webhooks", None),
    ("POST", "/api/v1/webhooks/secret", None),
    ("POST", "/api/v1/webhooks/ping", None),
    ("GET", "/api/v1/webhooks/deliveries", None),
    ("POST", "/api/v1/webhooks/deliveries/1/replay", None),
    ("GET", "/api/v1/funnel", None),
]
OPERATOR_ENDPOINTS = [
    (
        "POST",
        "/api/v1/partners",
        {"id": "nobody", "name": "N", "address": "0x" + "11" * 20, "notice_text": "n"},
    ),
    ("PUT", "/api/v1/partners/bank/notice", {"notice_text": "changed"}),
    ("POST", "/api/v1/partners/bank/api-key", None),
    ("POST", "/api/v1/users", {"platform_user_id": "learner-unauthorised"}),
    ("GET", "/api/v1/users?platform_user_id=learner-unauthorised", None),
    ("POST", "/api/v1/users/u_x/token", None),
    ("PUT", "/api/v1/users/u_x/profile", {"profile": {}}),
    ("POST", "/api/v1/operator/settle", None),
    ("POST", "/api/v1/operator/index", None),
    ("GET", "/api/v1/operator/funnel", None),
    ("GET", "/api/v1/operator/webhooks/deliveries", None),
    ("POST", "/api/v1/operator/webhooks/deliveries/1/replay", None),
    ("POST", "/api/v1/operator/webhooks/replay", None),
    ("GET", "/api/v1/models", None),
    ("POST", "/api/v1/models", {"epochs": 1}),
    ("GET", "/api/v1/models/versions/v1", None),
    ("POST", "/api/v1/models/versions/v1/promote", {}),
    ("POST", "/api/v1/models/rollback", None),
]
USER_ENDPOINTS = [
    ("GET", "/api/v1/me", None),
    ("GET", "/api/v1/me/consents", None),
    ("PUT", "/api/v1/me/consents/bank/profiling", None),
    ("DELETE", "/api/v1/me/consents/bank/profiling", None),
    ("POST", "/api/v1/me/consents/bank/profiling/typed-data", {"action": "grant"}),
    ("GET", "/api/v1/me/consents/history", None),
    ("GET", "/api/v1/me/receipts/rcpt_x", None),
    ("GET", "/api/v1/me/export", None),
    ("DELETE", "/api/v1/me", {"confirm": "erase"}),
]


def _call(service: Service, method: str, url: str, body: Any, headers: dict[str, str]) -> Any:
    return service.api.request(method, url, json=body, headers=headers)


@pytest.mark.parametrize(("method", "url", "body"), PARTNER_ENDPOINTS, ids=lambda x: str(x)[:40])
def test_partner_endpoints_refuse_callers_without_a_partner_key(
    service: Service, method: str, url: str, body: Any
) -> None:
    assert_error(_call(service, method, url, body, {}), 401, "unauthenticated", "missing X-API-Key")
    assert_error(
        _call(service, method, url, body, {"X-API-Key": "pk_not-a-real-key"}),
        401,
        "unauthenticated",
        "unknown",
    )
    assert_error(_call(service, method, url, body, service.operator), 403, "forbidden", "for partners")
    user = service.new_user()
    assert_error(_call(service, method, url, body, user["headers"]), 401, "unauthenticated")


@pytest.mark.parametrize(("method", "url", "body"), OPERATOR_ENDPOINTS, ids=lambda x: str(x)[:40])
def test_operator_endpoints_refuse_everyone_but_the_operator(
    service: Service, method: str, url: str, body: Any
) -> None:
    before = service.api.get("/api/v1/partners").json()
    assert_error(_call(service, method, url, body, {}), 401, "unauthenticated", "missing X-API-Key")
    assert_error(
        _call(service, method, url, body, {"X-API-Key": "op_not-the-operator-key"}),
        401,
        "unauthenticated",
        "unknown",
    )
    for partner_id in ("bank", "insurer"):
        assert_error(
            _call(service, method, url, body, service.partner(partner_id)),
            403,
            "forbidden",
            "for the operator",
        )
    user = service.new_user()
    assert_error(_call(service, method, url, body, user["headers"]), 401, "unauthenticated")
    # nothing changed: no partner, notice or key, no user
    assert service.api.get("/api/v1/partners").json() == before
    assert service.api.get("/api/v1/ledger/agreements", headers=service.partner("bank")).status_code == 200
    assert_error(
        service.api.get(
            "/api/v1/users", params={"platform_user_id": "learner-unauthorised"}, headers=service.operator
        ),
        404,
        "not_found",
    )


@pytest.mark.parametrize(("method", "url", "body"), USER_ENDPOINTS, ids=lambda x: str(x)[:40])
def test_user_endpoints_need_a_valid_bearer_token(service: Service, method: str, url: str, body: Any) -> None:
    events = consent_events(service)
    missing = "missing 'Authorization: Bearer <token>' header"
    assert_error(_call(service, method, url, body, {}), 401, "unauthenticated", missing)
    assert_error(
        _call(service, method, url, body, {"Authorization": "Basic dXNlcjpwdw=="}), 401, "unauthenticated"
    )
    assert_error(
        _call(service, method, url, body, {"Authorization": "Bearer usr_forged"}),
        401,
        "unauthenticated",
        "unknown or expired token",
    )
    assert_error(_call(service, method, url, body, service.partner("bank")), 401, "unauthenticated", missing)
    assert_error(_call(service, method, url, body, service.operator), 401, "unauthenticated", missing)
    assert consent_events(service) == events


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/health"),
        ("GET", "/metrics"),
        ("GET", "/api/v1/ping"),
        ("GET", "/api/v1/purposes"),
        ("GET", "/api/v1/partners"),
        ("GET", "/api/v1/products"),
    ],
)
def test_public_endpoints_need_no_credentials(service: Service, method: str, url: str) -> None:
    assert service.api.request(method, url).status_code == 200


def test_relay_needs_no_credentials_because_the_signature_is_the_authority(service: Service) -> None:
    user = wallet_user(service)
    r = service.api.post("/api/v1/consents/relay", json=relay_request(service, user, "marketing_contact"))
    assert r.status_code == 201, r.text
    assert held_on_chain(service, user) == {"marketing_contact"}


def test_a_user_token_only_reaches_its_own_data(service: Service) -> None:
    alice, bob = consenting_user(service), service.new_user()
    receipt_id = history(service, alice)[0]["receipt_id"]
    assert_error(
        service.api.get(f"/api/v1/me/receipts/{receipt_id}", headers=bob["headers"]),
        404,
        "not_found",
        receipt_id,
    )
    assert history(service, bob) == []
    export = service.api.get("/api/v1/me/export", headers=bob["headers"]).json()
    assert export["user"]["id"] == bob["id"] and export["consent_history"] == []
    assert alice["pseudonym"] not in str(export)
