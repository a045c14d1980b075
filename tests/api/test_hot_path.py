"""The consent-gated hot path's caches and its group-committed serving log.

- Rankings are cached under everything they depend on (the stored profile, the served model, the catalogue,
  partner, k, arm): after a profile upload, a model promotion or a revocation, the very next answer is what
  an empty cache would give, or a refusal.
- The serving log commits the rows of concurrent requests together, and a row is committed before its answer
  leaves: the row is there when the answer is received, and a failed commit is an error, never a 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlmodel import Session, func, select

from backend.core import db
from backend.models import Recommendation
from backend.services.model import ServedModel
from backend.services.recommend import _USER_BY_PSEUDONYM
from backend.services.serving_log import ServingLog
from recommender.serving import ProductRanker

from .conftest import Service, drop_every_connection


def _ask(service: Service, user: dict[str, Any], k: int = 4) -> Any:
    body = {"subject": user["pseudonym"], "k": k}
    return service.api.post("/api/v1/recommendations", json=body, headers=service.partner("bank"))


def _recommend(service: Service, user: dict[str, Any], k: int = 4) -> dict[str, Any]:
    r = _ask(service, user, k)
    assert r.status_code == 200, r.text
    return r.json()


def _consenting(service: Service) -> dict[str, Any]:
    user = service.new_user()
    service.grant(user)
    return user


def _uncached(service: Service, user: dict[str, Any]) -> dict[str, Any]:
    """The answer computed with an empty ranking cache."""
    service.container.recommendations.rankings.clear()
    return _recommend(service, user)


def _products(answer: dict[str, Any]) -> list[Any]:
    return answer["products"]


def test_a_cached_ranking_is_served_again_for_the_same_profile(service: Service) -> None:
    user = _consenting(service)
    rankings = service.container.recommendations.rankings
    first = _recommend(service, user)
    hits = rankings.hits
    again = _recommend(service, user)
    assert rankings.hits == hits + 1
    assert _products(again) == _products(first)
    assert again["recommendation_id"] != first["recommendation_id"]  # a row of its own per answer


def test_the_very_next_request_after_a_revoke_is_refused_with_the_ranking_cached(service: Service) -> None:
    user = _consenting(service)
    _recommend(service, user)
    _recommend(service, user)  # cached now
    r = service.api.delete("/api/v1/me/consents/bank/profiling", headers=user["headers"])
    assert r.status_code == 200, r.text
    refused = _ask(service, user)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "consent_required"
    # granted again: served again, from the chain's answer of this request
    service.grant(user, "bank", ("profiling",))
    assert _ask(service, user).status_code == 200


def test_a_profile_upload_is_used_by_the_very_next_request(service: Service) -> None:
    user = _consenting(service)
    before = _recommend(service, user)
    _recommend(service, user)  # cached
    split = service.split
    courses = split.train_dataset.items["item_id"].tolist()
    # another learner's profile that ranks the bank's products differently (the demo world is seeded)
    for i, uid in enumerate(split.cold_eval_users[1:40]):
        body = {
            "profile": split.profiles.profile(split.user_ids[uid]).to_dict(),
            "course_ids": courses[10 + i : 14 + i],
            "product_ids": [],
        }
        r = service.api.put(f"/api/v1/users/{user['id']}/profile", json=body, headers=service.operator)
        assert r.status_code == 200, r.text
        after = _recommend(service, user)
        if _products(after) != _products(before):
            break
    else:
        raise AssertionError("no other seeded profile ranks differently")
    assert _products(after) == _products(_uncached(service, user))


def test_a_promoted_model_is_used_by_the_very_next_request(
    make_service: Callable[..., Service],
) -> None:
    svc = make_service()
    user = _consenting(svc)
    # a profile stored before versions were recorded serves any model: only the model version tells the
    # cached ranking from the one the promoted model gives
    with svc.container.engine.begin() as conn:
        conn.execute(text("UPDATE profile SET model_version = NULL WHERE user_id = :u"), {"u": user["id"]})
    _recommend(svc, user)
    before = _recommend(svc, user)  # cached
    assert any(p["explanation"]["keywords"] for p in _products(before))
    served = svc.container.model.served
    assert served is not None
    old = served.ranker
    # the same scores under a new version, without the topic space: no explanations
    ranker = ProductRanker(
        old.arrays, dataclasses.replace(old.metadata, version=old.metadata.version + "-b"), knowledge=None
    )
    svc.container.model.swap(ServedModel(ranker, served.profiles, served.path))
    after = _recommend(svc, user)
    assert after["model_version"] == old.metadata.version + "-b"
    assert all(p["explanation"] == {"topics": [], "keywords": []} for p in _products(after))
    assert _products(after) == _products(_uncached(svc, user))
    with Session(svc.container.engine) as s:
        row = s.get(Recommendation, after["recommendation_id"])
    assert row is not None and row.model_version == after["model_version"]


# ------------------------------------------------------------------------------------------ the serving log
def test_every_row_is_committed_when_its_answer_is_received(service: Service) -> None:
    users = [_consenting(service) for _ in range(3)]
    answers: list[dict[str, Any]] = []
    found: list[bool] = []

    def client(user: dict[str, Any]) -> None:
        for _ in range(5):
            answer = _recommend(service, user)
            with Session(service.container.engine) as s:  # read as soon as the answer is here
                row = s.get(Recommendation, answer["recommendation_id"])
            found.append(row is not None and row.products == [p["product_id"] for p in answer["products"]])
            answers.append(answer)

    threads = [threading.Thread(target=client, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(found) == 15 and all(found)
    with Session(service.container.engine) as s:
        rows = s.exec(
            select(Recommendation).where(
                Recommendation.id.in_([a["recommendation_id"] for a in answers])  # type: ignore[union-attr]
            )
        ).all()
    assert {r.pseudonym for r in rows} == {u["pseudonym"] for u in users}
    assert all(r.consent_block > 0 and r.partner_id == "bank" for r in rows)


def test_rows_queued_during_a_commit_share_the_next_transaction(make_service: Callable[..., Service]) -> None:
    svc = make_service()
    log = ServingLog(svc.container.engine)
    user = _consenting(svc)
    template = {k: v for k, v in _row_of(svc, _recommend(svc, user)["recommendation_id"]).items()}
    # another writer holds SQLite's write lock: the committer's first transaction waits for it
    blocker = svc.container.engine.raw_connection()
    blocker.execute("BEGIN IMMEDIATE")
    first = log.submit(template | {"id": "rec_group_0"})
    rest = [log.submit(template | {"id": f"rec_group_{i}"}) for i in range(1, 11)]
    blocker.rollback()
    blocker.close()
    for done in (first, *rest):
        done.result(timeout=60)
    log.close()
    assert log.rows == 11
    assert log.commits <= 2  # the first row alone (or with the others), then every row queued meanwhile
    with Session(svc.container.engine) as s:
        n = s.exec(
            select(func.count()).where(Recommendation.id.like("rec_group_%"))  # type: ignore[attr-defined]
        ).one()
    assert n == 11


@contextlib.contextmanager
def _table_away(svc: Service, table: str) -> Iterator[None]:
    """``table`` renamed away for the block (every statement on it fails), then back."""
    with svc.container.engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE {table} RENAME TO {table}_away"))
    try:
        yield
    finally:
        with svc.container.engine.begin() as conn:
            conn.execute(text(f"ALTER TABLE {table}_away RENAME TO {table}"))


def test_a_failed_commit_is_an_error_and_nothing_is_served(make_service: Callable[..., Service]) -> None:
    svc = make_service()
    user = _consenting(svc)
    _recommend(svc, user)
    with _table_away(svc, "recommendation"):
        r = _ask(svc, user)
    assert r.status_code == 503, r.text
    error = r.json()["error"]
    assert error["code"] == "database_unavailable" and "not be recorded" in error["message"]
    assert "products" not in r.text
    # the log keeps serving once the database takes writes again
    answer = _recommend(svc, user)
    assert _row_of(svc, answer["recommendation_id"])["pseudonym"] == user["pseudonym"]


def test_a_failed_read_is_an_error_and_nothing_is_served(make_service: Callable[..., Service]) -> None:
    """The hot path reads through the driver's cursor: a failing read is still the 503 every other
    database failure is, and no row is logged."""
    svc = make_service()
    user = _consenting(svc)
    _recommend(svc, user)
    with Session(svc.container.engine) as s:
        before = s.exec(select(func.count()).select_from(Recommendation)).one()
    with _table_away(svc, "profile"):
        r = _ask(svc, user)
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "database_unavailable" and "products" not in r.text
    with Session(svc.container.engine) as s:
        assert s.exec(select(func.count()).select_from(Recommendation)).one() == before
    assert _recommend(svc, user)["products"]  # and serves again once the table is back


def _row_of(svc: Service, rec_id: str) -> dict[str, Any]:
    with Session(svc.container.engine) as s:
        row = s.get(Recommendation, rec_id)
        assert row is not None
        return row.model_dump()


def test_concurrent_requests_on_the_event_loop_share_a_commit(make_service: Callable[..., Service]) -> None:
    svc = make_service()
    users = [_consenting(svc) for _ in range(8)]
    log = svc.container.recommendations.serving_log
    assert log.inline  # the in-process chain: requests run on the event loop
    commits, rows = log.commits, log.rows

    async def burst() -> list[Any]:
        transport = httpx.ASGITransport(app=svc.api.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await asyncio.gather(
                *(
                    client.post(
                        "/api/v1/recommendations",
                        json={"subject": u["pseudonym"], "k": 3},
                        headers=svc.partner("bank"),
                    )
                    for u in users
                )
            )

    answers = asyncio.run(burst())
    assert [r.status_code for r in answers] == [200] * 8
    assert log.rows - rows == 8
    assert log.commits - commits < 8  # some of the eight rows shared a transaction
    for r in answers:
        assert _row_of(svc, r.json()["recommendation_id"])["partner_id"] == "bank"


def test_idle_connections_the_server_dropped_are_replaced_before_use(
    make_service: Callable[..., Service], pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL ends the pooled connections: a connection idle past ``IDLE_PING_S`` is pinged when it is
    checked out and replaced, so the next request is answered and logged."""
    svc = make_service(database_url=pg_url)
    user = _consenting(svc)
    _recommend(svc, user)
    monkeypatch.setattr(db, "IDLE_PING_S", 0.0)  # every pooled connection counts as idle
    assert drop_every_connection(svc) >= 1
    answer = _recommend(svc, user)
    assert _row_of(svc, answer["recommendation_id"])["pseudonym"] == user["pseudonym"]


