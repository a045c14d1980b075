"""Bad input on every endpoint: each gets a 4xx with its reason in the error envelope (never a 500), and a
refused request writes nothing: no row, no transaction, no consent event, the outbox as it was.

Covered: malformed JSON, wrong types, unknown partners, users and purposes, out-of-range values, oversized
bodies, forged / expired / replayed / tampered EIP-712 signatures, one partner reaching for another's data,
an order reported twice, and erasure without its confirmation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import func
from sqlmodel import Session, select

from backend.chain import Purpose
from backend.models import (
    Agreement,
    ConsentEvent,
    Conversion,
    Partner,
    Profile,
    Recommendation,
    User,
)
from backend.services.outbox import counts
from recommender.profiles import BEHAVIOUR_FEATURES

from .conftest import Service
from .test_endpoints import (
    assert_error,
    consenting_user,
    convert,
    held_on_chain,
    history,
    partner_address,
    recommend,
    relay_request,
    subject_bytes,
    wallet_user,
)

DAY = 86_400
LIMIT = 64 * 1024  # the default max_body_bytes
#: A profile the schema accepts (what the service does with it depends on the user and the model).
SOME_PROFILE = {"user_id": "x", "topics": [0.0], "behaviour": dict.fromkeys(BEHAVIOUR_FEATURES, 0.0)}


# -------------------------------------------------------------------------------------------------- helpers
def snapshot(service: Service, user: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything a refused request must leave as it was: the chain head, every table's row count, the
    outbox, the partners (notices, versions) and, for ``user``, their profile, token and consents."""
    with Session(service.container.engine) as s:
        rows = {
            t.__name__: s.exec(select(func.count()).select_from(t)).one()
            for t in (ConsentEvent, Conversion, Recommendation, User, Partner, Profile, Agreement)
        }
        out: dict[str, Any] = {
            "block": service.container.chain.head().number,
            "rows": rows,
            "outbox": counts(service.container.engine),
            "partners": service.api.get("/api/v1/partners").json(),
        }
        if user is not None:
            profile = s.get(Profile, user["id"])
            stored = s.get(User, user["id"])
            assert stored is not None
            out["profile"] = None if profile is None else (profile.data, profile.updated_at)
            out["token_hash"] = stored.token_hash
            out["erased_at"] = stored.erased_at
            out["held"] = {pid: held_on_chain(service, user, pid) for pid in ("bank", "insurer")}
    return out


def headers_for(service: Service, who: str, user: dict[str, Any]) -> dict[str, str]:
    return {
        "partner": service.partner("bank"),
        "operator": service.operator,
        "user": user["headers"],
        "public": {},
    }[who]


def json_headers(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "content-type": "application/json"}


def nonce(service: Service, user: dict[str, Any], purpose: Purpose, partner_id: str = "bank") -> int:
    return service.container.deployment.consent.nonce_of(
        subject_bytes(user), partner_address(service, partner_id), purpose
    )


def relay(service: Service, body: dict[str, Any]) -> Any:
    return service.api.post("/api/v1/consents/relay", json=body)


#: Every endpoint that reads a JSON body, and who calls it. ``{user}`` is the test user's id.
BODY_ENDPOINTS = [
    ("POST", "/api/v1/recommendations", "partner"),
    ("POST", "/api/v1/conversions", "partner"),
    ("POST", "/api/v1/consents/relay", "public"),
    ("PUT", "/api/v1/me/consents/bank/profiling", "user"),
    ("POST", "/api/v1/me/consents/bank/profiling/typed-data", "user"),
    ("DELETE", "/api/v1/me", "user"),
    ("POST", "/api/v1/partners", "operator"),
    ("PUT", "/api/v1/partners/bank/notice", "operator"),
    ("POST", "/api/v1/users", "operator"),
    ("PUT", "/api/v1/users/{user}/profile", "operator"),
]
BODY_IDS = [f"{m} {u}" for m, u, _ in BODY_ENDPOINTS]


@pytest.fixture
def granted_user(service: Service) -> dict[str, Any]:
    """A learner holding profiling + product_recommendation for the bank (so a refused erase or revoke
    would show on chain)."""
    return consenting_user(service)


# ------------------------------------------------------------------------------------------- malformed JSON
@pytest.mark.parametrize(("method", "url", "who"), BODY_ENDPOINTS, ids=BODY_IDS)
@pytest.mark.parametrize(
    "raw",
    [b'{"subject": "0x', b"{'single': 'quotes'}", b'{"a": 1,}', b"{]"],
    ids=["truncated", "single-quotes", "trailing-comma", "garbage"],
)
def test_malformed_json_is_400_on_every_body_endpoint(
    service: Service, granted_user: dict[str, Any], method: str, url: str, who: str, raw: bytes
) -> None:
    before = snapshot(service, granted_user)
    r = service.api.request(
        method,
        url.format(user=granted_user["id"]),
        content=raw,
        headers=json_headers(headers_for(service, who, granted_user)),
    )
    error = assert_error(r, 400, "malformed_json", "malformed JSON body")
    assert error["details"]["fields"][0]["type"] == "json_invalid"
    assert snapshot(service, granted_user) == before


@pytest.mark.parametrize(("method", "url", "who"), BODY_ENDPOINTS, ids=BODY_IDS)
def test_a_body_that_is_not_utf8_is_400_malformed_json(
    service: Service, granted_user: dict[str, Any], method: str, url: str, who: str
) -> None:
    before = snapshot(service, granted_user)
    r = service.api.request(
        method,
        url.format(user=granted_user["id"]),
        content=b'{"x": "\xff\xfe"}',
        headers=json_headers(headers_for(service, who, granted_user)),
    )
    assert_error(r, 400, "malformed_json", "error parsing the body")
    assert snapshot(service, granted_user) == before


@pytest.mark.parametrize(
    ("method", "url", "who"),
    [e for e in BODY_ENDPOINTS if e[0] != "PUT" or "profiling" not in e[1]],  # the grant's body is optional
    ids=[i for i in BODY_IDS if i != "PUT /api/v1/me/consents/bank/profiling"],
)
def test_a_missing_or_non_object_body_is_422(
    service: Service, granted_user: dict[str, Any], method: str, url: str, who: str
) -> None:
    before = snapshot(service, granted_user)
    headers = headers_for(service, who, granted_user)
    target = url.format(user=granted_user["id"])
    missing = service.api.request(method, target, headers=headers)
    assert_error(missing, 422, "invalid_request", "body")
    for body in ([1, 2], "a string", 42):
        r = service.api.request(method, target, json=body, headers=headers)
        error = assert_error(r, 422, "invalid_request")
        assert error["details"]["fields"], error
    assert snapshot(service, granted_user) == before


