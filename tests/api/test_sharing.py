"""Data sharing and marketing audiences: the two purposes beyond recommendations, each checked on chain in the
request, logged with its block, and replayed by the auditor (who catches a planted violation of each).

Real components throughout: the embedded chain, SQLite (and PostgreSQL for the segment query), the service's
HTTP API; the audit reads the chain at each logged block."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from backend.audit import answers_from_database, export_log, header_from_database, read_log, replay
from recommender.profiles import BEHAVIOUR_FEATURES

from .conftest import Service

SHARING = ("data_sharing",)
MARKETING = ("marketing_contact",)


def _export(svc: Service, subject: str, partner: str = "bank") -> Any:
    return svc.api.post("/api/v1/exports", json={"subject": subject}, headers=svc.partner(partner))


def _audience(svc: Service, partner: str = "bank", **body: Any) -> Any:
    return svc.api.post(
        "/api/v1/audiences", json={"campaign": "spring", **body}, headers=svc.partner(partner)
    )


def _revoke(svc: Service, user: dict[str, Any], purpose: str, partner: str = "bank") -> None:
    r = svc.api.delete(f"/api/v1/me/consents/{partner}/{purpose}", headers=user["headers"])
    assert r.status_code == 200, r.text


# ---------------------------------------------------------------------------------------------- data sharing
def test_features_are_shared_only_with_data_sharing_consent_checked_on_chain(service: Service) -> None:
    user = service.new_user()
    service.grant(user)  # profiling and product recommendation: not enough to share
    refused = _export(service, user["pseudonym"])
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["code"] == "consent_required" and error["details"]["missing"] == ["data_sharing"]

    service.grant(user, purposes=SHARING)
    r = _export(service, user["pseudonym"])
    assert r.status_code == 201, r.text
    body = r.json()
    head = service.container.chain.head()
    assert body["consent"]["verified_at_block"] == head.number
    assert "data_sharing" in body["consent"]["purposes"]
    assert body["subject"] == user["pseudonym"] and body["partner_id"] == "bank"

    # what was shared is the stored profile's derived features, named, and nothing else
    stored = service.api.get("/api/v1/me/export", headers=user["headers"]).json()["profile"]["data"]
    features = body["features"]
    topics = len(stored["topics"])
    assert features["feature_names"] == [f"topic_{i}" for i in range(topics)] + list(BEHAVIOUR_FEATURES)
    expected = stored["topics"] + [stored["behaviour"][k] for k in BEHAVIOUR_FEATURES]
    assert features["vector"] == pytest.approx(expected)
    assert (features["segment"], features["segment_name"]) == (stored["segment"], stored["segment_name"])
    assert features["propensities"] == pytest.approx(stored["propensities"])
    assert "platform_user_id" not in r.text and user["id"] not in r.text
    assert "course" not in r.text  # no learning events, not even their indices

    # logged with its block
    with service.container.engine.connect() as conn:
        logged = conn.execute(
            text("SELECT partner_id, pseudonym, consent_block FROM data_export WHERE id = :id"),
            {"id": body["export_id"]},
        ).one()
    assert tuple(logged) == ("bank", user["pseudonym"], head.number)
    # and the learner's own export says who received what, at which block
    disclosed = service.api.get("/api/v1/me/export", headers=user["headers"]).json()["disclosures"]
    assert [(d["kind"], d["id"], d["partner_id"], d["consent_block"]) for d in disclosed] == [
        ("data_export", body["export_id"], "bank", head.number)
    ]

    # consent is per partner: the insurer has none
    other = _export(service, user["pseudonym"], "insurer")
    assert other.status_code == 403

    # a revocation is seen by the very next request
    _revoke(service, user, "data_sharing")
    assert _export(service, user["pseudonym"]).status_code == 403


def test_an_unknown_learner_is_404_and_nothing_is_logged(service: Service) -> None:
    with service.container.engine.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM data_export")).scalar_one()
    r = _export(service, "0x" + "ab" * 32)
    assert r.status_code == 404 and r.json()["error"]["details"]["subject"] == "0x" + "ab" * 32
    with service.container.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM data_export")).scalar_one() == before


# ---------------------------------------------------------------------------------------------- audiences
def test_an_audience_holds_exactly_the_named_learners_with_marketing_consent(service: Service) -> None:
    yes = [service.new_user() for _ in range(3)]
    no = [service.new_user() for _ in range(2)]
    for u in yes:
        service.grant(u, purposes=MARKETING)
    service.grant(no[0], purposes=("profiling",))  # another purpose is not marketing consent
    service.grant(no[1], "insurer", purposes=MARKETING)  # another partner's is not this one's
    unknown = "0x" + "cd" * 32
    named = [u["pseudonym"] for u in yes + no] + [unknown]

    r = _audience(service, subjects=named)
    assert r.status_code == 201, r.text
    a = r.json()
    assert sorted(a["members"]) == sorted(u["pseudonym"] for u in yes)
    assert (a["named"], a["candidates"], a["size"]) == (6, 5, 3)
    assert a["consent"]["purposes"] == ["marketing_contact"]
    assert a["consent"]["verified_at_block"] == service.container.chain.head().number

    # the insurer's audience from the same names holds its own consenting learner only
    ins = _audience(service, "insurer", subjects=named).json()
    assert ins["members"] == [no[1]["pseudonym"]]

    # a learner who revokes leaves every later audience (and earlier ones stay as they were logged)
    _revoke(service, yes[0], "marketing_contact")
    later = _audience(service, subjects=named).json()
    assert sorted(later["members"]) == sorted(u["pseudonym"] for u in yes[1:])
    assert later["consent"]["verified_at_block"] > a["consent"]["verified_at_block"]
    with service.container.engine.connect() as conn:
        logged = {
            row[0]
            for row in conn.execute(
                text("SELECT pseudonym FROM audience_member WHERE audience_id = :id"),
                {"id": a["audience_id"]},
            )
        }
    assert logged == set(a["members"])
    disclosed = service.api.get("/api/v1/me/export", headers=yes[0]["headers"]).json()["disclosures"]
    assert [(d["kind"], d["id"], d["campaign"]) for d in disclosed] == [
        ("audience", a["audience_id"], "spring")
    ]


def test_a_segment_audience_pages_through_the_segment(service: Service) -> None:
    segments = service.api.get("/api/v1/segments", headers=service.partner()).json()["segments"]
    assert segments and all(s["learners"] > 0 for s in segments)
    name = max(segments, key=lambda s: s["learners"])["name"]
    with service.container.engine.connect() as conn:
        rows = conn.execute(
            text('SELECT u.pseudonym, p.data FROM "user" u JOIN profile p ON p.user_id = u.id')
        ).all()
    in_segment = sorted(p for p, data in rows if _data(data)["segment_name"] == name)
    assert len(in_segment) >= 2
    # every learner of the segment consents except the first
    consenting = set(in_segment[1:])
    people = {u: _signed_in(service, u) for u in in_segment}
    for pseudonym in consenting:
        _grant_if_needed(service, people[pseudonym], MARKETING)
    _revoke_if_held(service, people[in_segment[0]], "marketing_contact")

    members: list[str] = []
    candidates = 0
    after = None
    pages = 0
    while True:
        body: dict[str, Any] = {"segment": name, "limit": 2}
        if after:
            body["after"] = after
        page = _audience(service, **body)
        assert page.status_code == 201, page.text
        p = page.json()
        members += p["members"]
        candidates += p["candidates"]
        pages += 1
        after = p["next_after"]
        if after is None:
            break
    assert candidates == len(in_segment) and pages == (len(in_segment) + 1) // 2
    assert sorted(members) == sorted(consenting)

    # a segment and names: those named who are in the segment
    outsider = service.new_user()  # (its profile's segment may differ: the filter decides)
    both = _audience(service, segment=name, subjects=[in_segment[-1], outsider["pseudonym"]]).json()
    assert in_segment[-1] in both["members"]


def _data(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else dict(json.loads(value))


def _signed_in(service: Service, pseudonym: str) -> dict[str, Any]:
    with service.container.engine.connect() as conn:
        user_id = conn.execute(
            text('SELECT id FROM "user" WHERE pseudonym = :p'), {"p": pseudonym}
        ).scalar_one()
    token = service.api.post(f"/api/v1/users/{user_id}/token", headers=service.operator).json()["token"]
    return {"pseudonym": pseudonym, "headers": {"Authorization": f"Bearer {token}"}}


def _held(service: Service, user: dict[str, Any], purpose: str, partner: str = "bank") -> bool:
    rows = service.api.get("/api/v1/me/consents", headers=user["headers"]).json()["consents"]
    return any(c["granted"] for c in rows if c["partner_id"] == partner and c["purpose"] == purpose)


def _grant_if_needed(service: Service, user: dict[str, Any], purposes: tuple[str, ...]) -> None:
    for p in purposes:
        if not _held(service, user, p):
            service.grant(user, purposes=(p,))


def _revoke_if_held(service: Service, user: dict[str, Any], purpose: str) -> None:
    if _held(service, user, purpose):
        _revoke(service, user, purpose)


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({}, 422, "subjects"),  # neither names nor a segment
        ({"segment": "no such segment"}, 404, "segment"),
        ({"subjects": ["0x" + "11" * 32], "after": "0x" + "22" * 32}, 422, "after"),
    ],
)
def test_an_audience_request_that_says_nothing_usable_is_refused_with_its_field(
    service: Service, body: dict[str, Any], status: int, field: str
) -> None:
    r = _audience(service, **body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["details"]["field"] == field


def test_an_audience_of_a_segment_on_postgresql(make_service: Callable[..., Service], pg_url: str) -> None:
    """The segment is read from the profile's JSON: the same answer on PostgreSQL."""
    svc = make_service(database_url=pg_url)
    segments = svc.api.get("/api/v1/segments", headers=svc.partner()).json()["segments"]
    assert sum(s["learners"] for s in segments) == 40  # every seeded learner has a segment
    user = svc.new_user()
    svc.grant(user, purposes=MARKETING)
    export = svc.api.get("/api/v1/me/export", headers=user["headers"]).json()
    segment = export["profile"]["data"]["segment_name"]
    a = _audience(svc, segment=segment).json()
    assert a["members"] == [user["pseudonym"]]


