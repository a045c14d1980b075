"""The live pages in a real browser (Debian's Chromium, Playwright) against the real service under uvicorn:
the partner's and the operator's funnel show the API's figures and follow new traffic without a reload; the
operator sees a webhook notification that kept failing (against a real receiver) and replays it. Every
figure is compared with the JSON API, never with the page's own idea of it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from backend.main import create_app

from ._browser import (
    DESKTOP,
    OVERFLOW_JS,
    PHONE,
    UNLABELLED_CONTROLS_JS,
    axe_violations,
    new_page,
    screenshot,
)
from ._live import live_server
from ._receiver import Receiver
from .conftest import OPERATOR_KEY, Demo, Service, _start

STAGES = ("recommendations", "conversions", "settled", "final", "reversed")
RATES = ("conversion", "settlement", "finality", "reversal")


@pytest.fixture(scope="module")
def live(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Service]]:
    """A service running an experiment, with webhooks to loopback allowed and quick retries, under uvicorn
    (its background workers off: the test drives the settler and the deliverer)."""
    svc = _start(
        demo,
        tmp_path_factory.mktemp("live"),
        n_users=5,
        experiment_arms="hybrid=0.5,popularity=0.5",
        webhook_allow_http=True,
        webhook_allow_private=True,
        webhook_retry_base_s=0.05,
        webhook_max_attempts=2,
        webhook_timeout_s=1.0,
    )
    try:
        with live_server(create_app(container=svc.container)) as client:
            yield str(client.base_url).rstrip("/"), svc
    finally:
        svc.container.close()


def _traffic(
    svc: Service, n: int, *, convert_every: int = 2, partner: str = "bank", both_arms: bool = False
) -> list[str]:
    """``n`` learners consent and are recommended to (more, with ``both_arms``, until both arms of the
    experiment served one); every ``convert_every``-th converts."""
    recs: list[str] = []
    arms: set[str] = set()
    i = 0
    while i < n or (both_arms and len(arms) < 2 and i < 60):
        user = svc.new_user()
        svc.grant(user, partner)
        r = svc.api.post(
            "/api/v1/recommendations", json={"subject": user["pseudonym"]}, headers=svc.partner(partner)
        )
        assert r.status_code == 200, r.text
        rec = r.json()["recommendation_id"]
        recs.append(rec)
        arms.add(r.json()["arm"])
        if i % convert_every == 0:
            body = {"recommendation_id": rec, "order_id": f"live-{time.time_ns()}", "value": 30_000}
            c = svc.api.post("/api/v1/conversions", json=body, headers=svc.partner(partner))
            assert c.status_code == 202, c.text
        i += 1
    return recs


def _sign_in(page: Any, site: str, path: str, label: str, key: str) -> None:
    page.goto(f"{site}{path}")
    page.get_by_label(label).fill(key)
    page.get_by_label(label).press("Enter")
    page.locator("#funnel [data-partner] td[data-stage]").first.wait_for()


def _api_funnel(svc: Service, page: Any, path: str, headers: dict[str, str]) -> dict[str, Any]:
    """The API's answer for the window the page shows."""
    section = page.locator("#funnel")
    params = {"since": section.get_attribute("data-since"), "bucket": section.get_attribute("data-bucket")}
    r = svc.api.get(path, params=params, headers=headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _shown(page: Any, partner_id: str) -> dict[str, dict[str, Any]]:
    """Per row (``all`` and each arm): the stage counts and the rates as the page holds them."""
    return dict(
        page.evaluate(
            """(partner) => {
              const out = {};
              const box = document.querySelector(`#funnel [data-partner='${partner}']`);
              for (const row of box.querySelectorAll('table.funnel-stages tbody tr')) {
                const stages = {};
                for (const td of row.querySelectorAll('td[data-stage]')) {
                  stages[td.dataset.stage] = Number(td.dataset.value);
                }
                out[row.dataset.arm] = { stages, rates: {} };
              }
              for (const row of box.querySelectorAll('table.funnel-rates tbody tr')) {
                for (const td of row.querySelectorAll('td[data-rate]')) {
                  out[row.dataset.arm].rates[td.dataset.rate] = [Number(td.dataset.numerator),
                    Number(td.dataset.denominator), td.dataset.low === '' ? null : Number(td.dataset.low),
                    td.dataset.high === '' ? null : Number(td.dataset.high)];
                }
              }
              return out;
            }""",
            partner_id,
        )
    )


def _expected(p: dict[str, Any]) -> dict[str, dict[str, Any]]:
    def one(f: dict[str, Any]) -> dict[str, Any]:
        return {
            "stages": {s: f["totals"][s] for s in STAGES},
            "rates": {
                r: [f["rates"][r]["numerator"], f["rates"][r]["denominator"], f["rates"][r]["ci_low"],
                    f["rates"][r]["ci_high"]]
                for r in RATES
            },
        }  # fmt: skip

    out = {"all": one(p)}
    for arm in p["arms"]:
        out["none" if arm["arm"] is None else arm["arm"]] = one(arm)
    return out


def _same(page: Any, api: dict[str, Any]) -> bool:
    return all(_shown(page, p["partner_id"]) == _expected(p) for p in api["partners"])


def _wait_until_same(page: Any, svc: Service, path: str, headers: dict[str, str], rounds: int = 60) -> None:
    """The page follows the API (it polls every few seconds): wait for it to show what the API says."""
    for _ in range(rounds):
        if _same(page, _api_funnel(svc, page, path, headers)):
            return
        page.wait_for_timeout(500)
    assert _same(page, _api_funnel(svc, page, path, headers))


def test_the_partners_funnel_is_the_apis_and_follows_new_traffic_without_a_reload(
    browser: Any, live: tuple[str, Service]
) -> None:
    site, svc = live
    _traffic(svc, 6, both_arms=True)
    svc.container.settler.run_once()
    page = new_page(browser)
    _sign_in(page, site, "/app/partner", "Partner API key", svc.partner()["X-API-Key"])
    api = _api_funnel(svc, page, "/api/v1/funnel", svc.partner())
    [bank] = api["partners"]
    assert bank["totals"]["recommendations"] >= 6 and bank["totals"]["settled"] >= 3
    assert len(bank["arms"]) == 2  # both arms of the experiment
    assert _shown(page, "bank") == _expected(bank)
    label = str(page.locator("#funnel svg.chart").get_attribute("aria-label"))
    assert f"{bank['totals']['recommendations']} recommendations" in label
    screenshot(page, "partner-funnel")

    # new traffic, and the page follows without being reloaded
    page.evaluate("() => { window.stillTheSamePage = true; }")
    before = bank["totals"]
    _traffic(svc, 3, convert_every=1)
    svc.container.settler.run_once()
    now = _api_funnel(svc, page, "/api/v1/funnel", svc.partner())["partners"][0]["totals"]
    assert now["recommendations"] == before["recommendations"] + 3
    assert now["settled"] == before["settled"] + 3
    _wait_until_same(page, svc, "/api/v1/funnel", svc.partner())
    assert page.evaluate("() => window.stillTheSamePage === true")  # no navigation happened
    assert "Updated" in page.locator("#funnel-status").inner_text()

    # paused on request (WCAG 2.2.2), and the window can be changed
    pause = page.get_by_role("button", name="Pause live updates")
    pause.click()
    assert pause.get_attribute("aria-pressed") == "true"
    assert page.locator("#funnel-status").inner_text() == "Live updates paused."
    pause.click()
    page.get_by_label("Window").select_option("minute")
    page.wait_for_function("() => document.querySelector('#funnel').dataset.bucket === 'minute'")
    _wait_until_same(page, svc, "/api/v1/funnel", svc.partner())
    assert page.locator("#funnel [data-partner='bank'] svg.chart").count() == 1
    assert page.js_errors == []


def test_the_operator_sees_every_funnel_and_replays_a_notification_that_kept_failing(
    browser: Any, live: tuple[str, Service]
) -> None:
    site, svc = live
    with Receiver(mode="fail") as receiver:
        r = svc.api.put("/api/v1/webhooks", json={"url": receiver.url}, headers=svc.partner("insurer"))
        assert r.status_code in (200, 201), r.text
        _traffic(svc, 2, convert_every=1, partner="insurer")
        for _ in range(200):  # the deliverer gives up after its attempts
            svc.container.deliverer.run_once()
            dead = svc.api.get(
                "/api/v1/operator/webhooks/deliveries?state=dead&partner_id=insurer", headers=svc.operator
            ).json()
            if dead["total"] == 2:
                break
            time.sleep(0.05)
        assert dead["total"] == 2

        page = new_page(browser)
        _sign_in(page, site, "/app/operator", "Operator API key", OPERATOR_KEY)
        api = _api_funnel(svc, page, "/api/v1/operator/funnel", svc.operator)
        assert {p["partner_id"] for p in api["partners"]} == {"bank", "insurer"}
        _wait_until_same(page, svc, "/api/v1/operator/funnel", svc.operator)
        assert page.locator("#funnel section[data-partner] h3").all_inner_texts() == [
            p["name"] for p in api["partners"]
        ]

        # the dead notifications as the API lists them; one replayed with its button, the receiver back
        page.wait_for_function("() => document.querySelector('#dead').dataset.total === '2'")
        shown = page.locator("#dead tr[data-id]").evaluate_all("(rows) => rows.map((r) => r.dataset.event)")
        assert sorted(shown) == sorted(d["event_id"] for d in dead["items"])
        target = dead["items"][0]
        receiver.mode = "ok"
        page.get_by_role(
            "button", name=f"Replay notification {target['id']} ({target['event']} to insurer)"
        ).click()
        page.wait_for_function("() => document.querySelector('#dead').dataset.total === '1'")
        assert f"Notification {target['id']} queued again." in page.locator("#dead-status").inner_text()
        for _ in range(100):
            svc.container.deliverer.run_once()
            if receiver.accepted():
                break
            time.sleep(0.05)
        assert [r.json["id"] for r in receiver.accepted()] == [target["event_id"]]
        screenshot(page, "operator-funnel")
        page.get_by_role("button", name="Replay all").click()
        page.wait_for_function("() => document.querySelector('#dead').dataset.total === '0'")
        assert page.js_errors == []


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_live_sections_fit_the_screen_label_every_control_and_pass_the_wcag_checks(
    browser: Any, live: tuple[str, Service], viewport: dict[str, int]
) -> None:
    site, svc = live
    opened: dict[str, Callable[[Any], None]] = {
        "partner": lambda p: _sign_in(p, site, "/app/partner", "Partner API key", svc.partner()["X-API-Key"]),
        "operator": lambda p: _sign_in(p, site, "/app/operator", "Operator API key", OPERATOR_KEY),
    }
    found = {}
    for name, open_page in opened.items():
        page = new_page(browser, viewport, bypass_csp=True)
        open_page(page)
        page.locator("#funnel svg.chart").first.wait_for()
        assert page.evaluate(OVERFLOW_JS) <= 0, f"{name} scrolls sideways"
        assert page.evaluate(UNLABELLED_CONTROLS_JS) == [], name
        found[name] = axe_violations(page)
        assert page.js_errors == [], name
    assert {k: v for k, v in found.items() if v} == {}