# ---------------------------------------------------------------------------------------------- wrong types
WRONG_TYPES = [
    ("POST", "/api/v1/recommendations", "partner", {"subject": 123}, "subject"),
    ("POST", "/api/v1/recommendations", "partner", {"subject": "{pseudonym}", "k": "many"}, "k"),
    ("POST", "/api/v1/recommendations", "partner", {"subject": "{pseudonym}", "k": 2.5}, "k"),
    ("POST", "/api/v1/recommendations", "partner", {"subject": ["{pseudonym}"]}, "subject"),
    ("POST", "/api/v1/recommendations", "partner", {"subject": "0x" + "zz" * 32}, "subject"),
    ("POST", "/api/v1/recommendations", "partner", {"subject": "{pseudonym}", "extra": 1}, "extra"),
    (
        "POST",
        "/api/v1/conversions",
        "partner",
        {"recommendation_id": 5, "order_id": "o", "value": 1},
        "recommendation_id",
    ),
    (
        "POST",
        "/api/v1/conversions",
        "partner",
        {"recommendation_id": "r", "order_id": ["o"], "value": 1},
        "order_id",
    ),
    (
        "POST",
        "/api/v1/conversions",
        "partner",
        {"recommendation_id": "r", "order_id": "o", "value": "ten"},
        "value",
    ),
    (
        "POST",
        "/api/v1/conversions",
        "partner",
        {"recommendation_id": "r", "order_id": "o", "value": 1.5},
        "value",
    ),
    (
        "POST",
        "/api/v1/conversions",
        "partner",
        {"recommendation_id": "r", "order_id": "o", "value": None},
        "value",
    ),
    ("POST", "/api/v1/conversions", "partner", {"recommendation_id": "r", "order_id": "o"}, "value"),
    (
        "POST",
        "/api/v1/conversions",
        "partner",
        {"recommendation_id": "r", "order_id": "o", "value": 1, "product_id": 7},
        "product_id",
    ),
    (
        "POST",
        "/api/v1/consents/relay",
        "public",
        {"action": "maybe", "message": {}, "signature": "0x" + "1b" * 65},
        "body",  # the action picks the message's shape: an unknown one is named in the message
    ),
    (
        "POST",
        "/api/v1/consents/relay",
        "public",
        {"action": "grant", "message": "hi", "signature": "0x" + "1b" * 65},
        "message",
    ),
    (
        "POST",
        "/api/v1/consents/relay",
        "public",
        {"action": "grant", "message": {}, "signature": 12},
        "signature",
    ),
    (
        "POST",
        "/api/v1/consents/relay",
        "public",
        {"action": "grant", "message": {}, "signature": "0x" + "1b" * 65, "receipt": [1]},
        "receipt",
    ),
    ("PUT", "/api/v1/me/consents/bank/marketing_contact", "user", {"days": "a week"}, "days"),
    ("PUT", "/api/v1/me/consents/bank/marketing_contact", "user", {"days": 1.5}, "days"),
    ("PUT", "/api/v1/me/consents/bank/marketing_contact", "user", {"lifetime": 5}, "lifetime"),
    ("POST", "/api/v1/me/consents/bank/profiling/typed-data", "user", {"action": 5}, "action"),
    ("POST", "/api/v1/me/consents/bank/profiling/typed-data", "user", {}, "action"),
    ("DELETE", "/api/v1/me", "user", {"confirm": 1}, "confirm"),
    ("DELETE", "/api/v1/me", "user", {"confirm": ["erase"]}, "confirm"),
    (
        "POST",
        "/api/v1/partners",
        "operator",
        {"id": 5, "name": "n", "address": "0x" + "11" * 20, "notice_text": "n"},
        "id",
    ),
    (
        "POST",
        "/api/v1/partners",
        "operator",
        {"id": "new-one", "name": "n", "address": 42, "notice_text": "n"},
        "address",
    ),
    (
        "POST",
        "/api/v1/partners",
        "operator",
        {"id": "new-one", "name": "n", "address": "0x" + "zz" * 20, "notice_text": "n"},
        "address",
    ),
    (
        "POST",
        "/api/v1/partners",
        "operator",
        {"id": "Not An Id", "name": "n", "address": "0x" + "11" * 20, "notice_text": "n"},
        "id",
    ),
    ("PUT", "/api/v1/partners/bank/notice", "operator", {"notice_text": ["a"]}, "notice_text"),
    ("POST", "/api/v1/users", "operator", {"platform_user_id": 5}, "platform_user_id"),
    ("POST", "/api/v1/users", "operator", {"platform_user_id": "learner-x", "wallet": "0x123"}, "wallet"),
    ("POST", "/api/v1/users", "operator", {"platform_user_id": "learner-x", "wallet": 123}, "wallet"),
    ("PUT", "/api/v1/users/{user}/profile", "operator", {"profile": [1]}, "profile"),
    ("PUT", "/api/v1/users/{user}/profile", "operator", {"profile": {}, "course_ids": "c1"}, "course_ids"),
]


def _fill(value: Any, user: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return value.replace("{pseudonym}", user["pseudonym"])
    if isinstance(value, list):
        return [_fill(v, user) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, user) for k, v in value.items()}
    return value


@pytest.mark.parametrize(
    ("method", "url", "who", "body", "field"),
    WRONG_TYPES,
    ids=[f"{m} {u.rsplit('/', 2)[-2]}/{u.rsplit('/', 1)[-1]} {f}" for m, u, _, _, f in WRONG_TYPES],
)
def test_a_wrong_type_is_422_naming_the_field(
    service: Service, granted_user: dict[str, Any], method: str, url: str, who: str, body: Any, field: str
) -> None:
    before = snapshot(service, granted_user)
    r = service.api.request(
        method,
        url.format(user=granted_user["id"]),
        json=_fill(body, granted_user),
        headers=headers_for(service, who, granted_user),
    )
    error = assert_error(r, 422, "invalid_request", field)
    assert field in {f["field"] for f in error["details"]["fields"]}, error
    assert snapshot(service, granted_user) == before


@pytest.mark.parametrize("case", ["value", "k"])
def test_a_boolean_for_a_number_is_422(service: Service, case: str) -> None:
    user = consenting_user(service)
    if case == "k":
        r = service.api.post(
            "/api/v1/recommendations",
            json={"subject": user["pseudonym"], "k": True},
            headers=service.partner(),
        )
    else:
        rec = recommend(service, user)
        r = service.api.post(
            "/api/v1/conversions",
            json={"recommendation_id": rec["recommendation_id"], "order_id": "bool-1", "value": True},
            headers=service.partner(),
        )
    assert_error(r, 422, "invalid_request", case)


def test_a_json_body_with_another_content_type_is_refused(
    service: Service, granted_user: dict[str, Any]
) -> None:
    before = snapshot(service, granted_user)
    r = service.api.post(
        "/api/v1/recommendations",
        content=f'{{"subject": "{granted_user["pseudonym"]}"}}'.encode(),
        headers={**service.partner(), "content-type": "text/plain"},
    )
    assert_error(r, 422, "invalid_request", "body")
    assert snapshot(service, granted_user) == before


