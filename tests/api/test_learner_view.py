"""A learner sees their own profile: segment, topics, propensities, and the courses behind each reason; a
partner still sees topics and keywords only."""

from __future__ import annotations

from .conftest import Service


def test_a_learner_sees_their_segment_and_the_courses_behind_each_reason(service: Service) -> None:
    user = service.new_user()
    view = service.api.get("/api/v1/me/profile", headers=user["headers"]).json()
    assert view["has_profile"] and view["segment"]
    assert view["model_version"] == service.container.model.version
    assert view["topics"] and all(t["weight"] > 0 for t in view["topics"])
    assert set(view["propensities"]) and all(0 <= p <= 1 for p in view["propensities"].values())
    assert view["courses"] and all(c["title"] for c in view["courses"])
    assert view["recommendations"] == []  # no partner may recommend yet: nothing shown for any
    service.grant(user)
    view = service.api.get("/api/v1/me/profile", headers=user["headers"]).json()
    assert [r["partner_id"] for r in view["recommendations"]] == ["bank"]
    products = view["recommendations"][0]["products"]
    assert products and any(p["courses"] for p in products)
    own = {c["item_id"] for c in view["courses"]}
    assert {c["item_id"] for p in products for c in p["courses"]} <= own
    # the partner, for the same learner, gets topics and keywords, never the courses
    r = service.api.post(
        "/api/v1/recommendations", json={"subject": user["pseudonym"]}, headers=service.partner()
    ).json()
    assert all(set(p["explanation"]) == {"topics", "keywords"} for p in r["products"])
    assert not any(c["title"] in str(r) for c in view["courses"])
