"""Every endpoint: who may call it, and what bad input gets back. Each refusal is a 4xx with an error code
and a reason in ``{"error": {"code", "message", "details"}}``, never a 500, and leaves nothing behind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from .conftest import Service

USER_ROUTES = [
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
PARTNER_ROUTES = [
    ("POST", "/api/v1/recommendations", {"subject": "0x" + "ab" * 32}),
    ("POST", "/api/v1/conversions", {"recommendation_id": "rec_x", "order_id": "o", "value": 1}),
    ("GET", "/api/v1/conversions/1", None),
    ("POST", "/api/v1/conversions/1/reversal", None),
    ("GET", "/api/v1/ledger/agreements", None),
    ("GET", "/api/v1/ledger/agreements/1", None),
    ("GET", "/api/v1/ledger/agreements/1/statement", None),
    ("GET", "/api/v1/ledger/agreements/1/reconcile", None),
]
OPERATOR_ROUTES = [
    ("POST", "/api/v1/partners", {"id": "x", "name": "X", "address": "0x" + "11" * 20, "notice_text": "n"}),
    ("PUT", "/api/v1/partners/bank/notice", {"notice_text": "n"}),
    ("POST", "/api/v1/partners/bank/api-key", None),
    ("POST", "/api/v1/users", {"platform_user_id": "x"}),
    ("GET", "/api/v1/users?platform_user_id=x", None),
    ("POST", "/api/v1/users/u_x/token", None),
    ("PUT", "/api/v1/users/u_x/profile", {"profile": {}}),
    ("POST", "/api/v1/agreements", {"partner_id": "bank", "parties": [], "commission_rate": 1}),
    ("GET", "/api/v1/agreements/1", None),
    ("POST", "/api/v1/operator/settle", None),
    ("POST", "/api/v1/operator/index", None),
]


def _error(r: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()["error"]
    assert body["message"]
    if code is not None:
        assert body["code"] == code, body
    return body


# ---------------------------------------------------------------------------------------------- public
def test_public_reads(service: Service) -> None:
    api = service.api
    assert api.get("/api/v1/ping").json() == {"status": "ok"}
    health = api.get("/health")
    assert health.status_code == 200 and health.json()["chain"]["status"] == "ok"
    purposes = api.get("/api/v1/purposes").json()
    assert [p["id"] for p in purposes["purposes"]] == [
        "profiling",
        "product_recommendation",
        "marketing_contact",
        "data_sharing",
    ]
    assert all(p["notice"] for p in purposes["purposes"]) and purposes["platform_notice_version"] == 1
    partners = api.get("/api/v1/partners").json()
    assert {p["id"] for p in partners} >= {"bank", "insurer"}
    assert all("api_key_hash" not in p for p in partners)
    products = api.get("/api/v1/products", params={"partner_id": "insurer"}).json()["products"]
    assert products and {p["partner_id"] for p in products} == {"insurer"}
    metrics = api.get("/metrics")
    assert metrics.status_code == 200 and "knowledger_http_requests_total" in metrics.text
    assert "knowledger_chain_up 1.0" in metrics.text


def test_unknown_route_and_method(service: Service) -> None:
    _error(service.api.get("/api/v1/nope"), 404, "not_found")
    _error(service.api.delete("/api/v1/purposes"), 405, "method_not_allowed")


# ---------------------------------------------------------------------------------------------- auth
@pytest.mark.parametrize(("method", "path", "body"), USER_ROUTES)
def test_user_routes_need_a_valid_token(service: Service, method: str, path: str, body: Any) -> None:
    _error(service.api.request(method, path, json=body), 401, "unauthenticated")
    r = service.api.request(method, path, json=body, headers={"Authorization": "Bearer usr_forged"})
    _error(r, 401, "unauthenticated")
    # a partner's or the operator's key is not a user token
    _error(service.api.request(method, path, json=body, headers=service.partner()), 401)


@pytest.mark.parametrize(("method", "path", "body"), PARTNER_ROUTES)
def test_partner_routes_need_a_partner_key(service: Service, method: str, path: str, body: Any) -> None:
    _error(service.api.request(method, path, json=body), 401, "unauthenticated")
    _error(service.api.request(method, path, json=body, headers={"X-API-Key": "pk_forged"}), 401)
    _error(service.api.request(method, path, json=body, headers=service.operator), 403, "forbidden")


@pytest.mark.parametrize(("method", "path", "body"), OPERATOR_ROUTES)
def test_operator_routes_need_the_operator_key(service: Service, method: str, path: str, body: Any) -> None:
    _error(service.api.request(method, path, json=body), 401, "unauthenticated")
    _error(service.api.request(method, path, json=body, headers={"X-API-Key": "op_forged"}), 401)
    _error(service.api.request(method, path, json=body, headers=service.partner()), 403, "forbidden")


# ------------------------------------------------------------------------------------- malformed input
@pytest.mark.parametrize(
    ("method", "path", "who"),
    [
        ("POST", "/api/v1/recommendations", "partner"),
        ("POST", "/api/v1/conversions", "partner"),
        ("POST", "/api/v1/users", "operator"),
        ("POST", "/api/v1/partners", "operator"),
        ("POST", "/api/v1/consents/relay", None),
        ("POST", "/api/v1/agreements", "operator"),
    ],
)
def test_malformed_json_is_a_400(service: Service, method: str, path: str, who: str | None) -> None:
    headers = {"content-type": "application/json"}
    if who == "partner":
        headers |= service.partner()
    elif who == "operator":
        headers |= service.operator
    body = _error(service.api.request(method, path, content=b'{"subject": "0x', headers=headers), 400)
    assert body["code"] == "malformed_json" and body["details"]["fields"][0]["field"] == "body"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"subject": 12}, "subject"),
        ({"subject": "0x1234"}, "subject"),
        ({"subject": "0x" + "ab" * 32, "k": 0}, "k"),
        ({"subject": "0x" + "ab" * 32, "k": "five"}, "k"),
        ({"subject": "0x" + "ab" * 32, "extra": True}, "extra"),
        ({}, "subject"),
    ],
)
def test_bad_recommendation_requests_name_the_field(
    service: Service, body: dict[str, Any], field: str
) -> None:
    err = _error(service.api.post("/api/v1/recommendations", json=body, headers=service.partner()), 422)
    assert err["code"] == "invalid_request" and field in err["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"recommendation_id": "r", "order_id": "o", "value": -1}, "value"),
        ({"recommendation_id": "r", "order_id": "o", "value": 0}, "value"),
        ({"recommendation_id": "r", "order_id": "o", "value": "lots"}, "value"),
        ({"recommendation_id": "r", "order_id": "o", "value": 10**16}, "value"),
        ({"recommendation_id": "r", "order_id": "", "value": 5}, "order_id"),
        ({"recommendation_id": "r", "value": 5}, "order_id"),
        ({"recommendation_id": ["r"], "order_id": "o", "value": 5}, "recommendation_id"),
    ],
)
def test_bad_conversions_name_the_field(service: Service, body: dict[str, Any], field: str) -> None:
    err = _error(service.api.post("/api/v1/conversions", json=body, headers=service.partner()), 422)
    assert field in err["message"]


def test_oversized_bodies_are_refused(service: Service) -> None:
    big = {"subject": "0x" + "ab" * 32, "pad": "x" * 70_000}
    err = _error(service.api.post("/api/v1/recommendations", json=big, headers=service.partner()), 413)
    assert err["code"] == "payload_too_large"

    def chunks() -> Any:  # no Content-Length: counted while streaming
        for _ in range(80):
            yield b"x" * 1024

    r = service.api.post(
        "/api/v1/conversions",
        content=chunks(),
        headers=service.partner() | {"content-type": "application/json"},
    )
    _error(r, 413, "payload_too_large")


def test_unknown_purpose_partner_and_user(service: Service) -> None:
    user = service.new_user()
    err = _error(service.api.put("/api/v1/me/consents/bank/telepathy", headers=user["headers"]), 400)
    assert "telepathy" in err["message"] and "profiling" in err["message"]
    _error(service.api.put("/api/v1/me/consents/nobank/profiling", headers=user["headers"]), 404, "not_found")
    unknown = {"subject": "0x" + "cd" * 32}
    err = _error(service.api.post("/api/v1/recommendations", json=unknown, headers=service.partner()), 404)
    assert "unknown user" in err["message"]
    history = service.api.get("/api/v1/me/consents/history", headers=user["headers"]).json()["history"]
    assert history == []  # nothing was written by the refused calls
    _error(service.api.post("/api/v1/users/u_nobody/token", headers=service.operator), 404)
    _error(
        service.api.get("/api/v1/users", params={"platform_user_id": "nobody"}, headers=service.operator), 404
    )


def test_revoking_what_was_never_granted_is_refused_by_the_chain(service: Service) -> None:
    user = service.new_user()
    err = _error(
        service.api.delete("/api/v1/me/consents/bank/marketing_contact", headers=user["headers"]), 422
    )
    assert err["code"] == "chain_refused" and err["details"]["chain_error"] == "ConsentRegistryNotGranted"
    assert service.api.get("/api/v1/me/consents/history", headers=user["headers"]).json()["history"] == []


def test_erasure_needs_confirmation(service: Service) -> None:
    user = service.new_user()
    _error(service.api.request("DELETE", "/api/v1/me", json={"confirm": "yes"}, headers=user["headers"]), 400)
    _error(service.api.request("DELETE", "/api/v1/me", json={}, headers=user["headers"]), 422)
    assert service.api.get("/api/v1/me", headers=user["headers"]).status_code == 200  # still there


# -------------------------------------------------------------------------------------- user endpoints
def test_consent_state_history_receipts_and_export(service: Service) -> None:
    user = service.new_user()
    grants = service.grant(user, "insurer", ("profiling",))
    api, h = service.api, user["headers"]
    assert api.get("/api/v1/me", headers=h).json()["pseudonym"] == user["pseudonym"]
    state = api.get("/api/v1/me/consents", headers=h).json()["consents"]
    granted = [(c["partner_id"], c["purpose"]) for c in state if c["granted"]]
    assert granted == [("insurer", "profiling")] and len(state) == 8
    receipt_id = grants[0]["receipt_id"]
    r = api.get(f"/api/v1/me/receipts/{receipt_id}", headers=h).json()
    assert r["receipt"]["services"][0]["purposes"][0]["purpose"] == "profiling"
    assert r["tx_hash"] == grants[0]["tx_hash"]
    # the receipt's hash is what the chain recorded in ConsentGranted
    from backend.services.consent import receipt_hash

    assert "0x" + receipt_hash(r["receipt"]).hex() == r["receipt_hash"]
    rt = service.runtime
    event = next(
        e for e in rt.chain.get_logs(rt.deployment.consent.address, [], 0) if e.tx_hash == r["tx_hash"]
    )
    assert "0x" + bytes(event.args["receiptHash"]).hex() == r["receipt_hash"]
    other = service.new_user()
    _error(api.get(f"/api/v1/me/receipts/{receipt_id}", headers=other["headers"]), 404)  # not theirs
    export = api.get("/api/v1/me/export", headers=h).json()
    assert export["user"]["pseudonym"] == user["pseudonym"] and len(export["consent_history"]) == 1


# ---------------------------------------------------------------------------------------------- partner data
def test_a_partner_sees_only_its_own_data(service: Service) -> None:
    user = service.new_user()
    service.grant(user, "bank")
    bank, insurer = service.partner("bank"), service.partner("insurer")
    rec = service.api.post(
        "/api/v1/recommendations", json={"subject": user["pseudonym"]}, headers=bank
    ).json()
    conv = service.api.post(
        "/api/v1/conversions",
        json={"recommendation_id": rec["recommendation_id"], "order_id": "own-1", "value": 10_000},
        headers=bank,
    ).json()
    agreement = conv["agreement_id"]
    # the insurer cannot use, read or reverse the bank's things
    r = service.api.post(
        "/api/v1/conversions",
        json={"recommendation_id": rec["recommendation_id"], "order_id": "steal-1", "value": 10_000},
        headers=insurer,
    )
    _error(r, 404, "not_found")
    _error(service.api.get(f"/api/v1/conversions/{conv['id']}", headers=insurer), 404)
    _error(service.api.post(f"/api/v1/conversions/{conv['id']}/reversal", headers=insurer), 404)
    for suffix in ("", "/statement", "/reconcile"):
        _error(service.api.get(f"/api/v1/ledger/agreements/{agreement}{suffix}", headers=insurer), 404)
    listed = service.api.get("/api/v1/ledger/agreements", headers=insurer).json()["agreements"]
    assert all(a["partner_id"] == "insurer" for a in listed)
    # and the insurer gets no recommendations for a user who consented to the bank only
    r = service.api.post("/api/v1/recommendations", json={"subject": user["pseudonym"]}, headers=insurer)
    _error(r, 403, "consent_required")


def test_the_same_order_twice_is_one_conversion(service: Service) -> None:
    user = service.new_user()
    service.grant(user)
    bank = service.partner()
    rec = service.api.post(
        "/api/v1/recommendations", json={"subject": user["pseudonym"]}, headers=bank
    ).json()
    body = {"recommendation_id": rec["recommendation_id"], "order_id": "dup-1", "value": 5_000}
    first = service.api.post("/api/v1/conversions", json=body, headers=bank)
    again = service.api.post("/api/v1/conversions", json=body, headers=bank)
    assert first.status_code == 202 and again.status_code == 200 and again.json()["id"] == first.json()["id"]
    err = _error(service.api.post("/api/v1/conversions", json=body | {"value": 6_000}, headers=bank), 409)
    assert "dup-1" in err["message"]
    bad_product = body | {"order_id": "dup-2", "product_id": "P999"}
    _error(service.api.post("/api/v1/conversions", json=bad_product, headers=bank), 422)


def test_statement_filters_and_bad_filters(service: Service) -> None:
    bank = service.partner()
    agreement = service.api.get("/api/v1/ledger/agreements", headers=bank).json()["agreements"][0]["id"]
    ok = service.api.get(
        f"/api/v1/ledger/agreements/{agreement}/statement?state=pending&limit=5", headers=bank
    )
    assert ok.status_code == 200 and all(c["state"] == "pending" for c in ok.json()["conversions"]["items"])
    err = _error(
        service.api.get(f"/api/v1/ledger/agreements/{agreement}/statement?state=lost", headers=bank), 400
    )
    assert "lost" in err["message"]
    _error(service.api.get(f"/api/v1/ledger/agreements/{agreement}/statement?limit=-1", headers=bank), 422)
    _error(service.api.get("/api/v1/ledger/agreements/abc/statement", headers=bank), 422)


# ---------------------------------------------------------------------------------------------- operator
def test_operator_creates_partners_and_users_and_refuses_duplicates(service: Service) -> None:
    api, op = service.api, service.operator
    wallet = Account.create().address
    body = {
        "id": "mutual",
        "name": "Mutual Life",
        "kind": "insurer",
        "address": wallet,
        "notice_text": "We...",
    }
    r = api.post("/api/v1/partners", json=body, headers=op)
    assert r.status_code == 201 and r.json()["api_key"].startswith("pk_") and r.json()["notice_version"] == 1
    assert service.runtime.deployment.consent.partner_notice_version(wallet) == 1
    key = r.json()["api_key"]
    assert api.get("/api/v1/ledger/agreements", headers={"X-API-Key": key}).json() == {"agreements": []}
    _error(api.post("/api/v1/partners", json=body, headers=op), 409, "conflict")
    _error(api.post("/api/v1/partners", json=body | {"id": "Bad Id!"}, headers=op), 422)
    _error(api.post("/api/v1/partners", json=body | {"id": "m2", "address": "0x12"}, headers=op), 422)
    rotated = api.post("/api/v1/partners/mutual/api-key", headers=op).json()["api_key"]
    _error(api.get("/api/v1/ledger/agreements", headers={"X-API-Key": key}), 401)  # the old key is dead
    assert api.get("/api/v1/ledger/agreements", headers={"X-API-Key": rotated}).status_code == 200

    r = api.post("/api/v1/users", json={"platform_user_id": "dup-user"}, headers=op)
    assert r.status_code == 201 and r.json()["token"].startswith("usr_")
    _error(api.post("/api/v1/users", json={"platform_user_id": "dup-user"}, headers=op), 409)
    _error(api.post("/api/v1/users", json={"platform_user_id": ""}, headers=op), 422)
    err = _error(
        api.put(f"/api/v1/users/{r.json()['id']}/profile", json={"profile": {"x": 1}}, headers=op), 400
    )
    assert "profile" in err["message"]


# ---------------------------------------------------------------------------------------------- wallets
def _wallet_user(service: Service) -> tuple[Any, dict[str, Any]]:
    acct = Account.create()
    user = service.new_user(wallet=acct.address)
    return acct, user


def _signed(service: Service, user: dict[str, Any], key: Any, action: str, purpose: str) -> dict[str, Any]:
    r = service.api.post(
        f"/api/v1/me/consents/bank/{purpose}/typed-data", json={"action": action}, headers=user["headers"]
    )
    assert r.status_code == 200, r.text
    td = r.json()
    signed = Account.sign_message(encode_typed_data(full_message=td["typed_data"]), key)
    return {
        "action": action,
        "message": td["typed_data"]["message"],
        "signature": "0x" + signed.signature.hex(),
        "receipt": td["receipt"],
    }


def test_a_wallet_user_consents_by_signature(service: Service) -> None:
    acct, user = _wallet_user(service)
    assert user["pseudonym"] == "0x" + "00" * 12 + acct.address[2:].lower()
    err = _error(service.api.put("/api/v1/me/consents/bank/profiling", headers=user["headers"]), 409)
    assert "wallet" in err["message"]
    for purpose in ("profiling", "product_recommendation"):
        r = service.api.post(
            "/api/v1/consents/relay", json=_signed(service, user, acct.key, "grant", purpose)
        )
        assert r.status_code == 201, r.text
        assert r.json()["path"].startswith("wallet")
    bank = service.partner()
    ok = service.api.post("/api/v1/recommendations", json={"subject": user["pseudonym"]}, headers=bank)
    assert ok.status_code == 200
    r = service.api.post(
        "/api/v1/consents/relay", json=_signed(service, user, acct.key, "revoke", "profiling")
    )
    assert r.status_code == 201
    _error(
        service.api.post("/api/v1/recommendations", json={"subject": user["pseudonym"]}, headers=bank), 403
    )


def test_forged_replayed_and_tampered_signatures_are_refused(service: Service) -> None:
    acct, user = _wallet_user(service)
    forged = _signed(service, user, Account.create().key, "grant", "profiling")
    err = _error(service.api.post("/api/v1/consents/relay", json=forged), 422, "chain_refused")
    assert err["details"]["chain_error"] == "ConsentRegistryInvalidSignature"

    good = _signed(service, user, acct.key, "grant", "profiling")
    assert service.api.post("/api/v1/consents/relay", json=good).status_code == 201
    err = _error(service.api.post("/api/v1/consents/relay", json=good), 422, "chain_refused")
    assert err["details"]["chain_error"] == "ConsentRegistryInvalidNonce"

    tampered = _signed(service, user, acct.key, "grant", "product_recommendation")
    tampered["receipt"] = dict(tampered["receipt"], jurisdiction="XX")
    err = _error(service.api.post("/api/v1/consents/relay", json=tampered), 400)
    assert "receipt" in err["message"]
    bad_sig = dict(good, signature="0x" + "zz" * 65)
    _error(service.api.post("/api/v1/consents/relay", json=bad_sig), 400)
    short = dict(good, signature="0x" + "ab" * 10)
    _error(service.api.post("/api/v1/consents/relay", json=short), 422)
    no_partner = dict(good, message=dict(good["message"], partner="0x" + "22" * 20))
    _error(service.api.post("/api/v1/consents/relay", json=no_partner), 404)
    history = service.api.get("/api/v1/me/consents/history", headers=user["headers"]).json()["history"]
    assert len(history) == 1  # only the one good grant


def test_an_expired_signature_is_refused(make_service: Callable[..., Service]) -> None:
    svc = make_service(signature_ttl_s=60)
    acct, user = _wallet_user(svc)
    late = _signed(svc, user, acct.key, "grant", "profiling")
    svc.runtime.chain.increase_time(120)
    svc.runtime.chain.mine()
    err = _error(svc.api.post("/api/v1/consents/relay", json=late), 422, "chain_refused")
    assert err["details"]["chain_error"] == "ConsentRegistrySignatureExpired"
