"""The consent-gated hot path on PostgreSQL and a chain node: every wait awaited on the event loop.

Served by a real uvicorn server (one event loop, as deployed) over a real anvil node and a real PostgreSQL
database: the learner's row and profile are read on the loop's own connections, the chain's head is shared by
concurrent requests, the serving log commits from a task of the loop. The guarantees are those of the
threaded path: consent checked on chain before the profile, a revocation refused by the very next request,
an erased learner never served, a row durable before its answer, and a database or chain failure a 503 with
nothing served.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from sqlmodel import Session, func, select

from backend.chain import AnvilNode, connect_devnet
from backend.errors import DatabaseUnavailable
from backend.main import create_app
from backend.models import Recommendation, utcnow
from backend.services.serving_log import ServingLog

from ._live import ChainProxy, live_server
from .conftest import Service, drop_every_connection

pytestmark = [pytest.mark.anvil, pytest.mark.postgres]


@pytest.fixture(scope="module")
def node(anvil_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilNode]:
    started = AnvilNode(run_dir=tmp_path_factory.mktemp("anvil"), binary=anvil_bin).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def svc(make_service: Callable[..., Service], node: AnvilNode, pg_url: str, tmp_path: Path) -> Service:
    service = make_service(database_url=pg_url, chain=connect_devnet(node), manifest_path=tmp_path / "m.json")
    assert service.container.recommendations.awaits  # PostgreSQL and a node: the awaited path
    return service


def _consenting(svc: Service) -> dict[str, Any]:
    user = svc.new_user()
    svc.grant(user)
    return user


def _ask(http: Any, svc: Service, user: dict[str, Any]) -> Any:
    return http.post(
        "/api/v1/recommendations", json={"subject": user["pseudonym"], "k": 3}, headers=svc.partner("bank")
    )


def _rows(svc: Service) -> int:
    with Session(_reader(svc)) as s:
        return int(s.exec(select(func.count()).select_from(Recommendation)).one())


def _row(svc: Service, rec_id: str) -> Recommendation | None:
    with Session(_reader(svc)) as s:
        return s.get(Recommendation, rec_id)


def _reader(svc: Service) -> Any:
    """An engine of the test's own, with no pool (the service's connections may have been ended)."""
    return create_engine(svc.container.engine.url, poolclass=NullPool)


def test_answers_are_served_and_logged_and_a_revocation_bites_at_once(svc: Service) -> None:
    users = [_consenting(svc) for _ in range(6)]
    with live_server(create_app(container=svc.container)) as http:
        with ThreadPoolExecutor(6) as pool:  # requests in flight together on the one event loop
            answers = list(pool.map(lambda u: _ask(http, svc, u), users * 3))
        assert [r.status_code for r in answers] == [200] * 18, [
            r.text for r in answers if r.status_code != 200
        ]
        head = svc.container.chain.block_number
        for r, user in zip(answers, users * 3, strict=True):
            body = r.json()
            assert body["subject"] == user["pseudonym"] and body["products"]
            assert body["consent"]["verified_at_block"] <= head
            row = _row(svc, body["recommendation_id"])  # committed before the answer left
            assert row is not None and row.pseudonym == user["pseudonym"] and row.partner_id == "bank"
            assert row.products == [p["product_id"] for p in body["products"]]
            assert row.consent_block == body["consent"]["verified_at_block"]
            assert row.model_version == body["model_version"] and row.arm is None
            stamped = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=dt.UTC)
            assert abs((utcnow() - stamped).total_seconds()) < 600  # the instant it was served, as a time

        revoked = users[0]
        out = svc.api.delete("/api/v1/me/consents/bank/profiling", headers=revoked["headers"])
        assert out.status_code == 200, out.text
        before = _rows(svc)
        refused = _ask(http, svc, revoked)  # the very next request
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "consent_required"
        assert "products" not in refused.text and _rows(svc) == before
        assert _ask(http, svc, users[1]).status_code == 200  # the others still served

        svc.grant(revoked, purposes=("profiling",))
        assert _ask(http, svc, revoked).status_code == 200


def test_an_erased_learner_is_unknown_even_to_a_process_that_served_them(svc: Service) -> None:
    """The learner's id is kept after the first request; an erasure still makes the next answer a 404, as
    it is to a process that never saw the learner, and no profile is used."""
    user = _consenting(svc)
    with live_server(create_app(container=svc.container)) as http:
        assert _ask(http, svc, user).status_code == 200
        r = svc.api.request("DELETE", "/api/v1/me", json={"confirm": "erase"}, headers=user["headers"])
        assert r.status_code == 200, r.text
        before = _rows(svc)
        gone = _ask(http, svc, user)
        assert gone.status_code == 404 and "unknown user" in gone.json()["error"]["message"], gone.text
        assert _rows(svc) == before


def test_dropped_connections_are_replaced_and_failures_are_503_with_nothing_served(
    svc: Service, node: AnvilNode
) -> None:
    user = _consenting(svc)
    with live_server(create_app(container=svc.container)) as http:
        assert _ask(http, svc, user).status_code == 200
        # the server ends every connection (a restart, a failover): the next request is answered
        assert drop_every_connection(svc) >= 1
        answer = _ask(http, svc, user)
        assert answer.status_code == 200, answer.text
        assert _row(svc, answer.json()["recommendation_id"]) is not None

        # the serving log cannot commit: a 503, and the answer is not given
        with _reader(svc).begin() as conn:
            conn.execute(text("ALTER TABLE recommendation RENAME TO recommendation_away"))
        try:
            failed = _ask(http, svc, user)
        finally:
            with _reader(svc).begin() as conn:
                conn.execute(text("ALTER TABLE recommendation_away RENAME TO recommendation"))
        assert failed.status_code == 503 and failed.json()["error"]["code"] == "database_unavailable"
        assert "products" not in failed.text
        assert _ask(http, svc, user).status_code == 200


def test_a_node_out_of_reach_is_a_503_and_no_profile_is_read(
    make_service: Callable[..., Service], node: AnvilNode, pg_url: str, tmp_path: Path
) -> None:
    proxy = ChainProxy("127.0.0.1", int(node.url.rsplit(":", 1)[1]))
    try:
        svc = make_service(
            database_url=pg_url,
            chain=connect_devnet(proxy.url, timeout=2.0),
            manifest_path=tmp_path / "m.json",
        )
        user = _consenting(svc)
        with live_server(create_app(container=svc.container)) as http:
            assert _ask(http, svc, user).status_code == 200
            proxy.cut()
            r = _ask(http, svc, user)
            assert r.status_code == 503 and r.json()["error"]["code"] == "chain_unavailable", r.text
            assert "products" not in r.text
            # the head is read while the key is checked: an unknown key is still a 401, the node's absence
            # unread and unreported
            stranger = http.post(
                "/api/v1/recommendations",
                json={"subject": user["pseudonym"]},
                headers={"X-API-Key": "pk_nobody"},
            )
            assert stranger.status_code == 401, stranger.text
            proxy.restore()
            assert _ask(http, svc, user).status_code == 200
    finally:
        proxy.close()


def test_rows_written_in_one_pass_of_the_loop_share_one_transaction(svc: Service) -> None:
    engine = svc.container.engine
    log = ServingLog(engine, awaits=True)
    partner = "bank"
    rows = [
        dict(
            id=f"rec_awaited_{i:02d}",
            pseudonym="0x" + f"{i:02x}" * 32,
            partner_id=partner,
            products=["p1", "p2"],
            model_version="v",
            consent_block=1,
            served_at=1,
            created_at=utcnow(),
            arm=None,
        )
        for i in range(8)
    ]
    outcome: dict[str, Any] = {}

    async def write_all() -> None:
        try:
            await asyncio.gather(*(log.write(r) for r in rows))
            with engine.begin() as conn:  # the table is gone: the next write is refused, nothing half-done
                conn.execute(text("ALTER TABLE recommendation RENAME TO recommendation_away"))
            try:
                await log.write({**rows[0], "id": "rec_awaited_xx"})
            except DatabaseUnavailable as exc:
                outcome["refused"] = str(exc)
            finally:
                with engine.begin() as conn:
                    conn.execute(text("ALTER TABLE recommendation_away RENAME TO recommendation"))
        finally:
            await log.aclose()

    # in a loop of its own: the browser tests' Playwright may already run one in this thread
    runner = threading.Thread(target=asyncio.run, args=(write_all(),))
    runner.start()
    runner.join(120)
    assert (log.rows, log.commits) == (8, 1)  # eight rows, one transaction
    assert all(_row(svc, r["id"]) is not None for r in rows)
    assert "not be recorded" in outcome["refused"] and _row(svc, "rec_awaited_xx") is None


def test_a_row_that_comes_while_a_commit_is_in_flight_is_sent_at_once(svc: Service) -> None:
    """Two flush tasks at most: a row queued while the only flush task is writing goes out at once in a
    second statement (it does not wait for the commit in flight); a third waits for one of the two."""
    engine = svc.container.engine
    log = ServingLog(engine, awaits=True)
    base = dict(partner_id="bank", products=["p1"], model_version="v", consent_block=1, served_at=1, arm=None)
    rows = [
        dict(base, id=f"rec_inflight_{i}", pseudonym="0x" + f"{i:02x}" * 32, created_at=utcnow())
        for i in range(3)
    ]
    blocker = _reader(svc).connect()
    blocker.execute(text("LOCK TABLE recommendation IN ACCESS EXCLUSIVE MODE"))  # every insert waits

    def inserts_waiting() -> int:
        with _reader(svc).connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO recommendation%'"
                    )
                ).scalar_one()
            )

    async def until(n: int) -> None:
        for _ in range(200):
            if await asyncio.to_thread(inserts_waiting) == n:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"never {n} inserts waiting")

    seen: dict[str, int] = {}

    async def scenario() -> None:
        try:
            first = asyncio.ensure_future(log.write(rows[0]))
            await until(1)
            second = asyncio.ensure_future(log.write(rows[1]))
            await until(2)  # sent while the first commit is in flight
            third = asyncio.ensure_future(log.write(rows[2]))
            await asyncio.sleep(0.5)
            seen["waiting_with_three_queued"] = await asyncio.to_thread(inserts_waiting)
            await asyncio.to_thread(blocker.rollback)  # the lock goes
            await asyncio.gather(first, second, third)
        finally:
            await log.aclose()

    try:
        runner = threading.Thread(target=asyncio.run, args=(scenario(),))
        runner.start()
        runner.join(120)
    finally:
        blocker.close()
    assert seen["waiting_with_three_queued"] == 2  # no third statement while two are in flight
    assert (log.rows, log.commits) == (3, 3)
    assert all(_row(svc, r["id"]) is not None for r in rows)
