"""The marketing funnel per partner and per experiment arm: the figures equal what the test itself did
through the API (recommendations, conversions, settlements, reversals, finality), the rates come with
their Wilson intervals, the periods add up, and the Prometheus series say the same. On SQLite and on
PostgreSQL (the periods are computed in SQL)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from statsmodels.stats.proportion import proportion_confint

from .conftest import Service

DAY = 86_400
STAGES = ("recommendations", "conversions", "settled", "final", "reversed")


def _traffic(svc: Service, learners: int = 12) -> dict[str, Any]:
    """Learners consent and are recommended to; every other one converts (some twice); two conversions are
    reversed on chain, one is cancelled before it settles; the rest become final. Returns what happened,
    per arm, as the test saw it."""
    bank = svc.partner()
    served: Counter[str | None] = Counter()
    converted_recs: Counter[str | None] = Counter()
    done: dict[str, Counter[str | None]] = {
        s: Counter() for s in ("conversions", "settled", "final", "reversed")
    }
    ids: list[tuple[int, str | None]] = []
    # A learner's arm follows from their random pseudonym, so keep recommending until each arm of the
    # experiment has served several learners; who converts counts within the arm, so every arm converts.
    arms = len(svc.settings.experiment[0]) or 1
    i = 0
    while i < learners or len(served) < arms or min(served.values()) < 4:
        assert i < 20 * learners, f"the experiment served only {dict(served)}"
        i += 1
        user = svc.new_user()
        svc.grant(user)
        rec = svc.api.post(
            "/api/v1/recommendations", json={"subject": user["pseudonym"]}, headers=bank
        ).json()
        arm = f"ranker-v1:{rec['arm']}" if rec["arm"] else None
        k = served[arm]
        served[arm] += 1
        if k % 2:
            continue
        converted_recs[arm] += 1
        for n in range(1 + (k % 4 == 0)):
            body = {
                "recommendation_id": rec["recommendation_id"],
                "order_id": f"f-{i}-{n}",
                "value": 10_000 + i,
            }
            r = svc.api.post("/api/v1/conversions", json=body, headers=bank)
            assert r.status_code == 202, r.text
            ids.append((r.json()["id"], arm))
            done["conversions"][arm] += 1
    cancelled, *rest = ids
    assert svc.api.post(f"/api/v1/conversions/{cancelled[0]}/reversal", headers=bank).status_code == 202
    svc.container.settler.run_once()
    for _cid, arm in rest:
        done["settled"][arm] += 1
    for cid, arm in rest[:2]:
        assert svc.api.post(f"/api/v1/conversions/{cid}/reversal", headers=bank).status_code == 202
        done["reversed"][arm] += 1
    svc.container.settler.run_once()
    svc.container.chain.increase_time(15 * DAY)
    svc.container.settler.run_once()
    for _cid, arm in rest[2:]:
        done["final"][arm] += 1
    return {"served": served, "converted_recs": converted_recs, **done}


def _check_rate(rate: dict[str, Any], numerator: int, denominator: int) -> None:
    assert (rate["numerator"], rate["denominator"]) == (numerator, denominator)
    if denominator == 0:  # nothing to divide: no rate and no interval, rather than a made-up one
        assert rate["rate"] is None and rate["ci_low"] is None and rate["ci_high"] is None
        return
    low, high = proportion_confint(numerator, denominator, alpha=0.05, method="wilson")
    assert rate["rate"] == pytest.approx(numerator / denominator, abs=1e-6)
    assert (rate["ci_low"], rate["ci_high"]) == pytest.approx((low, high), abs=1e-6)


def _check(funnel: dict[str, Any], saw: dict[str, Any], arm: Any) -> None:
    def count(key: str) -> int:
        c = saw[key]
        return sum(c.values()) if arm is ... else c[arm]

    totals = funnel["totals"]
    assert totals == {
        "recommendations": count("served"),
        "conversions": count("conversions"),
        "settled": count("settled"),
        "final": count("final"),
        "reversed": count("reversed"),
    }
    for stage in STAGES:  # the periods add up to the totals
        assert sum(b[stage] for b in funnel["series"]) == totals[stage]
    rates = funnel["rates"]
    _check_rate(rates["conversion"], count("converted_recs"), count("served"))
    _check_rate(rates["settlement"], count("settled"), count("conversions"))
    _check_rate(rates["finality"], count("final"), count("settled"))
    _check_rate(rates["reversal"], count("reversed"), count("settled"))


def _funnel_story(svc: Service) -> None:
    saw = _traffic(svc)
    r = svc.api.get("/api/v1/funnel", params={"bucket": "minute"}, headers=svc.partner())
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["bucket_s"] == 60 and report["ci_method"] == "wilson" and report["confidence"] == 0.95
    [bank] = report["partners"]
    assert bank["partner_id"] == "bank"
    _check(bank, saw, ...)
    arms = {a["arm"]: a for a in bank["arms"]}
    assert set(arms) == set(saw["served"]) and len(arms) == 2  # both arms of the experiment served
    for arm, funnel in arms.items():
        _check(funnel, saw, arm)
    starts = [b["start"] for b in bank["series"]]
    assert all(s % 60 == 0 for s in starts) and starts == list(range(starts[0], starts[-1] + 60, 60))
    assert len(starts) == 24 and report["since"] <= starts[-1] < report["until"]

    # the operator sees every partner; the insurer has nothing yet
    everyone = svc.api.get("/api/v1/operator/funnel", headers=svc.operator).json()
    by_partner = {p["partner_id"]: p for p in everyone["partners"]}
    assert set(by_partner) == {"bank", "insurer"}
    assert by_partner["bank"]["totals"] == bank["totals"]
    assert by_partner["insurer"]["totals"] == dict.fromkeys(STAGES, 0)
    assert by_partner["insurer"]["rates"]["conversion"]["rate"] is None

    # all-time Prometheus series per partner, the same numbers
    metrics = svc.api.get("/metrics").text
    served = re.search(r'knowledger_funnel_recommendations_total\{partner="bank"\} (\S+)', metrics)
    assert served is not None and float(served.group(1)) == bank["totals"]["recommendations"]
    for stage, name in (("conversions", "reported"), ("settled", "settled"), ("final", "final")):
        found = re.search(
            rf'knowledger_funnel_conversions_total\{{partner="bank",stage="{name}"\}} (\S+)', metrics
        )
        assert found is not None and float(found.group(1)) == bank["totals"][stage]


def test_the_funnel_per_partner_and_arm_is_what_happened(make_service: Callable[..., Service]) -> None:
    _funnel_story(make_service(experiment_arms="hybrid=0.5,popularity=0.5"))


def test_the_funnel_on_postgresql(make_service: Callable[..., Service], pg_url: str) -> None:
    _funnel_story(make_service(database_url=pg_url, experiment_arms="hybrid=0.5,popularity=0.5"))


def test_a_window_is_checked_and_the_periods_cover_it(service: Service) -> None:
    bank = service.partner()
    r = service.api.get("/api/v1/funnel", params={"since": 100, "until": 100}, headers=bank)
    assert r.status_code == 422 and r.json()["error"]["details"]["field"] == "since"
    r = service.api.get(
        "/api/v1/funnel", params={"since": 0, "until": 10**9, "bucket": "minute"}, headers=bank
    )
    assert r.status_code == 422 and "at most 1000" in r.json()["error"]["message"]
    r = service.api.get(
        "/api/v1/funnel", params={"since": 7 * DAY + 5, "until": 9 * DAY, "bucket": "day"}, headers=bank
    )
    assert r.status_code == 200, r.text
    assert [b["start"] for b in r.json()["partners"][0]["series"]] == [7 * DAY, 8 * DAY]
    assert (
        service.api.get("/api/v1/operator/funnel?partner_id=nobody", headers=service.operator).status_code
        == 404
    )
    assert service.api.get("/api/v1/operator/funnel", headers=bank).status_code == 403
    assert service.api.get("/api/v1/funnel", headers=service.operator).status_code == 403