def test_non_finite_numbers_are_422(service: Service, granted_user: dict[str, Any]) -> None:
    for raw in ("NaN", "Infinity", "1e400"):
        r = service.api.post(
            "/api/v1/recommendations",
            content=f'{{"subject": "{granted_user["pseudonym"]}", "k": {raw}}}'.encode(),
            headers=json_headers(service.partner()),
        )
        assert_error(r, 422, "invalid_request", "k")


# ---------------------------------------------------------------------------------------------- unknown ids
@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("PUT", "", None),
        ("DELETE", "", None),
        ("POST", "/typed-data", {"action": "grant"}),
    ],
)
def test_consent_for_an_unknown_partner_is_404(
    service: Service, granted_user: dict[str, Any], method: str, suffix: str, body: Any
) -> None:
    before = snapshot(service, granted_user)
    r = service.api.request(
        method,
        f"/api/v1/me/consents/no-such-bank/profiling{suffix}",
        json=body,
        headers=granted_user["headers"],
    )
    error = assert_error(r, 404, "not_found", "unknown partner 'no-such-bank'")
    assert error["details"] == {"partner_id": "no-such-bank"}
    assert snapshot(service, granted_user) == before


def test_typed_data_for_an_unknown_partner_is_404_for_a_wallet_user(service: Service) -> None:
    user = wallet_user(service)
    r = service.api.post(
        "/api/v1/me/consents/no-such-bank/profiling/typed-data",
        json={"action": "grant"},
        headers=user["headers"],
    )
    assert_error(r, 404, "not_found", "unknown partner 'no-such-bank'")


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("PUT", "", None),
        ("DELETE", "", None),
        ("POST", "/typed-data", {"action": "grant"}),
    ],
)
@pytest.mark.parametrize("purpose", ["advertising", "Profiling", "0", "profiling "])
def test_an_unknown_purpose_is_422_listing_the_purposes(
    service: Service, granted_user: dict[str, Any], method: str, suffix: str, body: Any, purpose: str
) -> None:
    before = snapshot(service, granted_user)
    r = service.api.request(
        method, f"/api/v1/me/consents/bank/{purpose}{suffix}", json=body, headers=granted_user["headers"]
    )
    error = assert_error(
        r, 422, "invalid_request", "path.purpose", "'profiling', 'product_recommendation'", "'data_sharing'"
    )
    assert [f["field"] for f in error["details"]["fields"]] == ["path.purpose"]
    assert snapshot(service, granted_user) == before


def test_recommendations_for_an_unknown_user_are_404_and_nothing_is_served(service: Service) -> None:
    before = snapshot(service)
    subject = "0x" + "ab" * 32
    r = service.api.post("/api/v1/recommendations", json={"subject": subject}, headers=service.partner())
    error = assert_error(r, 404, "not_found", "unknown user")
    assert error["details"] == {"subject": subject}
    assert snapshot(service) == before


def test_recommendations_without_consent_are_403_and_nothing_is_served(service: Service) -> None:
    user = service.new_user()
    service.grant(user, "bank", ("profiling",))  # profiling alone is not enough
    before = snapshot(service, user)
    r = service.api.post(
        "/api/v1/recommendations", json={"subject": user["pseudonym"]}, headers=service.partner()
    )
    error = assert_error(r, 403, "consent_required", "product_recommendation", "no profile was used")
    assert error["details"]["missing"] == ["product_recommendation"]
    assert snapshot(service, user) == before


@pytest.mark.parametrize(
    ("method", "url", "body", "message"),
    [
        (
            "PUT",
            "/api/v1/partners/no-such-bank/notice",
            {"notice_text": "x"},
            "unknown partner 'no-such-bank'",
        ),
        ("POST", "/api/v1/partners/no-such-bank/api-key", None, "unknown partner 'no-such-bank'"),
        ("POST", "/api/v1/users/u_nobody/token", None, "unknown user 'u_nobody'"),
        ("PUT", "/api/v1/users/u_nobody/profile", {"profile": SOME_PROFILE}, "unknown user 'u_nobody'"),
        ("GET", "/api/v1/users?platform_user_id=nobody-at-all", None, "no user with platform_user_id"),
    ],
)
def test_operator_calls_on_unknown_partners_and_users_are_404(
    service: Service, method: str, url: str, body: Any, message: str
) -> None:
    before = snapshot(service)
    r = service.api.request(method, url, json=body, headers=service.operator)
    assert_error(r, 404, "not_found", message)
    assert snapshot(service) == before


def test_an_erased_user_is_unknown_to_the_operator(service: Service) -> None:
    user = service.new_user()
    assert (
        service.api.request(
            "DELETE", "/api/v1/me", json={"confirm": "erase"}, headers=user["headers"]
        ).status_code
        == 200
    )
    profile = {"profile": SOME_PROFILE, "course_ids": [], "product_ids": []}
    assert_error(
        service.api.post(f"/api/v1/users/{user['id']}/token", headers=service.operator), 404, "not_found"
    )
    assert_error(
        service.api.put(f"/api/v1/users/{user['id']}/profile", json=profile, headers=service.operator),
        404,
        "not_found",
        "unknown user",
    )


def test_a_receipt_that_does_not_exist_is_404(service: Service, granted_user: dict[str, Any]) -> None:
    r = service.api.get("/api/v1/me/receipts/rcpt_000000000000000000000000", headers=granted_user["headers"])
    assert_error(r, 404, "not_found", "unknown receipt 'rcpt_000000000000000000000000'")


def test_unknown_routes_and_methods_answer_in_the_envelope(service: Service) -> None:
    assert_error(service.api.get("/api/v1/nothing-here"), 404, "not_found")
    assert_error(service.api.delete("/api/v1/partners"), 405, "method_not_allowed")


