"""Operator insights: the A/B experiment inside the recommendation service (assignment, the popularity
arm, the analysis and its SRM check) and the model/benchmark endpoints. Real chain, real database."""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError
from sqlmodel import Session, select

from backend.api import deps
from backend.core.config import Settings, describe_settings_error
from backend.models import Profile, Recommendation
from backend.services.experiment import MIN_UNITS_PER_ARM, ExperimentService
from backend.services.insights import InsightsService
from backend.services.recommend import RecommendationService
from recommender.abtest import analyze, assign, srm_check
from recommender.profiles import Profile as LearnerProfile
from recommender.serving import ProductRanker

from .conftest import Demo, Service, _start

ARMS = "hybrid=0.5,popularity=0.5"
EXPERIMENT = "/api/v1/operator/experiment"
MODEL = "/api/v1/operator/model"
PLOT = "/api/v1/operator/reports/recommender_comparison.png"


@pytest.fixture(scope="module")
def exp(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service started with an experiment running (the settings a deployment would give it)."""
    svc = _start(
        demo,
        tmp_path_factory.mktemp("exp"),
        experiment_arms=ARMS,
        reports_dir=tmp_path_factory.mktemp("reports"),
        n_users=5,
    )
    yield svc
    svc.container.close()


def configure(monkeypatch: pytest.MonkeyPatch, svc: Service, **changes: Any) -> Settings:
    """Run the service under changed settings for one test (validated like the real ones): the services
    that read them are rebuilt with the new settings and put in through FastAPI's dependency overrides."""
    settings = Settings(**{**svc.settings.model_dump(), **changes}, _env_file=None)  # type: ignore[call-arg]
    c = svc.container
    replacements = {
        deps.get_experiment: ExperimentService(c.engine, settings.experiment_name, settings.experiment),
        deps.get_recommendations: RecommendationService(
            c.engine,
            c.gateway,
            c.directory,
            c.model,
            c.profile_refresher,
            settings.experiment_name,
            settings.experiment,
        ),
        deps.get_insights: InsightsService(c.model, settings.reports_dir),
    }
    overrides = svc.api.app.dependency_overrides  # type: ignore[attr-defined]
    for dependency, service in replacements.items():
        monkeypatch.setitem(overrides, dependency, _provider(service))
    return settings


def _provider(service: Any) -> Callable[[], Any]:
    def provide() -> Any:
        return service

    return provide


def strict_json(text: str) -> Any:
    """Parse JSON refusing NaN and Infinity (which the standard library would accept)."""

    def refuse(token: str) -> Any:
        raise AssertionError(f"{token} in the JSON")

    return json.loads(text, parse_constant=refuse)


def get(svc: Service, url: str) -> dict[str, Any]:
    r = svc.api.get(url, headers=svc.operator)
    assert r.status_code == 200, r.text
    body = strict_json(r.text)
    assert isinstance(body, dict)
    return body


def recommend(svc: Service, pseudonym: str, k: int = 3) -> dict[str, Any]:
    r = svc.api.post(
        "/api/v1/recommendations", json={"subject": pseudonym, "k": k}, headers=svc.partner("bank")
    )
    assert r.status_code == 200, r.text
    return r.json()


def convert(svc: Service, rec_id: str, order_id: str, value: int) -> dict[str, Any]:
    r = svc.api.post(
        "/api/v1/conversions",
        json={"recommendation_id": rec_id, "order_id": order_id, "value": value},
        headers=svc.partner("bank"),
    )
    assert r.status_code == 202, r.text
    return r.json()


def rows_of(svc: Service, pseudonym: str) -> list[Recommendation]:
    with Session(svc.container.engine) as s:
        return list(s.exec(select(Recommendation).where(Recommendation.pseudonym == pseudonym)).all())


def insert_rows(svc: Service, tag: str, n: int) -> None:
    """``n`` recommendations to ``n`` new pseudonyms under the arm tag ``tag`` (``experiment:arm``)."""
    with Session(svc.container.engine) as s:
        for _ in range(n):
            s.add(
                Recommendation(
                    id="rec_" + secrets.token_hex(10),
                    pseudonym="0x" + secrets.token_hex(32),
                    partner_id="bank",
                    products=[],
                    model_version="test",
                    consent_block=1,
                    served_at=1,
                    arm=tag,
                )
            )
        s.commit()


# ---------------------------------------------------------------------------------------------- settings
@pytest.mark.parametrize(
    "value",
    [
        "hybrid=1",
        "hybrid=0.5,random=0.5",
        "hybrid=0,popularity=1",
        "hybrid=-1,popularity=1",
        "hybrid=x,popularity=1",
        "hybrid=nan,popularity=1",
        "hybrid=0.5,hybrid=0.5",
        "hybrid,popularity",
    ],
)
def test_a_bad_experiment_arms_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("KNOWLEDGER_EXPERIMENT_ARMS", value)
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None)  # type: ignore[call-arg]
    assert describe_settings_error(info.value).startswith("bad setting: KNOWLEDGER_EXPERIMENT_ARMS:")


