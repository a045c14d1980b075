"""A small platform played through the API: seeded learners sign in, consent, get recommendations, and
partners report the conversions the demo world says they would make.

Everything goes through the service's HTTP API, as a platform and its partners would drive it; the demo
world's held-out conversions stand in for the learners' decisions.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from backend.models import User

PURPOSES = ("profiling", "product_recommendation")


def seeded_learners(service: Any) -> list[tuple[str, str, str]]:
    """(internal id, platform id, pseudonym) of the seeded learners, in creation order."""
    with Session(service.container.engine) as s:
        rows = s.exec(
            select(col(User.id), col(User.platform_user_id), col(User.pseudonym))
            .where(col(User.erased_at).is_(None), col(User.platform_user_id).is_not(None))
            .order_by(col(User.created_at))
        ).all()
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def sign_in(service: Any, user_id: str) -> dict[str, str]:
    r = service.api.post(f"/api/v1/users/{user_id}/token", headers=service.operator)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def play(service: Any, partners: tuple[str, ...] = ("bank", "insurer"), k: int = 5) -> dict[str, int]:
    """Every seeded learner consents to each partner, gets a recommendation from it, and converts on the
    recommended product the demo world says they take up (or, for every third learner without one, on the
    first product shown). Returns counts."""
    split = service.split
    future: dict[str, set[str]] = {}
    for u, platform_id in enumerate(split.user_ids):
        products = split.test[u].indices.tolist() + split.train.interactions[u].indices.tolist()
        future[platform_id] = {split.product_ids[p] for p in products}
    counts = {"learners": 0, "recommendations": 0, "conversions": 0}
    for n, (user_id, platform_id, pseudonym) in enumerate(seeded_learners(service)):
        headers = sign_in(service, user_id)
        counts["learners"] += 1
        for partner in partners:
            for purpose in PURPOSES:
                r = service.api.put(f"/api/v1/me/consents/{partner}/{purpose}", headers=headers)
                assert r.status_code == 201, r.text
            r = service.api.post(
                "/api/v1/recommendations",
                json={"subject": pseudonym, "k": k},
                headers=service.partner(partner),
            )
            assert r.status_code == 200, r.text
            rec = r.json()
            counts["recommendations"] += 1
            shown = [p["product_id"] for p in rec["products"]]
            taken = [p for p in shown if p in future.get(platform_id, set())]
            if not taken and n % 3 == 0 and shown:
                taken = shown[:1]
            if taken:
                r = service.api.post(
                    "/api/v1/conversions",
                    json={
                        "recommendation_id": rec["recommendation_id"],
                        "order_id": f"order-{rec['recommendation_id']}",
                        "value": 50_000,
                        "product_id": taken[0],
                    },
                    headers=service.partner(partner),
                )
                assert r.status_code in (201, 202), r.text
                counts["conversions"] += 1
    return counts
