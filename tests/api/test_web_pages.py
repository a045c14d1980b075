"""The web pages, in a real browser (Debian's Chromium, headless, driven by Playwright) against the real
service: uvicorn on a loopback port, the embedded chain and a SQLite file. What the pages show is checked
against the JSON API and the chain, not against the pages' own idea of it."""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import importlib.util
import io
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.chain import connect_devnet
from backend.chain.devnet import AnvilNode
from backend.main import create_app

from ._browser import (
    DESKTOP,
    OVERFLOW_JS,
    PHONE,
    ROOT,
    UNLABELLED_CONTROLS_JS,
    axe_violations,
    new_page,
    screenshot,
)
from ._live import ChainProxy, live_server
from .conftest import OPERATOR_KEY, Demo, Service, _start

DAY = 86_400
PROFILING = "Build a learning profile"
RECOMMENDING = "Recommend this partner's products"


@pytest.fixture(scope="module")
def site(service: Service) -> Iterator[str]:
    """The service under uvicorn, its base URL (the module's ``service`` runtime, shared with ``api``)."""
    with live_server(create_app(container=service.container)) as client:
        yield str(client.base_url).rstrip("/")


def _switch(page: Any, partner: str, purpose_title: str) -> Any:
    return page.get_by_role("switch", name=f"{partner} {purpose_title}", exact=True)


def _status(page: Any, partner_id: str, purpose: str) -> Any:
    return page.locator(f"#st-{partner_id}-{purpose}")


def _open_dashboard(page: Any, site: str, user: dict[str, Any]) -> None:
    page.goto(f"{site}/app/consent#token={user['token']}")
    page.get_by_role("heading", name="Harbour Bank", exact=True).wait_for()


def _recommend(service: Service, user: dict[str, Any]) -> httpx.Response:
    return service.api.post(
        "/api/v1/recommendations", json={"subject": user["pseudonym"], "k": 3}, headers=service.partner()
    )


def _history(service: Service, user: dict[str, Any]) -> list[dict[str, Any]]:
    r = service.api.get("/api/v1/me/consents/history", headers=user["headers"])
    assert r.status_code == 200, r.text
    return list(r.json()["history"])


def _granted(service: Service, user: dict[str, Any], partner_id: str, purpose: str) -> bool:
    rows = service.api.get("/api/v1/me/consents", headers=user["headers"]).json()["consents"]
    return any(c["granted"] for c in rows if c["partner_id"] == partner_id and c["purpose"] == purpose)