def test_experiment_settings_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).experiment == ((), ())  # type: ignore[call-arg]
    monkeypatch.setenv("KNOWLEDGER_EXPERIMENT_ARMS", " popularity=1, hybrid=3 ")
    assert Settings(_env_file=None).experiment == (("popularity", "hybrid"), (1.0, 3.0))  # type: ignore[call-arg]
    monkeypatch.setenv("KNOWLEDGER_EXPERIMENT_NAME", "x" * 22)  # the stored tag must fit 32 characters
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None)  # type: ignore[call-arg]
    assert describe_settings_error(info.value).startswith("bad setting: KNOWLEDGER_EXPERIMENT_NAME:")


# ---------------------------------------------------------------------------------------------- auth
@pytest.mark.parametrize("url", [EXPERIMENT, MODEL, PLOT])
def test_insights_are_for_the_operator_only(exp: Service, url: str) -> None:
    for headers, status, code in (
        ({}, 401, "unauthenticated"),
        ({"X-API-Key": "op_not_the_key_0123456789"}, 401, "unauthenticated"),
        (exp.partner("bank"), 403, "forbidden"),
    ):
        r = exp.api.get(url, headers=headers)
        assert r.status_code == status, r.text
        assert r.json()["error"]["code"] == code


# ---------------------------------------------------------------------------------------------- ranker
def test_the_baseline_ranks_by_item_bias_with_ties_by_index(exp: Service) -> None:
    ranker = exp.container.model.ranker
    assert ranker is not None
    features = np.zeros(ranker.feature_dim, dtype=np.float32)
    candidates = exp.container.directory.partner_products("bank", exp.container.model.served)
    default = ranker.rank(features, k=4, candidates=candidates)
    assert default == ranker.rank(features, k=4, candidates=candidates, baseline=False)

    bias = np.asarray(ranker.arrays["item_bias"], dtype=np.float64)
    order = [int(i) for i in np.argsort(-bias, kind="stable") if int(i) in set(candidates)]
    ranked = ranker.rank(features, k=4, candidates=candidates, baseline=True)
    assert [r.index for r in ranked] == order[:4]
    assert [r.score for r in ranked] == pytest.approx([float(bias[i]) for i in order[:4]])
    assert all(r.explanation is not None for r in ranked)

    flat = ProductRanker(
        {**ranker.arrays, "item_bias": np.zeros_like(ranker.arrays["item_bias"])},
        ranker.metadata,
        ranker.knowledge,
    )
    tied = flat.rank(features, k=5, candidates=candidates, history=[candidates[0]], baseline=True)
    assert [r.index for r in tied] == sorted(candidates)[1:6]