# --------------------------------------------------------------------------------------------- out of range
OUT_OF_RANGE = [
    ("POST", "/api/v1/recommendations", {"subject": "{pseudonym}", "k": 0}, "k"),
    ("POST", "/api/v1/recommendations", {"subject": "{pseudonym}", "k": 21}, "k"),
    ("POST", "/api/v1/recommendations", {"subject": "{pseudonym}", "k": -3}, "k"),
    ("POST", "/api/v1/recommendations", {"subject": "0x" + "ab" * 33}, "subject"),
    ("POST", "/api/v1/conversions", {"recommendation_id": "r", "order_id": "o", "value": 0}, "value"),
    ("POST", "/api/v1/conversions", {"recommendation_id": "r", "order_id": "o", "value": -5}, "value"),
    (
        "POST",
        "/api/v1/conversions",
        {"recommendation_id": "r", "order_id": "o", "value": 10**15 + 1},
        "value",
    ),
    ("POST", "/api/v1/conversions", {"recommendation_id": "r", "order_id": "o", "value": 2**80}, "value"),
    ("POST", "/api/v1/conversions", {"recommendation_id": "r", "order_id": "", "value": 1}, "order_id"),
    (
        "POST",
        "/api/v1/conversions",
        {"recommendation_id": "r", "order_id": "o" * 121, "value": 1},
        "order_id",
    ),
    (
        "POST",
        "/api/v1/conversions",
        {"recommendation_id": "r" * 41, "order_id": "o", "value": 1},
        "recommendation_id",
    ),
    (
        "POST",
        "/api/v1/conversions",
        {"recommendation_id": "", "order_id": "o", "value": 1},
        "recommendation_id",
    ),
    ("PUT", "/api/v1/me/consents/bank/marketing_contact", {"days": 0}, "days"),
    ("PUT", "/api/v1/me/consents/bank/marketing_contact", {"days": 391}, "days"),
    ("POST", "/api/v1/me/consents/bank/profiling/typed-data", {"action": "grant", "days": 0}, "days"),
    ("POST", "/api/v1/me/consents/bank/profiling/typed-data", {"action": "grant", "days": 391}, "days"),
    ("POST", "/api/v1/consents/relay", {"action": "grant", "message": {}, "signature": "0x12"}, "signature"),
    (
        "POST",
        "/api/v1/consents/relay",
        {"action": "grant", "message": {}, "signature": "0x" + "11" * 66},
        "signature",
    ),
    ("POST", "/api/v1/users", {"platform_user_id": ""}, "platform_user_id"),
    ("POST", "/api/v1/users", {"platform_user_id": "p" * 121}, "platform_user_id"),
    ("PUT", "/api/v1/partners/bank/notice", {"notice_text": ""}, "notice_text"),
    ("PUT", "/api/v1/partners/bank/notice", {"notice_text": "n" * 4001}, "notice_text"),
    (
        "POST",
        "/api/v1/partners",
        {"id": "x", "name": "n", "address": "0x" + "11" * 20, "notice_text": "n"},
        "id",
    ),
    (
        "POST",
        "/api/v1/partners",
        {"id": "new-one", "name": "", "address": "0x" + "11" * 20, "notice_text": "n"},
        "name",
    ),
]
WHO = {"recommendations": "partner", "conversions": "partner", "relay": "public", "users": "operator"}


def _who(url: str) -> str:
    if url.startswith("/api/v1/me"):
        return "user"
    if url.startswith("/api/v1/partners"):
        return "operator"
    return WHO[url.rsplit("/", 1)[-1]]


@pytest.mark.parametrize(
    ("method", "url", "body", "field"),
    OUT_OF_RANGE,
    ids=[f"{u.rsplit('/', 1)[-1]}-{f}-{i}" for i, (_, u, _, f) in enumerate(OUT_OF_RANGE)],
)
def test_an_out_of_range_value_is_422_naming_the_field(
    service: Service, granted_user: dict[str, Any], method: str, url: str, body: Any, field: str
) -> None:
    before = snapshot(service, granted_user)
    r = service.api.request(
        method, url, json=_fill(body, granted_user), headers=headers_for(service, _who(url), granted_user)
    )
    error = assert_error(r, 422, "invalid_request", field)
    assert field in {f["field"] for f in error["details"]["fields"]}, error
    assert snapshot(service, granted_user) == before


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("bad_id", ["0", "-1", "abc", "1.5", str(2**63), str(2**64 + 1), "9" * 40])
def test_an_out_of_range_conversion_id_is_422(service: Service, method: str, bad_id: str) -> None:
    before = snapshot(service)
    url = f"/api/v1/conversions/{bad_id}" + ("/reversal" if method == "POST" else "")
    r = service.api.request(method, url, headers=service.partner())
    error = assert_error(r, 422, "invalid_request", "conversion_id")
    assert error["details"]["fields"][0]["field"] == "path.conversion_id"
    assert snapshot(service) == before


@pytest.mark.parametrize("suffix", ["", "/statement", "/reconcile"])
@pytest.mark.parametrize("bad_id", ["0", "-7", "one", str(2**63), "9" * 40])
def test_an_out_of_range_agreement_id_is_422(service: Service, suffix: str, bad_id: str) -> None:
    r = service.api.get(f"/api/v1/ledger/agreements/{bad_id}{suffix}", headers=service.partner())
    assert_error(r, 422, "invalid_request", "agreement_id")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 1001}, "limit"),
        ({"limit": -1}, "limit"),
        ({"offset": -1}, "offset"),
        ({"since": -1}, "since"),
        ({"until": -1}, "until"),
        ({"since": "yesterday"}, "since"),
        ({"limit": "all"}, "limit"),
    ],
)
def test_statement_query_out_of_range_is_422(service: Service, params: dict[str, Any], field: str) -> None:
    url = f"/api/v1/ledger/agreements/{service.seeded.agreements['bank']}/statement"
    r = service.api.get(url, params=params, headers=service.partner())
    error = assert_error(r, 422, "invalid_request", field)
    assert error["details"]["fields"][0]["field"] == f"query.{field}"


def test_statement_with_an_unknown_state_is_422_naming_the_states(service: Service) -> None:
    url = f"/api/v1/ledger/agreements/{service.seeded.agreements['bank']}/statement"
    r = service.api.get(url, params={"state": "paid"}, headers=service.partner())
    error = assert_error(r, 422, "invalid_request", "query.state", "pending", "settled")
    assert [f["field"] for f in error["details"]["fields"]] == ["query.state"]


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/me/consents/" + "b" * 41 + "/profiling",
        "/api/v1/me/receipts/" + "r" * 41,
        "/api/v1/users/" + "u" * 41 + "/token",
    ],
)
def test_an_over_long_path_id_is_422(service: Service, granted_user: dict[str, Any], url: str) -> None:
    before = snapshot(service, granted_user)
    if url.startswith("/api/v1/me/consents"):
        r = service.api.put(url, headers=granted_user["headers"])
    elif url.startswith("/api/v1/me"):
        r = service.api.get(url, headers=granted_user["headers"])
    else:
        r = service.api.post(url, headers=service.operator)
    error = assert_error(r, 422, "invalid_request", "at most 40 characters")
    assert error["details"]["fields"][0]["field"].startswith("path.")
    assert snapshot(service, granted_user) == before


def test_find_user_without_a_platform_id_is_422(service: Service) -> None:
    assert_error(
        service.api.get("/api/v1/users", headers=service.operator), 422, "invalid_request", "platform_user_id"
    )
    assert_error(
        service.api.get("/api/v1/users", params={"platform_user_id": ""}, headers=service.operator),
        422,
        "invalid_request",
        "platform_user_id",
    )


# ----------------------------------------------------------------------------------------- oversized bodies
def _oversized() -> bytes:
    return b'{"pad": "' + b"x" * LIMIT + b'"}'


def _chunks() -> Iterator[bytes]:
    body = _oversized()
    for i in range(0, len(body), 4096):
        yield body[i : i + 4096]