# ---------------------------------------------------------------------------------------------- consent
def test_a_learner_grants_sees_the_transaction_and_revokes_then_the_partner_is_refused(
    browser: Any, site: str, service: Service
) -> None:
    user = service.new_user()
    page = new_page(browser)
    _open_dashboard(page, site, user)
    assert "token=" not in page.url  # the sign-in token is taken out of the address bar
    profiling = _switch(page, "Harbour Bank", PROFILING)
    assert profiling.get_attribute("aria-checked") == "false"
    assert _recommend(service, user).status_code == 403

    # grant with a click: pending (held in flight here), then mined with the transaction and block
    held: list[Any] = []
    page.route("**/api/v1/me/consents/bank/profiling", lambda route: held.append(route))
    profiling.click()
    status = _status(page, "bank", "profiling")
    page.wait_for_function("() => document.querySelector('#st-bank-profiling').dataset.state === 'pending'")
    assert "Pending" in status.inner_text()
    assert profiling.get_attribute("aria-busy") == "true"
    assert profiling.get_attribute("aria-checked") == "false"  # not shown as granted before it is mined
    held[0].continue_()
    page.unroute("**/api/v1/me/consents/bank/profiling")
    page.wait_for_function("() => document.querySelector('#st-bank-profiling').dataset.state === 'mined'")
    assert profiling.get_attribute("aria-checked") == "true"
    assert page.locator("#s-bank-profiling").inner_text() == "granted"
    granted = _history(service, user)[-1]
    assert f"at block {granted['block_number']}" in page.locator("#checked-at").inner_text()
    assert granted["action"] == "grant" and granted["purpose"] == "profiling"
    assert status.locator("code").get_attribute("data-tx") == granted["tx_hash"]
    assert f"block {granted['block_number']}" in status.inner_text()
    tx = service.container.chain.w3.eth.get_transaction_receipt(granted["tx_hash"])
    assert tx["status"] == 1 and tx["blockNumber"] == granted["block_number"]  # the hash shown is mined

    # the second grant with the keyboard only: Tab to the switch, Space toggles it
    recommending = _switch(page, "Harbour Bank", RECOMMENDING)
    recommending.focus()
    page.keyboard.press("Space")
    page.wait_for_function(
        "() => document.querySelector('#st-bank-product_recommendation').dataset.state === 'mined'"
    )
    assert recommending.get_attribute("aria-checked") == "true"
    assert _recommend(service, user).status_code == 200

    # the learner's own profile: their segment, and their courses behind what the bank would suggest
    view = service.api.get("/api/v1/me/profile", headers=user["headers"]).json()
    page.wait_for_function("() => document.querySelector('#profile-recommendations h3') !== null")
    assert page.locator("#profile-segment").inner_text() == view["segment"]
    shown = page.locator("#profile-recommendations").inner_text()
    assert "What Harbour Bank would suggest" in shown
    titles = {c["title"] for r in view["recommendations"] for p in r["products"] for c in p["courses"]}
    assert titles and any(t in shown for t in titles)

    # the receipt behind the grant: its hash is the one the API holds and the chain event carries
    receipt_button = "Show the consent receipt for Harbour Bank: Build a learning profile"
    status.get_by_role("button", name=receipt_button).click()
    page.locator("#receipt-card").wait_for()
    assert page.locator("#receipt-hash").inner_text() == granted["receipt_hash"]
    assert json.loads(page.locator("#receipt-json").inner_text())["receipt_id"] == granted["receipt_id"]

    # history lists both grants with their transactions
    history_rows = page.locator("#history tr")
    assert history_rows.count() == 2
    shown = {history_rows.nth(i).get_attribute("data-tx") for i in range(2)}
    assert shown == {e["tx_hash"] for e in _history(service, user)}
    screenshot(page, "consent-dashboard")

    # revoke: mined, off, and the partner's next request is refused
    profiling.click()
    page.wait_for_function(
        "() => document.querySelector('#st-bank-profiling').innerText.startsWith('Revoked: mined')"
    )
    assert profiling.get_attribute("aria-checked") == "false"
    revoked = _history(service, user)[-1]
    assert revoked["action"] == "revoke"
    assert status.locator("code").get_attribute("data-tx") == revoked["tx_hash"]
    refused = _recommend(service, user)
    assert refused.status_code == 403, refused.text
    assert "profiling" in refused.json()["error"]["message"]
    assert page.js_errors == []


@pytest.mark.anvil
def test_a_failed_write_never_shows_as_granted(
    browser: Any, anvil_bin: Path, tmp_path: Path, make_service: Callable[..., Service]
) -> None:
    """A real failure: the service's anvil node becomes unreachable (a TCP proxy between them is cut)."""
    node = AnvilNode(run_dir=tmp_path / "anvil", binary=anvil_bin).start()
    proxy = ChainProxy("127.0.0.1", int(node.url.rsplit(":", 1)[1]))
    try:
        svc = make_service(chain=connect_devnet(proxy.url, timeout=2.0), manifest_path=tmp_path / "m.json")
        user = svc.new_user()
        with live_server(create_app(container=svc.container)) as client:
            site = str(client.base_url).rstrip("/")
            page = new_page(browser)
            _open_dashboard(page, site, user)
            switch = _switch(page, "Evergreen Insurance", "Let this partner contact you")
            assert switch.get_attribute("aria-checked") == "false"

            proxy.cut()
            switch.click()
            page.wait_for_function(
                "() => document.querySelector('#st-insurer-marketing_contact').dataset.state === 'failed'"
            )
            status = _status(page, "insurer", "marketing_contact").inner_text()
            assert status.startswith("Failed:") and "chain" in status
            assert switch.get_attribute("aria-checked") == "false"
            assert page.locator("#s-insurer-marketing_contact").inner_text() == "not granted"

            # loaded while the chain is away: the page says so, and nothing can be toggled
            purposes = client.get("/api/v1/purposes").json()  # the notices stay readable
            assert purposes["platform_notice_version"] is None
            assert "unreachable" in purposes["chain_unavailable"]
            page.reload()
            page.get_by_role("heading", name="Harbour Bank", exact=True).wait_for()
            assert "The chain cannot be read right now" in page.locator("#checked-at").inner_text()
            assert page.locator("#s-insurer-marketing_contact").inner_text() == "unknown"
            assert switch.is_disabled()
            assert page.locator("#history tr").count() == 1  # the rest of the page still works

            proxy.restore()
            assert not _granted(svc, user, "insurer", "marketing_contact")  # the chain agrees
            assert _history(svc, user) == []
            page.reload()  # back up: the same switch now writes and shows the mined transaction
            page.get_by_role("heading", name="Harbour Bank", exact=True).wait_for()
            switch.click()
            page.wait_for_function(
                "() => document.querySelector('#st-insurer-marketing_contact').dataset.state === 'mined'"
            )
            assert switch.get_attribute("aria-checked") == "true"
            assert _granted(svc, user, "insurer", "marketing_contact")
            # the browser logged the 503s as failed loads; nothing else went wrong
            assert [e for e in page.js_errors if "503" not in e] == []
    finally:
        proxy.close()
        node.stop()