# ---------------------------------------------------------------------------------------------- experiment
def test_without_an_experiment_nothing_is_assigned(exp: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    configure(monkeypatch, exp, experiment_arms="")
    user = exp.new_user()
    exp.grant(user)
    rec = recommend(exp, user["pseudonym"])
    assert rec["arm"] is None
    assert [row.arm for row in rows_of(exp, user["pseudonym"])] == [None]
    body = get(exp, EXPERIMENT)
    assert body["running"] is False and body["verdict"] == "no experiment running"
    assert body["arms"] == [] and body["comparison"] is None and body["srm"] is None


def test_an_experiment_through_the_api_assigns_serves_and_is_analysed(exp: Service) -> None:
    ranker = exp.container.model.ranker
    assert ranker is not None
    k = 3
    bank = {
        p["id"] for p in exp.api.get("/api/v1/products", params={"partner_id": "bank"}).json()["products"]
    }
    bias = np.asarray(ranker.arrays["item_bias"], dtype=np.float64)
    by_bias = [ranker.product_ids[i] for i in np.argsort(-bias, kind="stable")]
    popular = [p for p in by_bias if p in bank][:k]

    # the test's own books, kept independently of the service's tables
    served: dict[str, set[str]] = {"hybrid": set(), "popularity": set()}
    requests = {"hybrid": 0, "popularity": 0}
    converted: dict[str, set[str]] = {"hybrid": set(), "popularity": set()}
    conversions = {"hybrid": 0, "popularity": 0}
    value = {"hybrid": 0, "popularity": 0}

    for i in range(24):
        user = exp.new_user()
        exp.grant(user)
        pseudonym = user["pseudonym"]
        expected = assign(pseudonym[2:], "ranker-v1", ["hybrid", "popularity"], [0.5, 0.5])
        recs = [recommend(exp, pseudonym, k) for _ in range(2 if i % 2 == 0 else 1)]
        for rec in recs:
            assert rec["arm"] == expected  # sticky: the same learner, the same arm, every time
            names = [p["product_id"] for p in rec["products"]]
            assert set(names) <= bank
            assert all(p["explanation"]["topics"] for p in rec["products"])
            if expected == "popularity":
                assert names == popular
            else:
                with Session(exp.container.engine) as s:
                    profile = s.get(Profile, user["id"])
                assert profile is not None
                model = ranker.rank(
                    LearnerProfile.from_dict(profile.data).features(),
                    k=k,
                    course_indices=profile.course_indices,
                    candidates=exp.container.directory.partner_products("bank", exp.container.model.served),
                )
                assert names == [r.product_id for r in model]
        assert [row.arm for row in rows_of(exp, pseudonym)] == [f"ranker-v1:{expected}"] * len(recs)
        served[expected].add(pseudonym)
        requests[expected] += len(recs)

        if i % 3 == 0:  # converts (twice for some learners: still one converter)
            for n in range(2 if i % 6 == 0 else 1):
                convert(exp, recs[-1]["recommendation_id"], f"order-{i}-{n}", 10_000 + i)
                converted[expected].add(pseudonym)
                conversions[expected] += 1
                value[expected] += 10_000 + i
        elif i in (1, 5):  # converts, then the partner cancels it before settlement (rejected)
            row = convert(exp, recs[0]["recommendation_id"], f"cancelled-{i}", 99_999)
            r = exp.api.post(f"/api/v1/conversions/{row['id']}/reversal", headers=exp.partner("bank"))
            assert r.status_code == 202 and r.json()["state"] == "rejected", r.text

    assert served["hybrid"] and served["popularity"], "24 learners all fell in one arm"
    body = get(exp, EXPERIMENT)
    assert body["experiment"] == "ranker-v1" and body["running"] is True
    assert (body["control"], body["treatment"]) == ("hybrid", "popularity")
    arms = {a["arm"]: a for a in body["arms"]}
    assert list(arms) == ["hybrid", "popularity"]
    for arm in ("hybrid", "popularity"):
        a = arms[arm]
        units, conv = len(served[arm]), len(converted[arm])
        assert a["weight"] == 0.5
        assert (a["units"], a["converters"], a["recommendations"]) == (units, conv, requests[arm])
        assert (a["conversions"], a["conversion_value"]) == (conversions[arm], value[arm])
        assert a["rate"] == pytest.approx(conv / units, abs=1e-6)  # reported to 6 decimals
        assert a["rate_ci_low"] <= a["rate"] <= a["rate_ci_high"]
    assert body["total_units"] == 24 and body["crossed_units"] == 0

    ref = analyze(
        len(converted["hybrid"]),
        len(served["hybrid"]),
        len(converted["popularity"]),
        len(served["popularity"]),
    )
    c = body["comparison"]
    assert c["difference"] == pytest.approx(
        len(converted["popularity"]) / len(served["popularity"])
        - len(converted["hybrid"]) / len(served["hybrid"]),
        abs=1e-6,
    )
    assert c["p_value"] == pytest.approx(ref.p_value, abs=1e-6)
    assert c["ci_low"] == pytest.approx(ref.ci_low, abs=1e-6) and c["ci_high"] == pytest.approx(
        ref.ci_high, abs=1e-6
    )
    assert c["significant"] is ref.significant

    srm = srm_check([len(served["hybrid"]), len(served["popularity"])], [0.5, 0.5])
    assert body["srm"]["p_value"] == pytest.approx(srm.p_value, abs=1e-6)
    assert body["srm"]["observed"] == {
        "hybrid": len(served["hybrid"]),
        "popularity": len(served["popularity"]),
    }
    assert body["srm"]["expected"] == {"hybrid": 12.0, "popularity": 12.0}
    if srm.mismatch:
        assert body["verdict"].startswith("sample-ratio mismatch")
    elif min(len(s) for s in served.values()) < MIN_UNITS_PER_ARM:
        assert body["verdict"] == f"not enough data: 24 units (at least {MIN_UNITS_PER_ARM} per arm needed)"
    else:
        diff = c["difference"]
        direction = "higher than" if diff > 0 else "lower than" if diff < 0 else "the same as"
        assert body["verdict"].startswith("popularity converts ") and f"{direction} hybrid" in body["verdict"]


def test_a_sample_ratio_mismatch_voids_the_comparison(exp: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    """Data as a 0.9/0.1 split would assign it: flagged under the planned 0.5/0.5, fine under 0.9/0.1."""
    insert_rows(exp, "srm-check:hybrid", 90)
    insert_rows(exp, "srm-check:popularity", 10)
    configure(monkeypatch, exp, experiment_name="srm-check", experiment_arms=ARMS)
    body = get(exp, EXPERIMENT)
    assert [a["units"] for a in body["arms"]] == [90, 10]
    assert body["srm"]["mismatch"] is True and body["srm"]["p_value"] < 0.001
    assert body["srm"]["expected"] == {"hybrid": 50.0, "popularity": 50.0}
    assert body["verdict"].startswith(
        "sample-ratio mismatch: the split is broken, do not read the comparison"
    )
    assert body["comparison"] is not None  # shown, but the verdict says not to read it

    configure(monkeypatch, exp, experiment_name="srm-check", experiment_arms="hybrid=0.9,popularity=0.1")
    body = get(exp, EXPERIMENT)
    assert body["srm"]["mismatch"] is False
    assert [a["weight"] for a in body["arms"]] == [0.9, 0.1]
    # no conversions at all: a zero-variance comparison, still finite numbers and a reading
    assert body["comparison"]["difference"] == 0 and body["comparison"]["p_value"] == 1
    assert body["verdict"].startswith("popularity converts the same as hybrid")


def test_no_data_and_one_arm_only_answer_without_errors(
    exp: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, exp, experiment_name="empty-exp", experiment_arms=ARMS)
    body = get(exp, EXPERIMENT)
    assert body["running"] is True and body["total_units"] == 0
    assert body["verdict"] == f"not enough data: 0 units (at least {MIN_UNITS_PER_ARM} per arm needed)"
    assert body["comparison"] is None and body["srm"] is None
    assert all(a["rate"] is None and a["rate_ci_low"] is None for a in body["arms"])

    insert_rows(exp, "empty-exp:popularity", 3)
    body = get(exp, EXPERIMENT)
    assert [a["units"] for a in body["arms"]] == [0, 3]
    assert body["comparison"] is None
    assert body["srm"]["mismatch"] is False
    assert body["verdict"].startswith("not enough data: 3 units")


# ---------------------------------------------------------------------------------------------- model
def test_the_model_endpoint_without_a_benchmark(
    exp: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, exp, reports_dir=tmp_path / "none")
    ranker = exp.container.model.ranker
    assert ranker is not None
    body = get(exp, MODEL)
    model = body["model"]
    assert body["loaded"] is True
    assert model["version"] == ranker.metadata.version and model["model_name"] == "hybrid"
    assert model["trained_at"] == ranker.metadata.created_at
    assert model["feature_dim"] == ranker.feature_dim and model["n_products"] == ranker.n_products
    assert "ndcg@10" in model["metrics"]  # recorded at training time
    assert body["benchmark"] is None and body["benchmark_hint"] == "run make bench-recommender"
    assert body["plot"] == {"available": False, "url": PLOT}

    r = exp.api.get(PLOT, headers=exp.operator)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert "make bench-recommender" in r.json()["error"]["message"]


def test_the_model_endpoint_summarises_the_latest_benchmark(
    exp: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics = {"ndcg@10": 0.41, "map": 0.2, "precision@10": 0.3, "recall@10": 0.5, "train_s": 1.5, "auc": 0.9}
    bench = {
        "datasets": {
            "demo": {
                "models": {"hybrid": metrics, "popularity": {**metrics, "ndcg@10": 0.2, "map": float("nan")}},
                "seconds": 3.2,
                "ground_truth": {"recovery": 0.7},
            },
            "ml-100k": {"error": "FileNotFoundError: no data", "models": {}},
        },
        "serving": {"n_products": 1000, "ms_per_user": 0.21, "meets_target": True},
        "environment": {"python": "3.12.0", "cpu_count": 2, "fast": True},
        "seconds": 12.5,
        "plot": "reports/recommender_comparison.png",
    }
    (tmp_path / "recommender_benchmark.json").write_text(json.dumps(bench), encoding="utf-8")
    png = b"\x89PNG\r\n\x1a\n" + secrets.token_bytes(64)
    (tmp_path / "recommender_comparison.png").write_bytes(png)
    written = dt.datetime(2026, 11, 30, 12, 0, 0, tzinfo=dt.UTC)
    os.utime(tmp_path / "recommender_benchmark.json", (written.timestamp(), written.timestamp()))
    configure(monkeypatch, exp, reports_dir=tmp_path)

    body = get(exp, MODEL)
    b = body["benchmark"]
    assert "benchmark_hint" not in body
    assert b["generated_at"] == "2026-11-30T12:00:00Z"
    assert b["datasets"]["demo"]["models"]["hybrid"] == {
        "ndcg@10": 0.41,
        "map": 0.2,
        "precision@10": 0.3,
        "recall@10": 0.5,
    }
    assert b["datasets"]["demo"]["models"]["popularity"]["map"] is None  # NaN in the file: null here
    assert b["datasets"]["ml-100k"] == {"models": {}, "error": "FileNotFoundError: no data", "seconds": None}
    assert b["serving"] == bench["serving"] and b["seconds"] == 12.5
    assert body["plot"] == {"available": True, "url": PLOT}

    r = exp.api.get(PLOT, headers=exp.operator)
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png" and r.content == png

    (tmp_path / "recommender_benchmark.json").write_text("{not json", encoding="utf-8")
    body = get(exp, MODEL)
    assert body["benchmark"] is None and "unreadable" in body["benchmark_error"]