@pytest.mark.parametrize(("method", "url", "who"), BODY_ENDPOINTS, ids=BODY_IDS)
@pytest.mark.parametrize("how", ["content-length", "chunked"])
def test_a_body_over_64_kib_is_413(
    service: Service, granted_user: dict[str, Any], method: str, url: str, who: str, how: str
) -> None:
    before = snapshot(service, granted_user)
    content: Any = _oversized() if how == "content-length" else _chunks()
    r = service.api.request(
        method,
        url.format(user=granted_user["id"]),
        content=content,
        headers=json_headers(headers_for(service, who, granted_user)),
    )
    assert_error(r, 413, "payload_too_large", f"over {LIMIT} bytes")
    assert snapshot(service, granted_user) == before


def test_a_body_of_exactly_64_kib_is_read(service: Service, granted_user: dict[str, Any]) -> None:
    body = b'{"pad": "' + b"x" * (LIMIT - 11) + b'"}'
    assert len(body) == LIMIT
    r = service.api.post("/api/v1/recommendations", content=body, headers=json_headers(service.partner()))
    assert_error(r, 422, "invalid_request", "pad")  # parsed and validated, not refused for its size


def test_a_valid_but_oversized_profile_is_413_and_the_profile_is_kept(
    service: Service, granted_user: dict[str, Any]
) -> None:
    before = snapshot(service, granted_user)
    body = {"profile": {"user_id": "x"}, "course_ids": ["C" * 30] * 3000}
    r = service.api.put(f"/api/v1/users/{granted_user['id']}/profile", json=body, headers=service.operator)
    assert_error(r, 413, "payload_too_large")
    assert snapshot(service, granted_user) == before


# --------------------------------------------------------------------------------------- EIP-712 signatures
def _no_wallet_change(
    service: Service, user: dict[str, Any], purpose: Purpose, events: int, used: int
) -> None:
    assert len(history(service, user)) == events
    assert nonce(service, user, purpose) == used
    assert purpose.name.lower() not in held_on_chain(service, user)


def test_a_forged_signature_is_refused_by_the_chain(service: Service) -> None:
    user = wallet_user(service)
    request = relay_request(service, user, "profiling", key=Account.create().key)
    error = assert_error(relay(service, request), 422, "chain_refused", "ConsentRegistryInvalidSignature")
    assert error["details"]["chain_error"] == "ConsentRegistryInvalidSignature"
    assert error["details"]["args"]["subject"] == user["pseudonym"]
    _no_wallet_change(service, user, Purpose.PROFILING, 0, 0)


def test_a_signature_over_a_tampered_message_is_refused(service: Service) -> None:
    user = wallet_user(service)
    request = relay_request(service, user, "profiling")
    request["message"] = {**request["message"], "expiresAt": request["message"]["expiresAt"] - DAY}
    error = assert_error(relay(service, request), 422, "chain_refused")
    assert error["details"]["chain_error"] == "ConsentRegistryInvalidSignature"
    _no_wallet_change(service, user, Purpose.PROFILING, 0, 0)


def test_a_signature_for_another_purpose_is_refused(service: Service) -> None:
    user = wallet_user(service)
    request = relay_request(service, user, "profiling")
    request["message"] = {**request["message"], "purpose": int(Purpose.DATA_SHARING)}
    error = assert_error(relay(service, request), 422, "chain_refused")
    assert error["details"]["chain_error"] == "ConsentRegistryInvalidSignature"
    _no_wallet_change(service, user, Purpose.DATA_SHARING, 0, 0)
    _no_wallet_change(service, user, Purpose.PROFILING, 0, 0)


def test_a_replayed_signature_is_refused(service: Service) -> None:
    user = wallet_user(service)
    request = relay_request(service, user, "profiling")
    assert relay(service, request).status_code == 201
    assert nonce(service, user, Purpose.PROFILING) == 1
    error = assert_error(relay(service, request), 422, "chain_refused", "ConsentRegistryInvalidNonce")
    assert error["details"]["chain_error"] == "ConsentRegistryInvalidNonce"
    assert error["details"]["args"]["expected"] == 1 and error["details"]["args"]["given"] == 0
    assert len(history(service, user)) == 1 and nonce(service, user, Purpose.PROFILING) == 1


def test_a_replayed_revocation_is_refused(service: Service) -> None:
    user = wallet_user(service)
    assert relay(service, relay_request(service, user, "profiling")).status_code == 201
    revoke = relay_request(service, user, "profiling", action="revoke")
    assert relay(service, revoke).status_code == 201
    assert relay(service, relay_request(service, user, "profiling")).status_code == 201  # granted again
    error = assert_error(relay(service, revoke), 422, "chain_refused")
    assert error["details"]["chain_error"] == "ConsentRegistryInvalidNonce"
    assert held_on_chain(service, user) == {"profiling"}  # the old revocation did not take effect
    assert len(history(service, user)) == 3


def test_a_grant_signature_relayed_as_a_revocation_is_refused(service: Service) -> None:
    user = wallet_user(service)
    assert relay(service, relay_request(service, user, "profiling")).status_code == 201
    request = relay_request(service, user, "profiling")  # a second grant, nonce 1
    request["action"] = "revoke"
    request["receipt"] = None
    # a grant's message has fields a revocation's has not: refused before anything reaches the chain
    error = assert_error(relay(service, request), 422, "invalid_request", "message.expiresAt")
    assert "message.receiptHash" in {f["field"] for f in error["details"]["fields"]}
    # with only the revocation's fields, the grant's signature does not verify as a revocation
    request["message"] = {
        k: request["message"][k] for k in ("subject", "partner", "purpose", "nonce", "deadline")
    }
    error = assert_error(relay(service, request), 422, "chain_refused")
    assert error["details"]["chain_error"] == "ConsentRegistryInvalidSignature"
    assert held_on_chain(service, user) == {"profiling"} and len(history(service, user)) == 1


def test_an_expired_signature_is_refused(make_service: Callable[..., Service]) -> None:
    svc = make_service()
    user = wallet_user(svc)
    request = relay_request(svc, user, "profiling")
    svc.container.chain.increase_time(svc.settings.signature_ttl_s + 60)
    error = assert_error(relay(svc, request), 422, "chain_refused", "ConsentRegistrySignatureExpired")
    assert error["details"]["chain_error"] == "ConsentRegistrySignatureExpired"
    assert error["details"]["args"]["deadline"] == request["message"]["deadline"]
    _no_wallet_change(svc, user, Purpose.PROFILING, 0, 0)


def test_a_registrar_users_pseudonym_cannot_be_granted_by_signature(service: Service) -> None:
    wallet = wallet_user(service)
    target = service.new_user()
    request = relay_request(service, wallet, "profiling")
    request["message"] = {**request["message"], "subject": target["pseudonym"]}
    error = assert_error(relay(service, request), 422, "chain_refused")
    assert error["details"]["chain_error"] in {
        "ConsentRegistrySubjectNotAWallet",
        "ConsentRegistryInvalidSignature",
    }
    assert held_on_chain(service, target) == set() and history(service, target) == []