def test_a_wallet_user_signs_the_grant_and_revocation_which_the_service_relays(
    browser: Any, site: str, service: Service
) -> None:
    from eth_account import Account
    from eth_account.messages import encode_typed_data

    wallet = Account.create()
    user = service.new_user(wallet=wallet.address)
    signed: list[dict[str, Any]] = []

    def sign(typed_json: str) -> str:
        typed = json.loads(typed_json)
        signed.append(typed)
        return "0x" + Account.sign_message(encode_typed_data(full_message=typed), wallet.key).signature.hex()

    page = new_page(browser)
    page.expose_function("__knowledgerTestSign", sign)
    # a minimal EIP-1193 provider, as a wallet extension injects one; the key stays in the test process
    page.add_init_script(
        "window.ethereum = { request: async ({ method, params }) => {"
        "  if (method === 'eth_requestAccounts')"
        f"    return [window.__knowledgerTestAccount || '{wallet.address.lower()}'];"
        "  if (method === 'eth_signTypedData_v4') {"
        "    if (window.__knowledgerTestDecline)"
        "      throw Object.assign(new Error('User rejected the request.'), { code: 4001 });"
        "    return await window.__knowledgerTestSign(params[1]);"
        "  }"
        "  throw Object.assign(new Error('unsupported ' + method), { code: 4200 });"
        "} };"
    )
    _open_dashboard(page, site, user)
    assert wallet.address in page.locator("#wallet-note").inner_text()
    switch = _switch(page, "Harbour Bank", PROFILING)

    # the wallet is on another account: nothing is signed, the page says which account to use
    page.evaluate(f"window.__knowledgerTestAccount = '{Account.create().address}'")
    switch.click()
    page.wait_for_function("() => document.querySelector('#st-bank-profiling').dataset.state === 'failed'")
    assert "switch accounts" in _status(page, "bank", "profiling").inner_text()
    assert signed == [] and switch.get_attribute("aria-checked") == "false"

    # the learner declines in the wallet: nothing is relayed
    page.evaluate("window.__knowledgerTestAccount = null; window.__knowledgerTestDecline = true")
    switch.click()
    page.wait_for_function(
        "() => document.querySelector('#st-bank-profiling').innerText.includes('you declined the signature')"
    )
    assert switch.get_attribute("aria-checked") == "false" and _history(service, user) == []

    page.evaluate("window.__knowledgerTestDecline = false")
    switch.click()
    page.wait_for_function("() => document.querySelector('#st-bank-profiling').dataset.state === 'mined'")
    assert switch.get_attribute("aria-checked") == "true"
    assert signed and signed[-1]["primaryType"] == "ConsentGrant"
    event = _history(service, user)[-1]
    assert event["path"] != "registrar" and event["action"] == "grant"
    assert _status(page, "bank", "profiling").locator("code").get_attribute("data-tx") == event["tx_hash"]
    assert _granted(service, user, "bank", "profiling")
    assert page.locator("#history tr").first.inner_text().find("your wallet") >= 0

    switch.click()
    page.wait_for_function(
        "() => document.querySelector('#st-bank-profiling').innerText.startsWith('Revoked: mined')"
    )
    assert signed[-1]["primaryType"] == "ConsentRevocation"
    assert not _granted(service, user, "bank", "profiling")
    assert page.js_errors == []


