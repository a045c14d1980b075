"""The platform's data in: batch uploads (CSV, NDJSON, Parquet) as jobs, streamed events, all or nothing,
idempotent by event id, erased learners refused, and profiles that follow the events."""

from __future__ import annotations

import datetime as dt
import io
import json
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from backend.models import LearningEvent, Profile, User

from .conftest import Service


def upload(svc: Service, table: str, body: bytes, ctype: str, who: dict[str, str], **params: str) -> Any:
    r = svc.api.post(
        f"/api/v1/ingest/{table}", content=body, headers={**who, "content-type": ctype}, params=params
    )
    assert r.status_code == 202, r.text
    job = r.json()
    deadline = time.monotonic() + 120
    while job["status"] not in ("done", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
        job = svc.api.get(f"/api/v1/ingest/jobs/{job['id']}", headers=who).json()
    return job


def csv_bytes(rows: list[dict[str, Any]]) -> bytes:
    return pd.DataFrame(rows).to_csv(index=False).encode()


def ndjson_bytes(rows: list[dict[str, Any]]) -> bytes:
    return "\n".join(json.dumps(r) for r in rows).encode()


def parquet_bytes(rows: list[dict[str, Any]]) -> bytes:
    buf = io.BytesIO()
    pd.DataFrame(rows).to_parquet(buf)
    return buf.getvalue()


def events_stored(svc: Service) -> int:
    with Session(svc.container.engine) as s:
        return int(s.exec(select(func.count()).select_from(LearningEvent)).one())


def seeded_items(svc: Service, n: int) -> list[str]:
    return [str(i) for i in svc.split.train_dataset.items["item_id"].tolist()[:n]]


ITEMS = [
    {"item_id": "c-tax-101", "kind": "course", "title": "Personal tax basics", "category": "Business Finance",
     "price": 19.9, "level": "beginner", "description": "Returns, deductions and pensions."},
    {"item_id": "a-sleep-1", "kind": "audio", "title": "Sleep and health", "category": "Health",
     "price": 5.0},
]  # fmt: skip


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_catalogue_learners_and_events_arrive_in_three_formats_and_twice_changes_nothing(
    make_service: Callable[..., Service], request: pytest.FixtureRequest, database: str
) -> None:
    """On SQLite (portable inserts) and on PostgreSQL (``COPY`` into a temporary table, then one insert):
    the same rows and times, and sending the file again changes nothing."""
    on_pg = database == "postgresql"
    svc = make_service(database_url=request.getfixturevalue("pg_url")) if on_pg else make_service()
    op = svc.operator
    job = upload(svc, "items", csv_bytes(ITEMS), "text/csv", op, name="catalogue.csv")
    assert (job["status"], job["inserted"], job["rows"]) == ("done", 2, 2), job
    users = [{"user_id": "plat-42", "age_band": "25-34", "life_stage": "family"}, {"user_id": "plat-43"}]
    job = upload(svc, "users", ndjson_bytes(users), "application/x-ndjson", op)
    assert (job["status"], job["inserted"]) == ("done", 2), job
    items = [*seeded_items(svc, 3), "c-tax-101"]
    events = [
        {"event_id": f"ev-{n}", "user_id": "plat-42", "item_id": items[n % 4], "event": "view",
         "timestamp": f"2026-11-0{n % 9 + 1}T10:00:00Z"}
        for n in range(8)
    ] + [{"event_id": "ev-r", "user_id": "plat-43", "item_id": items[0], "event": "rating", "value": 5,
          "timestamp": "2026-10-01T00:00:00+02:00"}]  # fmt: skip
    before = events_stored(svc)
    job = upload(svc, "interactions", parquet_bytes(events), "application/vnd.apache.parquet", op)
    assert (job["status"], job["inserted"], job["unchanged"]) == ("done", 9, 0), job
    assert job["profiles_updated"] == 2
    assert events_stored(svc) == before + 9
    again = upload(svc, "interactions", parquet_bytes(events), "application/vnd.apache.parquet", op)
    assert (again["status"], again["inserted"], again["unchanged"]) == ("done", 0, 9), again
    assert events_stored(svc) == before + 9
    with Session(svc.container.engine) as s:
        first = s.exec(select(LearningEvent).where(LearningEvent.event_id == "ev-0")).one()
        assert (first.item_id, first.event, first.value) == (items[0], "view", None)
        rating = s.exec(select(LearningEvent).where(LearningEvent.event_id == "ev-r")).one()
        assert rating.value == 5.0
        assert rating.occurred_at == dt.datetime(2026, 9, 30, 22, 0, tzinfo=dt.UTC)
    with Session(svc.container.engine) as s:
        user = s.exec(select(User).where(User.platform_user_id == "plat-42")).one()
        assert (user.age_band, user.life_stage, user.region) == ("25-34", "family", None)
        profile = s.get(Profile, user.id)
        assert profile is not None and profile.data["segment_name"] and profile.course_indices
        assert profile.data["user_id"] == user.pseudonym  # the stored profile names the pseudonym only


def test_a_bad_file_names_the_line_and_column_and_writes_nothing(
    make_service: Callable[..., Service],
) -> None:
    svc = make_service()
    item = seeded_items(svc, 1)[0]
    known = svc.split.user_ids[0]
    day = "2026-11-01T00:00:00Z"
    rows = [
        {"event_id": "b-1", "user_id": known, "item_id": item, "event": "view", "timestamp": day},
        {"event_id": "b-2", "user_id": known, "item_id": item, "event": "clicked", "timestamp": day},
        {"event_id": "b-3", "user_id": "nobody-here", "item_id": item, "event": "view", "timestamp": day},
        {
            "event_id": "b-4",
            "user_id": known,
            "item_id": item,
            "event": "rating",
            "value": 9,
            "timestamp": day,
        },
    ]
    before = events_stored(svc)
    job = upload(svc, "interactions", csv_bytes(rows), "text/csv", svc.operator, name="week48.csv")
    assert job["status"] == "failed" and job["inserted"] == 0, job
    text = "\n".join(job["errors"])
    assert "week48.csv line 3, column 'event': 'clicked' is not one of" in text
    assert "week48.csv line 5, column 'value'" in text
    assert events_stored(svc) == before
    # the schema's rules pass, the service's do not: still nothing written, still by line and column
    rows = [rows[0], rows[2]]
    job = upload(svc, "interactions", csv_bytes(rows), "text/csv", svc.operator, name="week49.csv")
    assert job["status"] == "failed", job
    assert job["errors"] == [
        "week49.csv line 3, column 'user_id': 'nobody-here' is not a known learner: "
        "send them in a users file first"
    ]
    assert events_stored(svc) == before
    job = upload(svc, "interactions", csv_bytes([{"user_id": known}]), "text/csv", svc.operator)
    assert job["status"] == "failed" and any("required column is missing" in e for e in job["errors"])


def test_a_streamed_event_shows_in_the_profile_before_the_answer(service: Service) -> None:
    user = service.new_user()
    platform_id = service.api.get(
        f"/api/v1/users?platform_user_id={user['platform_user_id']}", headers=service.operator
    ).json()
    assert platform_id["id"] == user["id"]
    with Session(service.container.engine) as s:
        before = s.get(Profile, user["id"])
        assert before is not None
        topics_before = list(before.data["topics"])
    items = seeded_items(service, 40)[20:23]
    events = [
        {"event_id": f"s-{user['id']}-{n}", "user_id": user["platform_user_id"], "item_id": items[n],
         "event": "completion", "timestamp": "2026-12-01T12:00:00Z"}
        for n in range(3)
    ]  # fmt: skip
    r = service.api.post("/api/v1/events", json={"events": events}, headers=service.operator)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "received": 3,
        "inserted": 3,
        "unchanged": 0,
        "profiles_updated": 1,
        "profiles_follow": True,
    }
    with Session(service.container.engine) as s:
        after = s.get(Profile, user["id"])
        assert after is not None and after.data["topics"] != topics_before
        assert after.data["behaviour"]["engagement"] > 0 and after.data["segment_name"]
        assert set(after.data["propensities"])  # one per product kind
    r = service.api.post("/api/v1/events", json={"events": events}, headers=service.operator)
    assert r.json()["inserted"] == 0 and r.json()["unchanged"] == 3