def test_the_hot_path_reads_again_on_a_fresh_connection_after_a_drop(
    make_service: Callable[..., Service], pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection in steady use is not pinged; when the server has dropped it, the hot path's reads
    (which can be repeated) replace it and read again, where any other statement fails with a 503 once."""
    svc = make_service(database_url=pg_url)
    user = _consenting(svc)
    monkeypatch.setattr(db, "IDLE_PING_S", 1e9)  # no connection is pinged
    reads = db.DriverReads(svc.container.engine, user=_USER_BY_PSEUDONYM)
    with reads.cursor() as cur:
        [user_id] = reads.first(cur, "user", pseudonym=user["pseudonym"]) or [None]
    assert user_id == user["id"]
    assert drop_every_connection(svc) >= 1
    with reads.cursor() as cur:
        assert reads.first(cur, "user", pseudonym=user["pseudonym"]) == (user_id,)
        assert reads.first(cur, "user", pseudonym="0x" + "00" * 32) is None


def test_requests_that_wait_on_a_network_chain_use_at_most_chain_threads_threads() -> None:
    """``KNOWLEDGER_CHAIN_THREADS``: at most that many requests per process wait on the node at once."""
    from backend.api.deps import offload

    running, most = 0, 0
    lock = threading.Lock()
    together = threading.Barrier(3, timeout=60)  # passes only when three run at once

    def ask_the_chain() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        together.wait()
        with lock:
            running -= 1

    gateway: Any = dataclasses.make_dataclass("Gateway", ["in_process", "threads"])(False, 3)

    async def burst() -> None:
        await asyncio.gather(*(offload(gateway, ask_the_chain) for _ in range(12)))

    # in a loop of its own: the browser tests' Playwright may already run one in this thread
    runner = threading.Thread(target=asyncio.run, args=(burst(),))
    runner.start()
    runner.join(120)
    assert most == 3


def test_an_erased_learner_is_unknown_though_their_id_was_kept(make_service: Callable[..., Service]) -> None:
    """The hot path keeps a learner's id after the first request; after an erasure the next answer is still
    the 404 of an unknown learner, and no profile is used."""
    svc = make_service()
    user = _consenting(svc)
    _recommend(svc, user)
    r = svc.api.request("DELETE", "/api/v1/me", json={"confirm": "erase"}, headers=user["headers"])
    assert r.status_code == 200, r.text
    gone = _ask(svc, user)
    assert gone.status_code == 404 and "unknown user" in gone.json()["error"]["message"], gone.text
    assert "products" not in gone.text


def test_the_served_app_keeps_full_collections_rare(service: Service) -> None:
    """Under load a full pass of the cyclic collector paused the event loop for 25-38 ms about every second:
    the served app freezes what start-up built and runs a full pass after 100 middle ones, not 10."""
    from fastapi.testclient import TestClient

    from backend.main import GC_THRESHOLDS, create_app

    before = gc.get_threshold()
    try:
        with TestClient(create_app(container=service.container)) as client:  # with its lifespan
            assert client.get("/api/v1/ping").status_code == 200
            assert gc.get_threshold() == GC_THRESHOLDS == (700, 10, 100)
            assert gc.get_freeze_count() > 0
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