def test_a_wallet_user_without_a_wallet_in_the_browser_cannot_toggle_and_is_told_why(
    browser: Any, site: str, service: Service
) -> None:
    from eth_account import Account

    wallet = Account.create()
    user = service.new_user(wallet=wallet.address)
    page = new_page(browser)
    _open_dashboard(page, site, user)
    assert "Open this page in a browser with that wallet" in page.locator("#wallet-note").inner_text()
    switches = page.get_by_role("switch")
    assert switches.count() == 8
    assert all(switches.nth(i).is_disabled() for i in range(8))


def test_a_grant_the_chain_no_longer_holds_is_shown_as_lapsed_after_a_new_notice(
    browser: Any, make_service: Callable[..., Service]
) -> None:
    svc = make_service()
    user = svc.new_user()
    svc.grant(user, "insurer", ("profiling",))
    r = svc.api.put(
        "/api/v1/partners/insurer/notice",
        json={"notice_text": "Evergreen Insurance now also offers travel cover to learners who travel."},
        headers=svc.operator,
    )
    assert r.status_code == 200 and r.json()["notice_version"] == 2
    assert not _granted(svc, user, "insurer", "profiling")  # the chain voids consents to the old notice
    with live_server(create_app(container=svc.container)) as client:
        page = new_page(browser)
        _open_dashboard(page, str(client.base_url).rstrip("/"), user)
        card = page.locator("section[data-partner='insurer']")
        assert "now also offers travel cover" in card.inner_text()
        assert "Partner notice version 2" in card.inner_text()
        switch = _switch(page, "Evergreen Insurance", PROFILING)
        assert switch.get_attribute("aria-checked") == "false"
        assert page.locator("#st-insurer-profiling [data-lapsed]").is_visible()
        switch.click()  # agreeing again, to the new notice
        page.wait_for_function(
            "() => document.querySelector('#st-insurer-profiling').dataset.state === 'mined'"
        )
        assert _granted(svc, user, "insurer", "profiling")
        receipt = _history(svc, user)[-1]["receipt_id"]
        body = svc.api.get(f"/api/v1/me/receipts/{receipt}", headers=user["headers"]).json()
        assert body["receipt"]["notice"]["partner_notice_version"] == 2


def test_erasure_is_confirmed_first_and_then_revokes_and_deletes(
    browser: Any, site: str, service: Service
) -> None:
    user = service.new_user()
    service.grant(user)
    assert _recommend(service, user).status_code == 200
    page = new_page(browser)
    _open_dashboard(page, site, user)

    # download my data: confirmed first, and the file is what the export API returns
    page.get_by_role("button", name="Download my data").click()
    dialog = page.get_by_role("dialog", name="Download your data?")
    assert dialog.is_visible()
    with page.expect_download() as info:
        dialog.get_by_role("button", name="Download").click()
    exported = json.loads(info.value.path().read_text())
    api_export = service.api.get("/api/v1/me/export", headers=user["headers"]).json()
    assert exported["user"] == api_export["user"] and exported["profile"] == api_export["profile"]

    # cancelling (Escape) erases nothing
    page.get_by_role("button", name="Erase me").click()
    page.get_by_role("dialog", name="Erase your data?").wait_for()
    page.keyboard.press("Escape")
    assert service.api.get("/api/v1/me", headers=user["headers"]).status_code == 200
    page.get_by_role("button", name="Erase me").click()
    page.get_by_role("dialog", name="Erase your data?").get_by_role("button", name="Cancel").click()
    assert service.api.get("/api/v1/me", headers=user["headers"]).status_code == 200

    # confirmed: consents revoked on chain, then the data is gone and the token no longer works
    page.get_by_role("button", name="Erase me").click()
    page.get_by_role("dialog", name="Erase your data?").get_by_role("button", name="Erase everything").click()
    page.get_by_role("heading", name="Your data has been erased").wait_for()
    shown = page.locator("#erased-detail code").all_inner_texts()
    assert len(shown) == 2  # the two grants, each revoked by a transaction
    for tx_hash in shown:
        assert service.container.chain.w3.eth.get_transaction_receipt(tx_hash)["status"] == 1
    screenshot(page, "consent-erased")
    assert service.api.get("/api/v1/me", headers=user["headers"]).status_code == 401
    assert _recommend(service, user).status_code in (403, 404)
    assert page.evaluate("() => sessionStorage.getItem('knowledger.token')") is None
    assert page.js_errors == []