def test_events_for_an_erased_learner_are_refused_and_nothing_relinks_them(service: Service) -> None:
    user = service.new_user()
    item = seeded_items(service, 1)[0]
    event = {"event_id": f"e-{user['id']}", "user_id": user["platform_user_id"], "item_id": item,
             "event": "view", "timestamp": "2026-12-01T00:00:00Z"}  # fmt: skip
    assert (
        service.api.post("/api/v1/events", json={"events": [event]}, headers=service.operator).status_code
        == 200
    )
    r = service.api.request("DELETE", "/api/v1/me", json={"confirm": "erase"}, headers=user["headers"])
    assert r.status_code == 200
    with Session(service.container.engine) as s:  # the events went with the learner
        left = s.exec(
            select(func.count()).select_from(LearningEvent).where(LearningEvent.user_id == user["id"])
        )
        assert left.one() == 0
    event["event_id"] += "-later"
    r = service.api.post("/api/v1/events", json={"events": [event]}, headers=service.operator)
    assert r.status_code == 422 and "belongs to an erased learner" in r.text
    job = upload(
        service, "users", csv_bytes([{"user_id": user["platform_user_id"]}]), "text/csv", service.operator
    )
    assert job["status"] == "failed" and "erased learner" in job["errors"][0]


def test_partners_send_their_products_and_only_theirs(service: Service) -> None:
    products = [{"product_id": "HB-NEW-1", "kind": "savings", "name": "Harbour Starter Saver",
                 "risk_level": 1, "min_premium": 100}]  # fmt: skip
    job = upload(service, "products", csv_bytes(products), "text/csv", service.partner("bank"))
    assert (job["status"], job["inserted"]) == ("done", 1), job
    listed = service.api.get("/api/v1/products", params={"partner_id": "bank"}).json()["products"]
    assert "HB-NEW-1" in {p["id"] for p in listed}
    job = upload(service, "products", csv_bytes(products), "text/csv", service.partner("insurer"))
    assert job["status"] == "failed" and "belongs to another partner" in job["errors"][0]
    r = service.api.post(
        "/api/v1/ingest/items", content=b"x", headers={**service.partner("bank"), "content-type": "text/csv"}
    )
    assert r.status_code == 403
    r = service.api.post(
        "/api/v1/ingest/products", content=b"x", headers={**service.operator, "content-type": "text/csv"}
    )
    assert r.status_code == 403
    r = service.api.get(f"/api/v1/ingest/jobs/{job['id']}", headers=service.partner("bank"))
    assert r.status_code == 404  # another partner's job