def test_a_receipt_that_does_not_match_the_signed_hash_is_422(service: Service) -> None:
    user = wallet_user(service)
    request = relay_request(service, user, "profiling")
    request["receipt"] = {**request["receipt"], "jurisdiction": "EU"}
    error = assert_error(relay(service, request), 422, "invalid_request", "receipt: its hash does not match")
    assert error["details"] == {"field": "receipt"}
    _no_wallet_change(service, user, Purpose.PROFILING, 0, 0)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"signature": "0x" + "zz" * 65}, "signature"),
        ({"signature": "0x" + "11" * 64 + "05"}, "signature"),  # v must be 0, 1, 27 or 28
        ({"signature": "0x" + "11" * 64 + "1d"}, "signature"),
        ({"message": {"drop": "nonce"}}, "message.nonce"),
        ({"message": {"drop": "subject"}}, "message.subject"),
        ({"message": {"drop": "expiresAt"}}, "message.expiresAt"),
        ({"message": {"subject": "0x1234"}}, "message.subject"),
        ({"message": {"subject": "not hex"}}, "message.subject"),
        ({"message": {"receiptHash": "0x" + "11" * 33}}, "message.receiptHash"),
        ({"message": {"receiptHash": "0x1234"}}, "message.receiptHash"),
        ({"message": {"partner": "0x12"}}, "message.partner"),
        ({"message": {"partner": ["a"]}}, "message.partner"),
        ({"message": {"purpose": 9}}, "message.purpose"),
        ({"message": {"purpose": "profiling"}}, "message.purpose"),
        ({"message": {"nonce": -1}}, "message.nonce"),
        ({"message": {"nonce": 2**300}}, "message.nonce"),
        ({"message": {"deadline": "tomorrow"}}, "message.deadline"),
        ({"message": {"expiresAt": 2**64}}, "message.expiresAt"),
        ({"message": {"platformNoticeVersion": 2**30}}, "message.platformNoticeVersion"),
        ({"message": {"extra": 1}}, "message.extra"),
    ],
    ids=lambda x: str(x)[:50],
)
def test_a_malformed_relay_request_is_422_naming_the_field_before_the_chain(
    service: Service, change: dict[str, Any], field: str
) -> None:
    user = wallet_user(service)
    request = relay_request(service, user, "profiling")
    if "signature" in change:
        request["signature"] = change["signature"]
    else:
        edit = dict(change["message"])
        msg = dict(request["message"])
        if "drop" in edit:
            del msg[edit.pop("drop")]
        msg.update(edit)
        request["message"] = msg
        request["receipt"] = None  # so the message, not the receipt check, is what is judged
    before = snapshot(service, user)
    error = assert_error(relay(service, request), 422, "invalid_request", field)
    assert field in {f["field"] for f in error["details"]["fields"]}, error
    assert snapshot(service, user) == before
    _no_wallet_change(service, user, Purpose.PROFILING, 0, 0)


def test_a_relay_for_an_unknown_partner_is_404(service: Service) -> None:
    user = wallet_user(service)
    request = relay_request(service, user, "profiling")
    stranger = Account.create().address
    request["message"] = {**request["message"], "partner": stranger}
    before = snapshot(service, user)
    error = assert_error(relay(service, request), 404, "not_found", f"no partner at {stranger}")
    assert error["details"] == {"field": "message.partner"}
    assert snapshot(service, user) == before


def test_a_relay_accepts_the_partner_address_in_lower_case(service: Service) -> None:
    """An address is case-insensitive (the signature covers the 20 bytes): a wallet that lower-cases it
    must not be told the partner is unknown."""
    user = wallet_user(service)
    request = relay_request(service, user, "profiling")
    request["message"] = {**request["message"], "partner": request["message"]["partner"].lower()}
    r = relay(service, request)
    assert r.status_code == 201, r.text
    assert r.json()["partner_id"] == "bank" and held_on_chain(service, user) == {"profiling"}


def test_wallet_and_registrar_paths_do_not_mix(service: Service) -> None:
    wallet, plain = wallet_user(service), service.new_user()
    before = snapshot(service, wallet)
    assert_error(
        service.api.put("/api/v1/me/consents/bank/profiling", headers=wallet["headers"]),
        409,
        "conflict",
        "consents with their own wallet",
    )
    assert_error(
        service.api.delete("/api/v1/me/consents/bank/profiling", headers=wallet["headers"]),
        409,
        "conflict",
        "own wallet",
    )
    assert snapshot(service, wallet) == before
    assert_error(
        service.api.post(
            "/api/v1/me/consents/bank/profiling/typed-data",
            json={"action": "grant"},
            headers=plain["headers"],
        ),
        409,
        "conflict",
        "has no wallet",
    )


def test_revoking_what_was_never_granted_is_refused_by_the_chain(service: Service) -> None:
    user = service.new_user()
    before = snapshot(service, user)
    r = service.api.delete("/api/v1/me/consents/insurer/marketing_contact", headers=user["headers"])
    error = assert_error(r, 422, "chain_refused", "ConsentRegistryNotGranted")
    assert error["details"]["chain_error"] == "ConsentRegistryNotGranted"
    assert snapshot(service, user)["rows"] == before["rows"] and history(service, user) == []


# ----------------------------------------------------------------------------------- another partner's data
@pytest.fixture
def bank_conversion(service: Service) -> dict[str, Any]:
    user = consenting_user(service)
    rec = recommend(service, user)
    r = convert(service, rec, f"bank-order-{rec['recommendation_id']}", value=77_000)
    assert r.status_code == 202, r.text
    return {"user": user, "rec": rec, "conversion": r.json()}


def test_a_partner_cannot_read_another_partners_conversion(
    service: Service, bank_conversion: dict[str, Any]
) -> None:
    conversion_id = bank_conversion["conversion"]["id"]
    r = service.api.get(f"/api/v1/conversions/{conversion_id}", headers=service.partner("insurer"))
    error = assert_error(r, 404, "not_found", f"unknown conversion {conversion_id}")
    assert (
        error["details"] == {}
        and "77000" not in r.text
        and bank_conversion["rec"]["recommendation_id"] not in r.text
    )


def test_a_partner_cannot_reverse_another_partners_conversion(
    service: Service, bank_conversion: dict[str, Any]
) -> None:
    conversion_id = bank_conversion["conversion"]["id"]
    before = snapshot(service)
    r = service.api.post(f"/api/v1/conversions/{conversion_id}/reversal", headers=service.partner("insurer"))
    assert_error(r, 404, "not_found", f"unknown conversion {conversion_id}")
    assert snapshot(service) == before
    still = service.api.get(f"/api/v1/conversions/{conversion_id}", headers=service.partner("bank")).json()
    assert still == bank_conversion["conversion"]