# ---------------------------------------------------------------------------------------------- partner
@pytest.fixture(scope="module")
def settled(service: Service) -> dict[str, Any]:
    """A ledger with history: conversions over five days (settled in batches), one reversed, the first
    batches final after the validation window, later ones provisional, and one still in the outbox."""
    user = service.new_user()
    service.grant(user)
    ids: list[int] = []

    def convert(value: int) -> None:
        rec = _recommend(service, user).json()
        body = {
            "recommendation_id": rec["recommendation_id"],
            "order_id": f"web-order-{len(ids)}",
            "value": value,
            "product_id": rec["products"][0]["product_id"],
        }
        r = service.api.post("/api/v1/conversions", json=body, headers=service.partner())
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])

    def settle() -> None:
        assert service.api.post("/api/v1/operator/settle", headers=service.operator).status_code == 200

    for i in range(10):
        convert(125_000 + 37_777 * i)
        if i % 3 == 2:
            settle()
        service.container.chain.increase_time(DAY // 2)
    settle()
    r = service.api.post(f"/api/v1/conversions/{ids[4]}/reversal", headers=service.partner())
    assert r.status_code == 202, r.text
    settle()
    service.container.chain.increase_time(15 * DAY)  # past the validation window: these batches are final
    settle()
    for value in (98_765, 240_000):
        convert(value)
        settle()
        service.container.chain.increase_time(DAY // 4)
    convert(40_001)  # not settled yet: in the outbox
    agreement = service.api.get("/api/v1/ledger/agreements", headers=service.partner()).json()
    return {"agreement_id": agreement["agreements"][0]["id"], "conversion_ids": ids}


def _statement(service: Service, agreement_id: int, **params: Any) -> dict[str, Any]:
    r = service.api.get(
        f"/api/v1/ledger/agreements/{agreement_id}/statement",
        params={"limit": 1000, **params},
        headers=service.partner(),
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def _open_ledger(page: Any, site: str, service: Service) -> None:
    page.goto(f"{site}/app/partner")
    page.get_by_label("Partner API key").fill(service.partner()["X-API-Key"])
    page.get_by_label("Partner API key").press("Enter")
    page.locator("#statement tr").first.wait_for()


def test_a_partners_statement_totals_equal_the_apis_and_verify_against_chain(
    browser: Any, site: str, service: Service, settled: dict[str, Any]
) -> None:
    page = new_page(browser)
    _open_ledger(page, site, service)
    api = _statement(service, settled["agreement_id"])

    shown: dict[str, list[int]] = {}
    for row in page.locator("#statement tr, #statement-total tr").all():
        cells = row.locator("td[data-minor]")
        shown[str(row.get_attribute("data-account"))] = [
            int(str(cells.nth(i).get_attribute("data-minor"))) for i in range(3)
        ]
    expected = {p["account"]: [p["provisional"], p["final"], p["reversed"]] for p in api["parties"]}
    expected["total"] = [api["totals"]["provisional"], api["totals"]["final"], api["totals"]["reversed"]]
    assert shown == expected
    assert all(api["totals"][bucket] > 0 for bucket in ("provisional", "final", "reversed"))
    # the displayed text is the same amount (fen shown as yuan with two decimals, nothing rounded)
    first = api["parties"][0]["provisional"]
    assert f"{first // 100:,}.{first % 100:02d}" in page.locator("#statement tr").first.inner_text()

    # the conversions list: every one, with the transaction that settled it
    rows = page.locator("#conversions tr")
    assert rows.count() == api["conversions"]["total"]
    for item in api["conversions"]["items"]:
        row = page.locator(f"#conversions tr[data-id='{item['id']}']")
        assert row.get_attribute("data-state") == item["state"]
        if item["tx_hash"]:
            assert row.locator("code[data-tx]").get_attribute("data-tx") == item["tx_hash"]
        if item["reversal_tx_hash"]:
            shown_reversal = row.locator("code[data-reversal-tx]").get_attribute("data-reversal-tx")
            assert shown_reversal == item["reversal_tx_hash"]
    assert any(i["reversal_tx_hash"] for i in api["conversions"]["items"])
    # the chart is drawn from the settled conversions and says what it shows
    label = page.locator("#chart svg").get_attribute("aria-label")
    on_chain = ("settled", "reversal_pending", "final")
    settled_commission = sum(i["commission"] for i in api["conversions"]["items"] if i["state"] in on_chain)
    assert f"{settled_commission // 100:,}.{settled_commission % 100:02d}" in str(label)

    # verify against chain: the reconcile endpoint's verdict, shown
    page.get_by_role("button", name="Verify against chain").click()
    page.locator("#verify-result [data-ok]").wait_for()
    assert page.locator("#verify-result [data-ok]").get_attribute("data-ok") == "true"
    assert "matches the chain" in page.locator("#verify-result").inner_text()
    screenshot(page, "partner-ledger")
    assert page.js_errors == []


def test_the_conversion_list_filters_and_exports_csv(
    browser: Any, site: str, service: Service, settled: dict[str, Any]
) -> None:
    page = new_page(browser)
    _open_ledger(page, site, service)
    page.get_by_label("Conversion state").select_option("settled")
    page.get_by_role("button", name="Apply filters").click()
    api = _statement(service, settled["agreement_id"], state="settled")
    expected_rows = api["conversions"]["total"]
    page.wait_for_function(
        f"() => document.querySelectorAll('#conversions tr[data-id]').length === {expected_rows}"
    )
    assert {r.get_attribute("data-state") for r in page.locator("#conversions tr").all()} == {"settled"}

    with page.expect_download() as info:
        page.get_by_role("button", name="Export CSV").click()
    assert info.value.suggested_filename.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(info.value.path().read_text())))
    assert [int(r["id"]) for r in rows] == [i["id"] for i in api["conversions"]["items"]]
    for row, item in zip(rows, api["conversions"]["items"], strict=True):
        assert row["tx_hash"] == item["tx_hash"] and int(row["commission_minor"]) == item["commission"]
        assert [int(row[f"party_{k + 1}_minor"]) for k in range(len(item["amounts"]))] == item["amounts"]
        assert sum(item["amounts"]) == item["commission"]

    # a time window (UTC, to the minute) lists what the API lists for the same window
    everything = _statement(service, settled["agreement_id"])["conversions"]["items"]
    since = everything[5]["occurred_at"] // 60 * 60
    until = everything[-2]["occurred_at"] // 60 * 60
    page.get_by_label("Conversion state").select_option("")
    page.get_by_label("From (UTC)").fill(dt.datetime.fromtimestamp(since, dt.UTC).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Until (UTC)").fill(dt.datetime.fromtimestamp(until, dt.UTC).strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Apply filters").click()
    window = _statement(service, settled["agreement_id"], since=since, until=until)["conversions"]["items"]
    assert 0 < len(window) < len(everything)
    ids = ",".join(str(i["id"]) for i in window)
    page.wait_for_function(
        f"() => Array.from(document.querySelectorAll('#conversions tr[data-id]')).map((r) => r.dataset.id)"
        f".join(',') === '{ids}'"
    )


def test_a_csv_cell_that_looks_like_a_formula_is_exported_as_text(
    browser: Any, site: str, service: Service, settled: dict[str, Any]
) -> None:
    """Order ids come from the partner's systems: one starting with = must not run in a spreadsheet."""
    user = service.new_user()
    service.grant(user)
    rec = _recommend(service, user).json()
    order_id = '=HYPERLINK("http://example.invalid","click")'
    body = {"recommendation_id": rec["recommendation_id"], "order_id": order_id, "value": 1_000}
    assert service.api.post("/api/v1/conversions", json=body, headers=service.partner()).status_code == 202
    page = new_page(browser)
    _open_ledger(page, site, service)
    page.get_by_label("Conversion state").select_option("pending")
    page.get_by_role("button", name="Apply filters").click()
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('#conversions tr[data-id]'))"
        ".some((r) => r.innerText.includes('HYPERLINK'))"
    )
    with page.expect_download() as info:
        page.get_by_role("button", name="Export CSV").click()
    rows = list(csv.DictReader(io.StringIO(info.value.path().read_text())))
    exported = [r["order_id"] for r in rows if "HYPERLINK" in r["order_id"]]
    assert exported == ["'" + order_id]  # quoted as text, otherwise unchanged