@pytest.mark.parametrize("ctype", ["application/json", ""])
def test_an_unknown_format_is_refused_naming_the_option(service: Service, ctype: str) -> None:
    r = service.api.post(
        "/api/v1/ingest/items", content=b"a,b\n", headers={**service.operator, "content-type": ctype}
    )
    assert r.status_code == 422 and "format" in r.json()["error"]["message"]


def test_an_empty_upload_is_refused_at_once(service: Service) -> None:
    r = service.api.post(
        "/api/v1/ingest/items", content=b"", headers={**service.operator, "content-type": "text/csv"}
    )
    assert r.status_code == 422 and r.json()["error"]["details"] == {"field": "body"}
    assert "no body" in r.json()["error"]["message"]


def test_a_full_stream_of_a_thousand_events_fits_the_body_limit(service: Service) -> None:
    user = service.new_user()
    items = seeded_items(service, 10)
    events = [
        {"event_id": f"full-{user['id']}-{n:04d}-{'x' * 30}", "user_id": user["platform_user_id"],
         "item_id": items[n % len(items)], "event": "view", "timestamp": "2026-12-01T12:00:00Z"}
        for n in range(1000)
    ]  # fmt: skip
    r = service.api.post("/api/v1/events", json={"events": events}, headers=service.operator)
    assert r.status_code == 200, r.text[:300]
    assert r.json()["inserted"] == 1000
    r = service.api.post("/api/v1/events", json={"events": events + events[:1]}, headers=service.operator)
    assert r.status_code == 422  # 1,001: over the documented maximum, refused by its validation


def test_knowledger_ingest_sends_a_file_and_reports_problems_by_line(
    make_service: Callable[..., Service], tmp_path: Any
) -> None:
    from typer.testing import CliRunner

    from backend.cli import app as cli
    from backend.main import create_app

    from ._live import live_server

    svc = make_service()
    good = tmp_path / "items.csv"
    good.write_bytes(csv_bytes(ITEMS))
    bad = tmp_path / "more-items.ndjson"
    bad.write_bytes(ndjson_bytes([{**ITEMS[0], "item_id": "c-x", "kind": "podcast"}]))
    with live_server(create_app(container=svc.container)) as http:
        api = str(http.base_url)
        key = svc.operator["X-API-Key"]
        ok = CliRunner().invoke(cli, ["ingest", str(good), "--api", api, "--key", key])
        assert ok.exit_code == 0, ok.output
        assert json.loads(ok.stdout[ok.stdout.index("{") :])["inserted"] == 2
        refused = CliRunner().invoke(
            cli, ["ingest", str(bad), "--table", "items", "--api", api, "--key", key]
        )
    assert refused.exit_code == 2
    assert "more-items.ndjson line 1, column 'kind': 'podcast' is not one of" in refused.output
    assert "nothing was written" in refused.output and "Traceback" not in refused.output