@pytest.mark.parametrize("suffix", ["", "/statement", "/reconcile"])
def test_a_partner_cannot_read_another_partners_agreement(service: Service, suffix: str) -> None:
    bank_agreement = service.seeded.agreements["bank"]
    r = service.api.get(
        f"/api/v1/ledger/agreements/{bank_agreement}{suffix}", headers=service.partner("insurer")
    )
    assert_error(r, 404, "not_found", f"unknown agreement {bank_agreement}")
    assert "terms" not in r.json()["error"]["details"]
    # and an agreement that does not exist at all looks the same
    missing = service.api.get(f"/api/v1/ledger/agreements/999999{suffix}", headers=service.partner("insurer"))
    assert_error(missing, 404, "not_found", "unknown agreement 999999")


def test_a_conversion_with_another_partners_recommendation_is_404(
    service: Service, bank_conversion: dict[str, Any]
) -> None:
    before = snapshot(service)
    rec = bank_conversion["rec"]
    r = convert(service, rec, "insurer-steals-1", partner_id="insurer")
    error = assert_error(r, 404, "not_found", f"unknown recommendation {rec['recommendation_id']!r}")
    assert error["details"] == {"field": "recommendation_id"}
    assert snapshot(service) == before


def test_a_conversion_with_an_unknown_recommendation_is_404(service: Service) -> None:
    before = snapshot(service)
    r = convert(service, {"recommendation_id": "rec_does_not_exist"}, "unknown-rec-1")
    assert_error(r, 404, "not_found", "unknown recommendation 'rec_does_not_exist'")
    assert snapshot(service) == before


def test_another_partners_order_id_is_not_theirs(service: Service, bank_conversion: dict[str, Any]) -> None:
    user = bank_conversion["user"]
    service.grant(user, "insurer")
    insurer_rec = recommend(service, user, "insurer")
    order_id = bank_conversion["conversion"]["order_id"]
    r = convert(service, insurer_rec, order_id, value=77_000, partner_id="insurer")
    assert r.status_code == 202, r.text  # its own, new conversion: not the bank's
    assert r.json()["id"] != bank_conversion["conversion"]["id"]
    assert r.json()["agreement_id"] == service.seeded.agreements["insurer"]
    bank_view = service.api.get(
        f"/api/v1/conversions/{bank_conversion['conversion']['id']}", headers=service.partner("bank")
    )
    assert bank_view.json() == bank_conversion["conversion"]


def test_a_statement_lists_only_the_partners_own_conversions(
    service: Service, bank_conversion: dict[str, Any]
) -> None:
    url = f"/api/v1/ledger/agreements/{service.seeded.agreements['insurer']}/statement"
    body = service.api.get(url, params={"limit": 1000}, headers=service.partner("insurer")).json()
    assert bank_conversion["conversion"]["id"] not in {c["id"] for c in body["conversions"]["items"]}
    assert bank_conversion["rec"]["recommendation_id"] not in str(body)


def test_a_recommendation_for_a_user_who_consented_to_another_partner_is_403(service: Service) -> None:
    user = consenting_user(service, "bank")
    before = snapshot(service, user)
    r = service.api.post(
        "/api/v1/recommendations", json={"subject": user["pseudonym"]}, headers=service.partner("insurer")
    )
    error = assert_error(r, 403, "consent_required")
    assert error["details"]["missing"] == ["product_recommendation", "profiling"]
    assert snapshot(service, user) == before


def test_a_product_outside_the_recommendation_is_422(service: Service) -> None:
    rec = recommend(service, consenting_user(service))
    insurer_product = service.api.get("/api/v1/products", params={"partner_id": "insurer"}).json()[
        "products"
    ][0]
    before = snapshot(service)
    r = service.api.post(
        "/api/v1/conversions",
        json={
            "recommendation_id": rec["recommendation_id"],
            "order_id": "wrong-product-1",
            "value": 10,
            "product_id": insurer_product["id"],
        },
        headers=service.partner(),
    )
    error = assert_error(r, 422, "invalid_request", "was not part of recommendation")
    assert error["details"] == {"field": "product_id"}
    assert snapshot(service) == before


# ------------------------------------------------------------------------------------- the same order twice
def test_the_same_order_with_different_details_is_409_and_the_first_stands(service: Service) -> None:
    user = consenting_user(service)
    rec = recommend(service, user)
    other_rec = recommend(service, user)
    first = convert(service, rec, "dup-order-1", value=1_000)
    assert first.status_code == 202, first.text
    before = snapshot(service)
    same = convert(service, rec, "dup-order-1", value=1_000)
    assert same.status_code == 200 and same.json() == first.json()
    for changed in (
        {"value": 1_001},
        {"recommendation_id": other_rec["recommendation_id"]},
        {"product_id": rec["products"][0]["product_id"]},
    ):
        body = {
            "recommendation_id": rec["recommendation_id"],
            "order_id": "dup-order-1",
            "value": 1_000,
            **changed,
        }
        r = service.api.post("/api/v1/conversions", json=body, headers=service.partner())
        error = assert_error(
            r, 409, "conflict", "order 'dup-order-1' was already reported with different details"
        )
        assert error["details"] == {"conversion_id": first.json()["id"]}
    assert snapshot(service) == before
    stored = service.api.get(f"/api/v1/conversions/{first.json()['id']}", headers=service.partner())
    assert stored.json() == first.json()


# -------------------------------------------------------------------------------------------------- erasure
@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        (None, 422, "invalid_request", "body: Field required"),
        ({}, 422, "invalid_request", "confirm: Field required"),
        ({"confirm": "yes"}, 422, "invalid_request", "confirm: Input should be 'erase'"),
        ({"confirm": "ERASE"}, 422, "invalid_request", "confirm: Input should be 'erase'"),
        ({"confirm": ""}, 422, "invalid_request", "confirm: Input should be 'erase'"),
        ({"confirm": True}, 422, "invalid_request", "confirm"),
        ({"confirm": "erase", "also": "this"}, 422, "invalid_request", "also"),
    ],
)
def test_erasure_without_confirmation_erases_nothing(
    service: Service, granted_user: dict[str, Any], body: Any, status: int, code: str, message: str
) -> None:
    before = snapshot(service, granted_user)
    r = service.api.request("DELETE", "/api/v1/me", json=body, headers=granted_user["headers"])
    assert_error(r, status, code, message)
    assert snapshot(service, granted_user) == before
    assert before["held"]["bank"] == {"profiling", "product_recommendation"}
    assert service.api.get("/api/v1/me", headers=granted_user["headers"]).status_code == 200


# --------------------------------------------------------------------------------------- operator conflicts
def test_a_partner_id_or_address_already_taken_is_409(service: Service) -> None:
    bank_address = partner_address(service, "bank")
    before = snapshot(service)
    body = {"name": "Dup", "kind": "bank", "notice_text": "n"}
    taken_id = service.api.post(
        "/api/v1/partners",
        json={**body, "id": "bank", "address": Account.create().address},
        headers=service.operator,
    )
    error = assert_error(taken_id, 409, "conflict", "partner 'bank' exists")
    assert error["details"] == {"field": "id"}
    for address in (bank_address, bank_address.lower()):
        taken = service.api.post(
            "/api/v1/partners",
            json={**body, "id": "dup-address", "address": address},
            headers=service.operator,
        )
        error = assert_error(taken, 409, "conflict", f"address {bank_address} already belongs to a partner")
        assert error["details"] == {"field": "address"}
    assert snapshot(service) == before