# ---------------------------------------------------------------------------------------------- operator
def _open_operator(page: Any, site: str) -> None:
    page.goto(f"{site}/app/operator")
    page.get_by_label("Operator API key").fill(OPERATOR_KEY)
    page.get_by_label("Operator API key").press("Enter")
    page.locator("#verdict [data-verdict]").wait_for()


def _run_recommender_benchmark(reports: Any) -> None:
    """The real benchmark script on the demo world (fast settings), writing its JSON and plot."""
    script = ROOT / "scripts" / "bench_recommender.py"
    spec = importlib.util.spec_from_file_location("bench_recommender", script)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = ["--only", "demo", "--fast", "--no-serving"]
    args += ["--json", str(reports / "recommender_benchmark.json")]
    args += ["--plot", str(reports / "recommender_comparison.png")]
    with contextlib.redirect_stdout(io.StringIO()):
        assert bench.main(args) == 0


@pytest.fixture(scope="module")
def experiment(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Service]]:
    """A service running a hybrid-vs-popularity experiment with real traffic through the API: 40 learners
    consent and are recommended to; every third one converts. And a benchmark run to show."""
    reports = tmp_path_factory.mktemp("reports")
    _run_recommender_benchmark(reports)
    svc = _start(
        demo,
        tmp_path_factory.mktemp("experiment"),
        n_users=5,
        experiment_arms="hybrid=0.5,popularity=0.5",
        reports_dir=reports,
    )
    for i in range(40):
        user = svc.new_user()
        svc.grant(user)
        rec = _recommend(svc, user).json()
        if i % 3 == 0:
            body = {
                "recommendation_id": rec["recommendation_id"],
                "order_id": f"ab-{i}",
                "value": 50_000,
                "product_id": rec["products"][0]["product_id"],
            }
            assert svc.api.post("/api/v1/conversions", json=body, headers=svc.partner()).status_code == 202
    try:
        with live_server(create_app(container=svc.container)) as client:
            yield str(client.base_url).rstrip("/"), svc
    finally:
        svc.container.close()