# ---------------------------------------------------------------------------------------------- the audit
def test_the_audit_covers_exports_and_audiences_and_catches_a_planted_violation_of_each(
    make_service: Callable[..., Service], tmp_path: Path
) -> None:
    svc = make_service()
    sharer, contact, never = svc.new_user(), svc.new_user(), svc.new_user()
    svc.grant(sharer, purposes=SHARING)
    svc.grant(contact, purposes=MARKETING)
    svc.grant(sharer)  # and a recommendation, audited as before
    assert (
        svc.api.post(
            "/api/v1/recommendations", json={"subject": sharer["pseudonym"]}, headers=svc.partner()
        ).status_code
        == 200
    )
    export = _export(svc, sharer["pseudonym"]).json()
    audience = _audience(svc, subjects=[contact["pseudonym"], never["pseudonym"]]).json()
    assert audience["members"] == [contact["pseudonym"]]

    engine = svc.container.engine
    header = header_from_database(engine)
    violations, summary = replay(svc.container.chain, header, answers_from_database(engine))
    assert violations == [] and summary["ok"] is True
    assert summary["kinds"] == {"recommendation": 1, "data_export": 1, "audience": 1}

    # planted: an export moved to a block before the grant; a member added who never consented
    grant_block = svc.api.get("/api/v1/me/consents/history", headers=sharer["headers"]).json()["history"][0][
        "block_number"
    ]
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE data_export SET consent_block = :b WHERE id = :id"),
            {"b": grant_block - 1, "id": export["export_id"]},
        )
        conn.execute(
            text("INSERT INTO audience_member (audience_id, pseudonym) VALUES (:a, :p)"),
            {"a": audience["audience_id"], "p": never["pseudonym"]},
        )
    violations, summary = replay(svc.container.chain, header, answers_from_database(engine))
    caught = {(v.answer.kind, v.answer.id, v.answer.subject) for v in violations}
    assert caught == {
        ("data_export", export["export_id"], sharer["pseudonym"]),
        ("audience", audience["audience_id"], never["pseudonym"]),
    }
    assert summary["violations"] == 2 and summary["ok"] is False
    # the same from an exported log, as an auditor without the database runs it
    log = tmp_path / "serving-log.jsonl"
    with log.open("w", encoding="utf-8") as out:
        assert export_log(engine, out) == 4
    logged_header, logged = read_log(log)
    assert {a.kind for a in logged} == {"recommendation", "data_export", "audience"}
    again, _ = replay(svc.container.chain, logged_header, logged)
    assert {(v.answer.kind, v.answer.id, v.answer.subject) for v in again} == caught
    lines = {v.line() for v in violations}
    assert any("relied on data_sharing" in line for line in lines)
    assert any("relied on marketing_contact" in line for line in lines)