def test_a_platform_user_id_or_wallet_already_taken_is_409(service: Service) -> None:
    wallet = wallet_user(service)
    platform_id = service.api.get("/api/v1/me/export", headers=wallet["headers"]).json()["user"][
        "platform_user_id"
    ]
    before = snapshot(service)
    r = service.api.post("/api/v1/users", json={"platform_user_id": platform_id}, headers=service.operator)
    assert_error(r, 409, "conflict", f"platform_user_id {platform_id!r} already has a user")
    for address in (wallet["account"].address, wallet["account"].address.lower()):
        r = service.api.post(
            "/api/v1/users",
            json={"platform_user_id": "another-" + address[-6:], "wallet": address},
            headers=service.operator,
        )
        error = assert_error(r, 409, "conflict", "wallet already belongs to a user")
        assert error["details"] == {"field": "wallet"}
    assert snapshot(service) == before


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"profile": {}}, "profile.user_id: Field required"),
        ({"profile": {"drop": "topics"}}, "profile.topics: Field required"),
        ({"profile": {"topics": "lots"}}, "profile.topics: Input should be a valid list"),
        ({"profile": {"topics": [1.0, "NaN"]}}, "profile.topics.1: Input should be a finite number"),
        ({"profile": {"behaviour": None}}, "profile.behaviour: Input should be a valid dictionary"),
        ({"profile": {"drop_behaviour": "spend"}}, "profile.behaviour.spend: Field required"),
        ({"profile": {"version": 99}}, "profile.version: Input should be 1"),
        ({"profile": {"topics": [0.5]}}, "profile: 18 features, the model takes"),
        ({"product_ids": ["NO-SUCH-PRODUCT"]}, "product_ids: unknown products ['NO-SUCH-PRODUCT']"),
        ({"course_ids": ["NO-SUCH-COURSE"]}, "course_ids: unknown courses ['NO-SUCH-COURSE']"),
    ],
    ids=lambda x: str(x)[:40],
)
def test_a_bad_profile_is_422_and_the_stored_one_is_kept(
    service: Service, granted_user: dict[str, Any], edit: dict[str, Any], message: str
) -> None:
    with Session(service.container.engine) as s:
        stored = s.get(Profile, granted_user["id"])
        assert stored is not None
        good = {"profile": dict(stored.data), "course_ids": [], "product_ids": []}
    body = dict(good)
    if "profile" in edit:
        profile = {} if edit["profile"] == {} else dict(good["profile"])
        patch = dict(edit["profile"])
        if "drop" in patch:
            del profile[patch.pop("drop")]
        if "drop_behaviour" in patch:
            behaviour = dict(profile["behaviour"])
            del behaviour[patch.pop("drop_behaviour")]
            profile["behaviour"] = behaviour
        profile.update(patch)
        body["profile"] = profile
    else:
        body.update(edit)
    before = snapshot(service, granted_user)
    r = service.api.put(f"/api/v1/users/{granted_user['id']}/profile", json=body, headers=service.operator)
    error = assert_error(r, 422, "invalid_request", message)
    named = error["details"].get("field") or error["details"]["fields"][0]["field"]
    assert named.split(".")[0] in {"profile", "product_ids", "course_ids"}
    assert snapshot(service, granted_user) == before


# -------------------------------------------------------------------------------------- time-bound refusals
def test_conversions_and_reversals_outside_their_windows_are_refused(
    make_service: Callable[..., Service],
) -> None:
    svc = make_service()
    user = consenting_user(svc)
    rec = recommend(svc, user)
    settled = convert(svc, rec, "window-1", value=50_000).json()
    svc.api.post("/api/v1/operator/settle", headers=svc.operator)
    assert (
        svc.api.get(f"/api/v1/conversions/{settled['id']}", headers=svc.partner()).json()["state"]
        == "settled"
    )

    svc.container.chain.increase_time(31 * DAY)  # past the 30-day attribution and 14-day validation windows
    before = snapshot(svc)
    late = convert(svc, rec, "window-2", value=50_000)
    error = assert_error(late, 422, "invalid_request", "outside the agreement's attribution window")
    assert error["details"] == {"field": "recommendation_id"}
    reversal = svc.api.post(f"/api/v1/conversions/{settled['id']}/reversal", headers=svc.partner())
    assert_error(reversal, 409, "conflict", "past its validation window")
    assert snapshot(svc) == before

    assert svc.api.post("/api/v1/operator/settle", headers=svc.operator).json()["round"]["finalized"] == 1
    final = svc.api.post(f"/api/v1/conversions/{settled['id']}/reversal", headers=svc.partner())
    assert_error(final, 409, "conflict", "is final")
    assert (
        svc.api.get(f"/api/v1/conversions/{settled['id']}", headers=svc.partner()).json()["state"] == "final"
    )


def test_a_conversion_for_a_partner_without_an_agreement_is_409(service: Service) -> None:
    body = {
        "id": "no-contract",
        "name": "No Contract Ltd",
        "address": Account.create().address,
        "notice_text": "No agreement yet.",
    }
    created = service.api.post("/api/v1/partners", json=body, headers=service.operator).json()
    key = {"X-API-Key": created["api_key"]}
    user = consenting_user(service, "no-contract")
    rec = service.api.post("/api/v1/recommendations", json={"subject": user["pseudonym"]}, headers=key)
    assert rec.status_code == 200, rec.text
    before = snapshot(service)
    r = service.api.post(
        "/api/v1/conversions",
        json={"recommendation_id": rec.json()["recommendation_id"], "order_id": "nc-1", "value": 5},
        headers=key,
    )
    assert_error(r, 409, "conflict", "has no agreement in force")
    assert snapshot(service) == before


# ------------------------------------------------------------------------------------------ refused callers
def test_a_refused_caller_writes_nothing(service: Service, bank_conversion: dict[str, Any]) -> None:
    before = snapshot(service)
    rec = bank_conversion["rec"]
    body = {"recommendation_id": rec["recommendation_id"], "order_id": "refused-1", "value": 5}
    for headers, status in (({}, 401), ({"X-API-Key": "pk_wrong"}, 401), (service.operator, 403)):
        r = service.api.post("/api/v1/conversions", json=body, headers=headers)
        assert r.status_code == status, r.text
        r = service.api.post(
            f"/api/v1/conversions/{bank_conversion['conversion']['id']}/reversal", headers=headers
        )
        assert r.status_code == status, r.text
    for headers, status in (({}, 401), (service.partner(), 403)):
        r = service.api.post("/api/v1/users", json={"platform_user_id": "refused-user"}, headers=headers)
        assert r.status_code == status, r.text
        r = service.api.put("/api/v1/partners/bank/notice", json={"notice_text": "hijacked"}, headers=headers)
        assert r.status_code == status, r.text
    assert snapshot(service) == before