def _numbers(match: re.Match[str] | None) -> list[float]:
    assert match is not None
    return [float(g) for g in match.groups()]


def test_the_operator_sees_the_experiment_with_intervals_the_srm_check_and_the_benchmark(
    browser: Any, experiment: tuple[str, Service]
) -> None:
    site, svc = experiment
    api = svc.api.get("/api/v1/operator/experiment", headers=svc.operator).json()
    model = svc.api.get("/api/v1/operator/model", headers=svc.operator).json()
    page = new_page(browser)
    _open_operator(page, site)

    assert page.locator("#verdict [data-verdict]").get_attribute("data-verdict") == api["verdict"]
    for arm in api["arms"]:
        row = page.locator(f"#arms tr[data-arm='{arm['arm']}']")
        assert row.locator("[data-units]").get_attribute("data-units") == str(arm["units"])
        assert row.locator("[data-converters]").get_attribute("data-converters") == str(arm["converters"])
        shown = _numbers(re.search(r"(\S+) % to (\S+) %", row.inner_text()))
        assert shown == pytest.approx([arm["rate_ci_low"] * 100, arm["rate_ci_high"] * 100], abs=0.0051)
    assert sum(a["units"] for a in api["arms"]) == 40
    # the difference and its interval, drawn and described
    c = api["comparison"]
    label = str(page.locator("#difference svg").get_attribute("aria-label"))
    shown = _numbers(re.search(r"95 % CI (\S+) points to (\S+) points", label))
    assert shown == pytest.approx([c["ci_low"] * 100, c["ci_high"] * 100], abs=0.0051)  # shown to 2 decimals
    # the sample-ratio check as the API computed it
    mismatch = page.locator("#srm [data-mismatch]").get_attribute("data-mismatch")
    assert mismatch == str(api["srm"]["mismatch"]).lower()

    # the served model and the benchmark's tables and plot
    assert model["model"]["version"] in page.locator("#model").inner_text()
    for name, dataset in model["benchmark"]["datasets"].items():
        for model_name in dataset["models"]:
            table = page.locator(f"#bench section[aria-label='Data set {name}']")
            assert table.locator(f"tr[data-model='{model_name}']").count() == 1
    page.wait_for_function("() => document.querySelector('#plot').naturalWidth > 0")

    # the model versions: the served one, and a candidate trained elsewhere that the gate refuses, saying why
    served = model["model"]["version"]
    assert page.locator(f"#versions tr[data-version='{served}']").get_attribute("data-status") == "served"
    candidate = _register_copy(svc, "candidate-from-elsewhere")
    page.locator("#refresh").click()
    page.locator(f"#versions tr[data-version='{candidate}']").wait_for()
    assert page.locator("#rollback").is_disabled()  # nothing served before
    page.get_by_role("button", name=f"Promote model version {candidate}").click()
    page.wait_for_function("() => document.querySelector('#versions-status').textContent.includes('gate')")
    assert "same held-out split" in page.locator("#versions-status").inner_text()
    refused = page.locator(f"#versions tr[data-version='{candidate}']")
    # the page says why once the table shows the refusal; wait for the row all the same
    page.locator(f"#versions tr[data-version='{candidate}'][data-status='rejected']").wait_for()
    assert refused.get_attribute("data-status") == "rejected"
    assert svc.container.model.version == served
    screenshot(page, "operator")
    assert [e for e in page.js_errors if "409" not in e] == []  # the refusal's own answer, shown above


