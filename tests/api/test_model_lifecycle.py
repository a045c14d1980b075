"""The model lifecycle on the platform's own data: train from what was ingested and reported, register the
version with its held-out metrics, promote it through the quality gate with requests in flight, follow it
from another process's registry view, roll back."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import Session, select

from backend.models import ModelStatus, ModelVersion, Profile
from backend.services.lifecycle import ModelLifecycle, gate_verdict
from backend.services.model import ModelSlot
from backend.services.profiles import ProfileRefresher
from backend.services.registry import ModelRegistry

from ._platform import play, seeded_learners
from .conftest import Demo, Service, _start


@pytest.fixture(scope="module")
def platform(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = _start(demo, tmp_path_factory.mktemp("lifecycle"), n_users=240, promotion_tolerance=1.0)
    yield svc
    svc.container.close()


def _wait_trained(service: Service, version: str) -> dict[str, Any]:
    service.container.trainer.wait(timeout=900)
    r = service.api.get(f"/api/v1/models/versions/{version}", headers=service.operator)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _recommend(service: Service, pseudonym: str) -> Any:
    return service.api.post(
        "/api/v1/recommendations", json={"subject": pseudonym, "k": 3}, headers=service.partner("bank")
    )


def test_training_needs_reported_conversions(platform: Service) -> None:
    r = platform.api.post("/api/v1/models", json={}, headers=platform.operator)
    assert r.status_code == 422, r.text
    assert "conversions" in r.json()["error"]["message"]
    # the registry holds only the adopted demo artifact, serving
    body = platform.api.get("/api/v1/models", headers=platform.operator).json()
    assert [v["status"] for v in body["versions"]] == ["served"]
    assert body["served"] == platform.container.model.version
    assert [e["action"] for e in body["history"]] == ["imported"]


def test_train_promote_under_load_follow_and_roll_back(platform: Service) -> None:
    counts = play(platform)
    assert counts["conversions"] >= 30, counts
    old = platform.container.model.version
    assert old is not None

    r = platform.api.post("/api/v1/models", json={"epochs": 2}, headers=platform.operator)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "training"
    version = r.json()["version"]
    row = _wait_trained(platform, version)
    assert row["status"] == "candidate", row
    assert row["source"] == "ingested"
    assert row["trained_on"]["conversions"] == counts["conversions"]
    assert row["trained_on"]["split"] == row["gate"]["split"]
    scores = row["gate"]["scores"]
    # both versions were scored on the same held-out queries, through their own serving path
    assert scores["candidate"]["n_users"] == scores["served"]["n_users"] > 0
    assert row["gate"]["served_version"] == old
    assert row["metrics"]["ndcg@10"] == scores["candidate"]["ndcg@10"]
    assert row["artifact_sha256"] and row["artifact_bytes"] > 0

    # requests in flight while the model is promoted: none fails, each names one of the two versions
    learners = [p for _, _, p in seeded_learners(platform)][:20]
    seen: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def load() -> None:
        i = 0
        while not stop.is_set():
            resp = _recommend(platform, learners[i % len(learners)])
            seen.append((resp.status_code, resp.json().get("model_version")))
            i += 1

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    while len(seen) < 30:
        time.sleep(0.01)
    r = platform.api.post(f"/api/v1/models/versions/{version}/promote", json={}, headers=platform.operator)
    assert r.status_code == 200, r.text
    assert r.json()["previous"] == old and r.json()["gate"]["passed"] is True
    after = len(seen)
    while len(seen) < after + 30:
        time.sleep(0.01)
    stop.set()
    for t in threads:
        t.join()
    assert {code for code, _ in seen} == {200}
    assert {v for _, v in seen} <= {old, version}
    assert all(v == version for _, v in seen[after + 3 :])  # the in-flight few may still be the old one
    assert platform.container.model.version == version

    # a learner's profile now names the new version (derived again for it, from their events)
    platform.container.models.wait_rebuilt(timeout=600)
    with Session(platform.container.engine) as s:
        versions = {p.model_version for p in s.exec(select(Profile)).all()}
    assert versions == {version}

    # another process sharing the database follows the promotion from the registry
    other = ModelSlot(platform.container.model.served)
    other.swap(platform.container.models.registry.load(old))
    registry = ModelRegistry(platform.container.engine, platform.settings.state_dir / "other-cache")
    follower = ModelLifecycle(
        registry, other, ProfileRefresher(platform.container.engine, other, registry.product_rows)
    )
    assert follower.follow() is True and other.version == version
    assert follower.follow() is False

    # rollback: the old version serves again, the history says so
    r = platform.api.post("/api/v1/models/rollback", headers=platform.operator)
    assert r.status_code == 200, r.text
    assert r.json() == {"version": old, "previous": version, "gate": None, "forced": False}
    assert _recommend(platform, learners[0]).json()["model_version"] == old
    body = platform.api.get("/api/v1/models", headers=platform.operator).json()
    assert body["served"] == old
    assert [e["action"] for e in body["history"]][:3] == ["rolled_back", "promoted", "imported"]
    statuses = {v["version"]: v["status"] for v in body["versions"]}
    assert statuses == {old: "served", version: "retired"}
    # and a second rollback goes forward again (the version served before the current one)
    r = platform.api.post("/api/v1/models/rollback", headers=platform.operator)
    assert r.status_code == 200 and r.json()["version"] == version


def test_an_uploaded_profile_from_another_model_is_refused_with_a_reason(platform: Service) -> None:
    user = platform.new_user()  # an uploaded profile, no events
    platform.grant(user)
    with Session(platform.container.engine) as s:
        stored = s.get(Profile, user["id"])
        assert stored is not None
        stored.model_version = "an-older-version"
        s.add(stored)
        s.commit()
    r = _recommend(platform, user["pseudonym"])
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "profile_outdated"
    assert "upload it again" in r.json()["error"]["message"]


def test_promotion_refusals_name_the_reason(platform: Service) -> None:
    r = platform.api.post("/api/v1/models/versions/nope/promote", json={}, headers=platform.operator)
    assert r.status_code == 404
    served = platform.container.model.version
    r = platform.api.post(f"/api/v1/models/versions/{served}/promote", json={}, headers=platform.operator)
    assert r.status_code == 409 and "served" in r.json()["error"]["message"]
    r = platform.api.post("/api/v1/models", json={"epochs": 0}, headers=platform.operator)
    assert r.status_code == 422
    r = platform.api.get("/api/v1/models", headers=platform.partner())
    assert r.status_code == 403


def _row(version: str, **fields: Any) -> ModelVersion:
    return ModelVersion(version=version, model_name="hybrid", source="ingested", **fields)


def test_the_gate_compares_scores_on_the_same_split_only() -> None:
    served = _row("s1", status=ModelStatus.SERVED, metrics={"ndcg@10": 0.30}, trained_on={"split": "a"})
    scored = {"candidate": {"ndcg@10": 0.25}, "served": {"ndcg@10": 0.31}}
    worse = _row("c1", gate={"served_version": "s1", "split": "b", "scores": scored})
    verdict = gate_verdict(worse, served, "ndcg@10", 0.005)
    assert verdict["passed"] is False
    assert (verdict["candidate"], verdict["served"], verdict["split"]) == (0.25, 0.31, "b")
    assert gate_verdict(worse, served, "ndcg@10", 0.06)["passed"] is True  # within the tolerance

    # scored against another served version: the recorded metrics count only on the same split
    stale = _row("c2", gate={"served_version": "s0", "scores": scored}, trained_on={"split": "z"})
    verdict = gate_verdict(stale, served, "ndcg@10", 0.005)
    assert verdict["passed"] is False and "same held-out split" in verdict["reason"]
    same_split = _row("c3", metrics={"ndcg@10": 0.31}, trained_on={"split": "a"})
    assert gate_verdict(same_split, served, "ndcg@10", 0.0)["passed"] is True
    assert gate_verdict(same_split, None, "ndcg@10", 0.0) == {
        "passed": True,
        "reason": "no model serves yet",
        "metric": "ndcg@10",
    }
