"""Webhooks against a real HTTP receiver the test starts: every change of a conversion's state is pushed,
signed with the partner's secret and a timestamp, at least once from the durable outbox; a receiver that
fails or hangs is retried with backoff, and one that recovers gets the same notification; what keeps
failing goes dead, is shown to the operator and is replayed on request.

Signatures are checked with the recipe of docs/webhooks.md, written out here with hmac and hashlib (not
with the service's own code). The deliverer is driven round by round (``run_once``), as the settler is; a
round only sends what is due, so the loops below wait on the receiver, never on a clock."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import importlib.util
import json
import random
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import Session

from backend.disclosures import WebhookDelivery, WebhookEndpoint
from backend.services.webhook_delivery import MAX_BACKOFF_S, WebhookDeliverer, backoff_s
from backend.services.webhooks import private_address, resolves_privately, verify_signature

from ._receiver import Receiver
from .conftest import Demo, Service

DAY = 86_400
FAST = {
    "webhook_allow_http": True,
    "webhook_allow_private": True,
    "webhook_retry_base_s": 0.05,
    "webhook_max_attempts": 4,
    "webhook_timeout_s": 0.5,
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
def svc(make_service: Callable[..., Service]) -> Service:
    return make_service(**FAST)


def _register(svc: Service, url: str, partner: str = "bank") -> str:
    r = svc.api.put("/api/v1/webhooks", json={"url": url}, headers=svc.partner(partner))
    assert r.status_code == 201, r.text
    secret = r.json()["secret"]
    assert secret.startswith("whsec_")
    return str(secret)


def _pump(svc: Service, done: Callable[[], bool], rounds: int = 300) -> None:
    """Deliverer rounds until ``done()`` (a bounded number; between rounds a short pause lets a retry's
    backoff pass)."""
    for _ in range(rounds):
        svc.container.deliverer.run_once()
        if done():
            return
        time.sleep(0.02)
    raise AssertionError("the deliveries did not arrive")


def _recipe_verifies(secret: str, received: Any, now: float) -> bool:
    """docs/webhooks.md, step by step: split the header, recompute HMAC-SHA256(secret, t + "." + body),
    compare in constant time, and refuse a timestamp more than five minutes away."""
    fields = [part.split("=", 1) for part in received.headers["knowledger-signature"].split(",")]
    (t,) = [int(value) for key, value in fields if key == "t"]
    expected = hmac.new(secret.encode(), f"{t}.".encode() + received.body, hashlib.sha256).hexdigest()
    signed = any(hmac.compare_digest(expected, value) for key, value in fields if key == "v1")
    return signed and abs(now - t) <= 300


def _conversion(svc: Service, rec_id: str, order: str, value: int = 100_000) -> dict[str, Any]:
    r = svc.api.post(
        "/api/v1/conversions",
        json={"recommendation_id": rec_id, "order_id": order, "value": value},
        headers=svc.partner(),
    )
    assert r.status_code == 202, r.text
    return dict(r.json())


def _settle(svc: Service) -> None:
    svc.container.settler.run_once()
    svc.container.indexer.run_once()


def _consenting_recommendation(svc: Service) -> tuple[dict[str, Any], str]:
    user = svc.new_user()
    svc.grant(user)
    r = svc.api.post("/api/v1/recommendations", json={"subject": user["pseudonym"]}, headers=svc.partner())
    assert r.status_code == 200, r.text
    return user, str(r.json()["recommendation_id"])


# ---------------------------------------------------------------------------------------------- the story
def test_every_change_of_a_conversion_is_pushed_signed_once_with_its_facts(
    svc: Service, receiver: Receiver
) -> None:
    secret = _register(svc, receiver.url)
    shown = svc.api.get("/api/v1/webhooks", headers=svc.partner()).json()
    assert shown["url"] == receiver.url and shown["secret"] is None  # the secret was shown once
    changed = svc.api.put("/api/v1/webhooks", json={"url": receiver.url + "?v=2"}, headers=svc.partner())
    assert changed.status_code == 200 and changed.json()["secret"] is None  # same secret, new URL

    user, rec = _consenting_recommendation(svc)
    kept = _conversion(svc, rec, "A")  # settles, then becomes final
    cancelled = _conversion(svc, rec, "B")  # the partner cancels it before it reaches the chain
    undone = _conversion(svc, rec, "C")  # settles, then is reversed on chain
    r = svc.api.post(f"/api/v1/conversions/{cancelled['id']}/reversal", headers=svc.partner())
    assert r.status_code == 202 and r.json()["state"] == "rejected"
    _settle(svc)
    r = svc.api.post(f"/api/v1/conversions/{undone['id']}/reversal", headers=svc.partner())
    assert r.status_code == 202 and r.json()["state"] == "reversal_pending"
    _settle(svc)
    svc.container.chain.increase_time(15 * DAY)  # past the 14-day validation window
    _settle(svc)
    r = svc.api.delete("/api/v1/me/consents/bank/product_recommendation", headers=user["headers"])
    assert r.status_code == 200
    refused = _conversion(svc, rec, "D")  # the chain refuses it: no consent any more
    _settle(svc)

    expected = {
        kept["id"]: ["accepted", "settled", "final"],
        cancelled["id"]: ["accepted", "rejected"],
        undone["id"]: ["accepted", "settled", "reversed"],
        refused["id"]: ["accepted", "rejected"],
    }
    total = sum(len(v) for v in expected.values())
    _pump(svc, lambda: len(receiver.accepted()) >= total)
    svc.container.deliverer.run_once()  # nothing more is due: nothing more arrives
    received = receiver.accepted()
    assert len(received) == total

    by_conversion: dict[int, list[dict[str, Any]]] = {}
    for r_ in received:
        event = r_.json
        assert r_.headers["knowledger-event-id"] == event["id"]
        assert r_.headers["knowledger-event"] == event["type"]
        assert r_.headers["content-type"] == "application/json"
        assert r_.headers["user-agent"].startswith("KnowLedger-Webhooks/")
        assert _recipe_verifies(secret, r_, time.time())
        assert verify_signature(secret, r_.body, r_.headers["knowledger-signature"])
        assert not verify_signature(secret, r_.body + b" ", r_.headers["knowledger-signature"])
        assert not _recipe_verifies(secret, r_, time.time() + 3600)  # replayed an hour later: refused
        assert event["partner_id"] == "bank"
        by_conversion.setdefault(event["data"]["conversion"]["id"], []).append(event)
    assert len({e["id"] for events in by_conversion.values() for e in events}) == total
    for cid, kinds in expected.items():
        events = sorted(by_conversion[cid], key=lambda e: kinds.index(e["type"].removeprefix("conversion.")))
        assert [e["type"] for e in events] == [f"conversion.{k}" for k in kinds]
        assert events[0]["data"]["previous_state"] is None

    # the facts each notification carries are the conversion's own at that change
    now = {cid: svc.api.get(f"/api/v1/conversions/{cid}", headers=svc.partner()).json() for cid in expected}
    settled = next(e for e in by_conversion[kept["id"]] if e["type"] == "conversion.settled")["data"]
    assert settled["conversion"]["state"] == "settled"
    assert settled["conversion"]["tx_hash"] == now[kept["id"]]["tx_hash"]
    assert settled["conversion"]["block_number"] == now[kept["id"]]["block_number"]
    receipt = svc.container.chain.w3.eth.get_transaction_receipt(settled["conversion"]["tx_hash"])
    assert receipt["blockNumber"] == settled["conversion"]["block_number"]
    reversed_ = next(e for e in by_conversion[undone["id"]] if e["type"] == "conversion.reversed")["data"]
    assert reversed_["conversion"]["reversal_tx_hash"] == now[undone["id"]]["reversal_tx_hash"]
    rejected = next(e for e in by_conversion[refused["id"]] if e["type"] == "conversion.rejected")["data"]
    assert rejected["conversion"]["error"].startswith("SettlementLedgerNoConsent")
    assert rejected["conversion"]["error"] == now[refused["id"]]["error"]
    cancelled_event = next(e for e in by_conversion[cancelled["id"]] if e["type"] == "conversion.rejected")[
        "data"
    ]["conversion"]
    assert cancelled_event["error"] == "reversed by the partner before settlement"

    # the partner's delivery log says the same
    log = svc.api.get("/api/v1/webhooks/deliveries", headers=svc.partner()).json()
    assert log["total"] == total and {d["state"] for d in log["items"]} == {"delivered"}
    assert all(d["attempts"] == 1 and d["last_status"] == 200 for d in log["items"])


def test_a_failing_receiver_is_retried_with_backoff_and_gets_the_same_event_when_it_recovers(
    svc: Service, receiver: Receiver
) -> None:
    secret = _register(svc, receiver.url)
    receiver.mode = "fail"
    _, rec = _consenting_recommendation(svc)
    conversion = _conversion(svc, rec, "retry-1")
    _pump(svc, lambda: len(receiver.received) >= 2)
    failing = svc.api.get("/api/v1/webhooks/deliveries", headers=svc.partner()).json()["items"][0]
    assert failing["state"] == "pending" and failing["attempts"] == 2
    assert failing["last_status"] == 500 and "500" in failing["last_error"]
    assert [r.headers["knowledger-delivery-attempt"] for r in receiver.received] == ["1", "2"]
    assert failing["next_attempt_at"] > failing["created_at"]  # backed off, not due at once

    receiver.mode = "ok"
    _pump(svc, lambda: len(receiver.accepted()) == 1)
    delivered = receiver.accepted()[0]
    assert {r.json["id"] for r in receiver.received} == {delivered.json["id"]}  # the same event throughout
    assert delivered.json["data"]["conversion"]["id"] == conversion["id"]
    assert _recipe_verifies(secret, delivered, time.time())
    row = svc.api.get("/api/v1/webhooks/deliveries", headers=svc.partner()).json()["items"][0]
    assert (row["state"], row["attempts"], row["last_status"], row["last_error"]) == (
        "delivered",
        3,
        200,
        None,
    )


def test_what_keeps_failing_goes_dead_is_shown_to_the_operator_and_replayed(
    svc: Service, receiver: Receiver
) -> None:
    _register(svc, receiver.url)
    receiver.mode = "slow"  # answers after the deliverer stopped waiting (0.5 s)
    receiver.delay_s = 1.0
    _, rec = _consenting_recommendation(svc)
    _conversion(svc, rec, "dead-1")

    def dead() -> list[dict[str, Any]]:
        r = svc.api.get("/api/v1/operator/webhooks/deliveries?state=dead", headers=svc.operator)
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    _pump(svc, lambda: bool(dead()))
    [row] = dead()
    assert row["attempts"] == FAST["webhook_max_attempts"] and row["partner_id"] == "bank"
    assert row["last_status"] is None and "no answer within 0.5 s" in row["last_error"]
    assert row["next_attempt_at"] is None
    assert len(receiver.received) == FAST["webhook_max_attempts"]
    assert svc.api.get("/api/v1/operator/webhooks/deliveries", headers=svc.partner()).status_code == 403
    metrics = svc.api.get("/metrics").text
    assert 'knowledger_webhook_queue{partner="bank",state="dead"} 1.0' in metrics
    assert 'knowledger_webhook_deliveries_total{outcome="dead",partner="bank"} 1.0' in metrics

    # the operator replays it once the receiver is back: delivered, the same event
    receiver.mode = "ok"
    replayed = svc.api.post(f"/api/v1/operator/webhooks/deliveries/{row['id']}/replay", headers=svc.operator)
    assert replayed.status_code == 202 and replayed.json()["state"] == "pending"
    assert replayed.json()["attempts"] == 0
    _pump(svc, lambda: len(receiver.accepted()) == 1)
    assert receiver.accepted()[0].json["id"] == row["event_id"]
    assert dead() == []

    # everything dead of a partner, at once
    receiver.mode = "fail"
    _conversion(svc, rec, "dead-2")
    _pump(svc, lambda: bool(dead()))
    receiver.mode = "ok"
    bulk = svc.api.post("/api/v1/operator/webhooks/replay?partner_id=bank", headers=svc.operator)
    assert bulk.status_code == 202 and bulk.json() == {"replayed": 1}
    _pump(svc, lambda: len(receiver.accepted()) == 2)
    assert dead() == []


def test_a_delivery_claimed_by_a_process_that_died_is_sent_when_its_lease_ends(
    svc: Service, receiver: Receiver
) -> None:
    _register(svc, receiver.url)
    _, rec = _consenting_recommendation(svc)
    _conversion(svc, rec, "lease-1")
    first = svc.container.deliverer
    claimed = first._claim()  # claimed, then the process "dies" before sending
    assert len(claimed) == 1
    first.run_once()  # its lease holds: nobody sends it meanwhile
    assert receiver.received == []
    later = WebhookDeliverer(
        svc.container.engine,
        svc.container.metrics,
        timeout_s=0.5,
        retry_base_s=0.05,
        max_attempts=4,
        allow_private=True,
        clock=lambda: time.time() + 60,  # past the lease (2 × timeout + 5 s)
    )
    try:
        assert later.run_once()["delivered"] == 1
    finally:
        later.close()
    assert len(receiver.accepted()) == 1


def _two_deliverers_send_each_event_once(svc: Service, receiver: Receiver) -> None:
    _register(svc, receiver.url)
    _, rec = _consenting_recommendation(svc)
    for i in range(12):
        _conversion(svc, rec, f"race-{i}")
    others = [
        WebhookDeliverer(
            svc.container.engine,
            svc.container.metrics,
            timeout_s=2,
            retry_base_s=1,
            max_attempts=4,
            allow_private=True,
        )
        for _ in range(2)
    ]
    try:
        threads = [threading.Thread(target=d.run_once) for d in others]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        _pump(svc, lambda: len(receiver.accepted()) >= 12)
    finally:
        for d in others:
            d.close()
    ids = [r.json["id"] for r in receiver.accepted()]
    assert len(ids) == 12 and len(set(ids)) == 12


def test_two_deliverers_never_send_the_same_event_twice(svc: Service, receiver: Receiver) -> None:
    _two_deliverers_send_each_event_once(svc, receiver)


def test_webhooks_on_postgresql(
    make_service: Callable[..., Service], pg_url: str, receiver: Receiver
) -> None:
    """The outbox and the claims on PostgreSQL: two deliverers, each event once; then a settlement."""
    svc = make_service(database_url=pg_url, **FAST)
    _two_deliverers_send_each_event_once(svc, receiver)
    _settle(svc)
    _pump(svc, lambda: sum(1 for e in receiver.events() if e["type"] == "conversion.settled") == 12)
    settled = [e for e in receiver.events() if e["type"] == "conversion.settled"]
    assert all(e["data"]["conversion"]["tx_hash"] for e in settled)


def test_the_backoff_doubles_with_jitter_in_its_upper_half_up_to_its_cap() -> None:
    rng = random.Random(7)
    for attempt in range(1, 40):
        full = min(10 * 2 ** (attempt - 1), MAX_BACKOFF_S)
        waits = [backoff_s(attempt, 10, rng) for _ in range(50)]
        assert all(full / 2 <= w <= full for w in waits)
        assert len(set(waits)) > 1  # jittered
    assert backoff_s(100, 10, rng) <= MAX_BACKOFF_S


# ---------------------------------------------------------------------------------------------- the endpoint
@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://hooks.example.com/k", "must use https"),
        ("https://user:pw@hooks.example.com/k", "no credentials"),
        ("https://hooks.example.com/k#frag", "fragment"),
        ("https://hooks.example.com:99999/k", "not a URL"),
        ("https:///k", "scheme://host"),
    ],
)
def test_an_endpoint_url_that_cannot_be_used_is_refused_with_the_reason(
    service: Service, url: str, problem: str
) -> None:
    r = service.api.put("/api/v1/webhooks", json={"url": url}, headers=service.partner())
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert problem in error["message"] and error["details"]["field"] == "url"


def test_a_partner_manages_its_endpoint_and_secret(svc: Service, receiver: Receiver) -> None:
    bank = svc.partner()
    assert svc.api.get("/api/v1/webhooks", headers=bank).status_code == 404
    assert svc.api.post("/api/v1/webhooks/ping", headers=bank).status_code == 404
    old = _register(svc, receiver.url)
    rotated = svc.api.post("/api/v1/webhooks/secret", params={"overlap_s": 0}, headers=bank)
    assert rotated.status_code == 201
    new = rotated.json()["secret"]
    assert new != old and new.startswith("whsec_")
    assert rotated.json()["previous_secret_valid_until"] is None  # the old secret retired at once

    ping = svc.api.post("/api/v1/webhooks/ping", headers=bank)
    assert ping.status_code == 202 and ping.json()["event"] == "ping"
    _pump(svc, lambda: len(receiver.accepted()) == 1)
    got = receiver.accepted()[0]
    assert got.json["type"] == "ping" and got.json["id"] == ping.json()["event_id"]
    assert _recipe_verifies(new, got, time.time()) and not _recipe_verifies(old, got, time.time())

    # another partner sees none of this
    insurer = svc.partner("insurer")
    assert svc.api.get("/api/v1/webhooks/deliveries", headers=insurer).json()["total"] == 0
    other = svc.api.post(f"/api/v1/webhooks/deliveries/{ping.json()['id']}/replay", headers=insurer)
    assert other.status_code == 404

    # removed: nothing more is queued; what was queued goes dead (and can be replayed later)
    svc.api.post("/api/v1/webhooks/ping", headers=bank)
    assert svc.api.delete("/api/v1/webhooks", headers=bank).status_code == 200
    _, rec = _consenting_recommendation(svc)
    _conversion(svc, rec, "after-removal")
    svc.container.deliverer.run_once()
    log = svc.api.get("/api/v1/webhooks/deliveries", headers=bank).json()
    assert [d["state"] for d in log["items"]] == ["dead", "delivered"]
    assert log["items"][0]["last_error"] == "no webhook endpoint is registered"


def test_after_a_rotation_deliveries_carry_both_signatures_until_the_overlap_ends(
    svc: Service, receiver: Receiver
) -> None:
    """A receiver that still holds the old secret keeps verifying during the overlap (default a day), so it
    can switch at its own pace; when the overlap has passed, only the new secret signs."""
    bank = svc.partner()
    old = _register(svc, receiver.url)
    rotated = svc.api.post("/api/v1/webhooks/secret", headers=bank)
    assert rotated.status_code == 201, rotated.text
    new, until = rotated.json()["secret"], rotated.json()["previous_secret_valid_until"]
    assert until is not None
    assert svc.api.get("/api/v1/webhooks", headers=bank).json()["previous_secret_valid_until"] == until

    svc.api.post("/api/v1/webhooks/ping", headers=bank)
    _pump(svc, lambda: len(receiver.accepted()) == 1)
    first = receiver.accepted()[0]
    assert first.headers["knowledger-signature"].count("v1=") == 2
    assert _recipe_verifies(new, first, time.time()) and _recipe_verifies(old, first, time.time())
    assert verify_signature(old, first.body, first.headers["knowledger-signature"])

    # the overlap ends (moved into the past here, as a day passing would)
    with Session(svc.container.engine) as s:
        endpoint = s.get(WebhookEndpoint, "bank")
        assert endpoint is not None and endpoint.previous_secret_until is not None
        endpoint.previous_secret_until = endpoint.previous_secret_until - dt.timedelta(days=2)
        s.add(endpoint)
        s.commit()
    assert svc.api.get("/api/v1/webhooks", headers=bank).json()["previous_secret_valid_until"] is None
    svc.api.post("/api/v1/webhooks/ping", headers=bank)
    _pump(svc, lambda: len(receiver.accepted()) == 2)
    second = receiver.accepted()[1]
    assert _recipe_verifies(new, second, time.time()) and not _recipe_verifies(old, second, time.time())

    too_long = svc.api.post("/api/v1/webhooks/secret", params={"overlap_s": 8 * DAY}, headers=bank)
    assert too_long.status_code == 422 and "overlap_s" in too_long.text


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://localhost:8443/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.7/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[::ffff:10.0.0.1]/hook",
        "https://0.0.0.0/hook",
    ],
)
def test_an_endpoint_on_a_non_public_address_is_refused(service: Service, url: str) -> None:
    """Webhooks leave the platform for a partner's public endpoint: a URL pointing into the platform's own
    network (loopback, private ranges, cloud metadata) is refused unless the operator allows it."""
    r = service.api.put("/api/v1/webhooks", json={"url": url}, headers=service.partner())
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert "non-public address" in error["message"] and error["details"]["field"] == "url"


def test_a_delivery_to_a_non_public_address_is_refused_when_sent(
    make_service: Callable[..., Service],
) -> None:
    """The address is checked again when a delivery is sent (a name is resolved then, and an endpoint may
    have been registered while private addresses were allowed): nothing reaches the address; the delivery
    goes dead with the reason, for the operator to see."""
    svc = make_service(**{**FAST, "webhook_allow_private": False})
    with Receiver() as receiver:
        bank = svc.partner()
        assert svc.api.put("/api/v1/webhooks", json={"url": receiver.url}, headers=bank).status_code == 422
        with Session(svc.container.engine) as s:  # registered back when the operator allowed it
            s.add(WebhookEndpoint(partner_id="bank", url=receiver.url, secret="whsec_" + "0" * 32))
            s.commit()
        assert svc.api.post("/api/v1/webhooks/ping", headers=bank).status_code == 202
        svc.container.deliverer.run_once()
        log = svc.api.get("/api/v1/webhooks/deliveries", headers=bank).json()
        assert [d["state"] for d in log["items"]] == ["dead"]
        assert "non-public address 127.0.0.1" in log["items"][0]["last_error"]
        assert receiver.accepted() == []


def test_a_name_is_judged_by_every_address_it_resolves_to() -> None:
    assert resolves_privately("localhost", 443) == "127.0.0.1"
    assert resolves_privately("203.0.113.9", 443) == "203.0.113.9"  # documentation range: not global
    assert resolves_privately("8.8.8.8", 443) is None
    assert private_address("LOCALHOST.") is not None and private_address("example.com") is None


def test_a_notification_exists_exactly_when_its_change_was_committed(
    svc: Service, receiver: Receiver
) -> None:
    """A change rolled back leaves no notification; a committed one always has its notification."""
    from backend.models import Conversion, ConversionState
    from backend.services.outbox import transition

    _register(svc, receiver.url)
    _, rec = _consenting_recommendation(svc)
    conversion = _conversion(svc, rec, "atomic-1")
    engine = svc.container.engine

    def notifications() -> tuple[int, int]:
        with engine.connect() as conn:
            events = conn.execute(
                text("SELECT count(*) FROM conversion_event WHERE conversion_id = :c"),
                {"c": conversion["id"]},
            ).scalar_one()
            deliveries = conn.execute(
                text("SELECT count(*) FROM webhook_delivery WHERE conversion_id = :c"),
                {"c": conversion["id"]},
            ).scalar_one()
        return int(events), int(deliveries)

    assert notifications() == (1, 1)  # accepted, with the row itself
    with Session(engine) as s:
        row = s.get(Conversion, conversion["id"])
        assert row is not None
        transition(s, row, ConversionState.REJECTED, error="a move that is never committed")
        s.rollback()
    assert notifications() == (1, 1)
    with Session(engine) as s:
        row = s.get(Conversion, conversion["id"])
        assert row is not None
        transition(s, row, ConversionState.REJECTED, error="committed")
        s.commit()
    assert notifications() == (2, 2)
    with Session(engine) as s:
        kinds = [d.event for d in s.query(WebhookDelivery).filter_by(conversion_id=conversion["id"])]
    assert sorted(kinds) == ["conversion.accepted", "conversion.rejected"]


# ---------------------------------------------------------------------------------------------- the docs
ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "webhooks.md"


def _recipe(heading: str, language: str) -> str:
    text_ = DOC.read_text(encoding="utf-8")
    section = text_.split(f"### {heading}\n", 1)[1]
    match = re.search(rf"```{language}\n(.*?)```", section, re.S)
    assert match is not None, f"no {language} block under '### {heading}' in {DOC}"
    return match.group(1)


def test_the_documented_python_and_node_recipes_verify_a_real_delivery(
    svc: Service, receiver: Receiver, tmp_path: Path
) -> None:
    secret = _register(svc, receiver.url)
    assert svc.api.post("/api/v1/webhooks/ping", headers=svc.partner()).status_code == 202
    _pump(svc, lambda: len(receiver.accepted()) == 1)
    got = receiver.accepted()[0]
    header = got.headers["knowledger-signature"]
    t = int(header.split(",")[0].removeprefix("t="))
    stale = f"t={t - 3600}," + header.split(",", 1)[1]  # the same signature, an hour old
    cases = [
        (secret, got.body, header, True),
        (secret, got.body.replace(b"ping", b"pong"), header, False),  # tampered body
        ("whsec_wrong", got.body, header, False),
        (secret, got.body, stale, False),
    ]

    namespace: dict[str, Any] = {}
    exec(_recipe("Python", "python"), namespace)
    assert [namespace["verify"](s, b, h) for s, b, h, _ in cases] == [ok for *_, ok in cases]

    script = tmp_path / "verify.js"
    script.write_text(
        _recipe("Node.js", "js")
        + "\nconst cases = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));\n"
        + "console.log(JSON.stringify(cases.map(([s, b, h]) => verify(s, Buffer.from(b, 'base64'), h))));\n",
        encoding="utf-8",
    )
    stdin = json.dumps([[s, base64.b64encode(b).decode(), h] for s, b, h, _ in cases])
    done = subprocess.run(["node", str(script)], input=stdin, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [ok for *_, ok in cases]


# ------------------------------------------------------------------------------------------ a process
def test_a_service_process_delivers_every_notification_of_a_steady_stream(demo: Demo, tmp_path: Path) -> None:
    """``knowledger serve`` in its own process, conversions posted at a steady rate: every accepted and every
    settled conversion is notified, none twice (the benchmark's measurement, run briefly; its timings are
    ``scripts/bench_webhooks.py``'s to report, not asserted here)."""
    spec = importlib.util.spec_from_file_location("_webhook_bench", ROOT / "scripts" / "_webhook_bench.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.serve_and_measure(tmp_path, demo.model_dir, rate_hz=5.0, duration_s=3.0)
    assert result["conversions_accepted"] > 0
    assert result["conversions_settled"] == result["conversions_accepted"]
    assert result["webhook_expected"] == 2 * result["conversions_accepted"]
    assert result["webhook_notifications"] == result["webhook_expected"]
    assert result["webhook_repeats"] == 0
    assert set(result["by_event"]) == {"conversion.accepted", "conversion.settled"}
    assert isinstance(result["webhook_delivery_p95_ms"], float)


def _stale_writer_announces_nothing_twice(svc: Service, receiver: Receiver) -> None:
    from backend.models import Conversion
    from backend.services.outbox import recorded_on_chain

    _register(svc, receiver.url)
    _, rec = _consenting_recommendation(svc)
    conversion = _conversion(svc, rec, "stale-1")
    engine = svc.container.engine
    with Session(engine, expire_on_commit=False) as stale:
        row = stale.get(Conversion, conversion["id"])  # read while pending, as the indexer might
        assert row is not None and row.state == "pending"
        svc.container.settler.run_once()  # meanwhile the settler sends it and records it settled
        fresh = svc.api.get(f"/api/v1/conversions/{conversion['id']}", headers=svc.partner()).json()
        assert fresh["state"] == "settled"
        # the same fact applied from the stale copy (the chain's event, read by the indexer)
        recorded_on_chain(
            stale, row, batch_id=fresh["batch_id"], batch_index=0, tx_hash=fresh["tx_hash"],
            block=fresh["block_number"],
        )  # fmt: skip
        stale.commit()
    with engine.connect() as conn:
        events = conn.execute(
            text("SELECT event FROM conversion_event WHERE conversion_id = :c ORDER BY id"),
            {"c": conversion["id"]},
        ).scalars()
        assert list(events) == ["accepted", "settled"]
    _pump(svc, lambda: len(receiver.accepted()) == 2)
    svc.container.deliverer.run_once()
    assert sorted(e["type"] for e in receiver.events()) == ["conversion.accepted", "conversion.settled"]


def test_a_fact_applied_twice_from_a_stale_row_is_announced_once(svc: Service, receiver: Receiver) -> None:
    _stale_writer_announces_nothing_twice(svc, receiver)


def test_a_fact_applied_twice_from_a_stale_row_is_announced_once_on_postgresql(
    make_service: Callable[..., Service], pg_url: str, receiver: Receiver
) -> None:
    _stale_writer_announces_nothing_twice(make_service(database_url=pg_url, **FAST), receiver)