def _register_copy(svc: Service, version: str) -> str:
    """The served artifact copied under another version name, registered as a candidate."""
    import json
    import shutil

    from recommender.artifacts import resolve_artifact

    source = resolve_artifact(svc.settings.resolved_model_path)
    assert source is not None
    target = svc.settings.state_dir / "elsewhere" / version
    shutil.copytree(source, target)
    meta = json.loads((target / "metadata.json").read_text())
    meta["version"] = version
    (target / "metadata.json").write_text(json.dumps(meta))
    return svc.container.models.registry.register(target, source="imported").version


# ---------------------------------------------------------------------------------------------- quality
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_every_page_fits_the_screen_and_labels_every_control(
    browser: Any, site: str, service: Service, settled: dict[str, Any], viewport: dict[str, int]
) -> None:
    size = "phone" if viewport == PHONE else "desktop"
    user = service.new_user()
    service.grant(user)
    pages = {
        "consent": lambda p: _open_dashboard(p, site, user),
        "partner": lambda p: _open_ledger(p, site, service),
        "operator": lambda p: _open_operator(p, site),
        "home": lambda p: p.goto(f"{site}/app/"),
    }
    for name, open_page in pages.items():
        page = new_page(browser, viewport)
        open_page(page)
        assert page.evaluate(OVERFLOW_JS) <= 0, f"{name} scrolls sideways at {viewport}"
        assert page.evaluate(UNLABELLED_CONTROLS_JS) == [], name
        if size == "phone" and name in ("consent", "partner", "operator"):
            screenshot(page, f"{name}-phone")
        # reloaded (still signed in for this tab), the first Tab reaches the skip link
        page.reload()
        page.wait_for_load_state("networkidle")
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.activeElement.textContent") == "Skip to content"
        assert page.js_errors == [], name


def test_every_page_passes_the_automated_wcag_checks(
    browser: Any, site: str, service: Service, settled: dict[str, Any], experiment: tuple[str, Service]
) -> None:
    """axe-core's WCAG 2.1 A and AA rules (contrast, names, roles, structure) on each page, filled with data:
    the dashboard with grants, history and a receipt open; the ledger verified; the experiment's page."""
    user = service.new_user()
    service.grant(user)
    found: dict[str, list[str]] = {}
    for size, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page = new_page(browser, viewport, bypass_csp=True)
        _open_dashboard(page, site, user)
        page.locator("#history button").first.click()
        page.locator("#receipt-card").wait_for()
        found[f"consent/{size}"] = axe_violations(page)

        page = new_page(browser, viewport, bypass_csp=True)
        _open_ledger(page, site, service)
        page.get_by_role("button", name="Verify against chain").click()
        page.locator("#verify-result [data-ok]").wait_for()
        found[f"partner/{size}"] = axe_violations(page)

        page = new_page(browser, viewport, bypass_csp=True)
        _open_operator(page, experiment[0])
        page.wait_for_function("() => document.querySelector('#plot').naturalWidth > 0")
        found[f"operator/{size}"] = axe_violations(page)

        page = new_page(browser, viewport, bypass_csp=True)
        page.goto(f"{site}/app/")
        found[f"home/{size}"] = axe_violations(page)
    assert {k: v for k, v in found.items() if v} == {}


def test_pages_are_served_with_a_strict_content_security_policy(site: str) -> None:
    for path in ("/app/", "/app/consent", "/app/partner", "/app/operator"):
        r = httpx.get(site + path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert r.headers["x-frame-options"] == "DENY"
    assert httpx.get(site + "/", follow_redirects=False).headers["location"] == "/app/"
    assert httpx.get(site + "/app/static/nope.js").status_code == 404
