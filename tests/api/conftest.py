"""Service fixtures: a real embedded chain, a real database (SQLite file, or PostgreSQL when marked), a
trained model artifact and the seeded demo world. Nothing in the path under test is mocked.

- ``demo``: the demo world split and a small trained model (once per session).
- ``service``: a running ``Container`` shared by a module's tests (they create their own users), with an
  ``api`` ``TestClient``; workers are driven by hand (``container.settler.run_once()``).
- ``make_service``: a fresh one (own chain, own database) for tests that move time or stop things.
- ``pg_url``: a new PostgreSQL database for the test, dropped afterwards; skips without a server unless
  ``KNOWLEDGER_REQUIRE_POSTGRES=1`` (CI), which makes it fail instead.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.container import Container
from backend.core.config import Settings
from backend.main import create_app
from backend.services.seed import SeedResult, demo_split, train_model

from ._browser import browser  # noqa: F401  (the browser tests' fixture)

OPERATOR_KEY = "op_test_operator_key_0123456789"
PG_ADMIN_URL = os.environ.get("KNOWLEDGER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@dataclass
class Demo:
    split: Any
    model_dir: Path


@dataclass
class Service:
    container: Container
    api: TestClient
    seeded: SeedResult
    settings: Settings
    #: The demo world the container was seeded from.
    split: Any

    @property
    def operator(self) -> dict[str, str]:
        return {"X-API-Key": OPERATOR_KEY}

    def partner(self, partner_id: str = "bank") -> dict[str, str]:
        return {"X-API-Key": self.seeded.partner_keys[partner_id]}

    def new_user(self, wallet: str | None = None) -> dict[str, Any]:
        """A new learner with a profile copied from a seeded one; returns id, pseudonym, token, headers."""
        body: dict[str, Any] = {"platform_user_id": "learner-" + secrets.token_hex(6)}
        if wallet:
            body["wallet"] = wallet
        r = self.api.post("/api/v1/users", json=body, headers=self.operator)
        assert r.status_code == 201, r.text
        user = r.json()
        profile = self.container.model.ranker and _a_profile(self)
        r = self.api.put(f"/api/v1/users/{user['id']}/profile", json=profile, headers=self.operator)
        assert r.status_code == 200, r.text
        user["headers"] = {"Authorization": f"Bearer {user['token']}"}
        user["platform_user_id"] = body["platform_user_id"]
        return user

    def grant(
        self,
        user: dict[str, Any],
        partner_id: str = "bank",
        purposes: tuple[str, ...] = ("profiling", "product_recommendation"),
    ) -> list[dict[str, Any]]:
        out = []
        for p in purposes:
            r = self.api.put(f"/api/v1/me/consents/{partner_id}/{p}", headers=user["headers"])
            assert r.status_code == 201, r.text
            out.append(r.json())
        return out


def _a_profile(service: Service) -> dict[str, Any]:
    split = service.split  # type: ignore[attr-defined]
    user_id = split.cold_eval_users[0]
    profile = split.profiles.profile(split.user_ids[user_id]).to_dict()
    courses = split.train_dataset.items["item_id"].tolist()[:3]
    return {"profile": profile, "course_ids": courses, "product_ids": []}


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    split = demo_split(seed=0)
    model_dir = tmp_path_factory.mktemp("model") / "hybrid"
    train_model(split, model_dir, epochs=3, seed=0)
    return Demo(split, model_dir)


def _start(
    demo: Demo, data_dir: Path, database_url: str = "", n_users: int = 40, chain: Any = None, **overrides: Any
) -> Service:
    settings = Settings(
        state_dir=data_dir,
        database_url=database_url,
        model_path=demo.model_dir,
        operator_key=OPERATOR_KEY,
        background_workers=False,
        seed_demo=False,
        _env_file=None,
        **overrides,
    )
    container = Container.start(settings, chain=chain)
    seeded = container.seed(demo.split, n_users=n_users)
    api = TestClient(create_app(container=container), raise_server_exceptions=False)
    return Service(container, api, seeded, settings, demo.split)


@pytest.fixture(scope="module")
def service(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = _start(demo, tmp_path_factory.mktemp("svc"))
    yield svc
    svc.container.close()


@pytest.fixture
def make_service(demo: Demo, tmp_path: Path) -> Iterator[Callable[..., Service]]:
    started: list[Service] = []

    def make(database_url: str = "", chain: Any = None, **overrides: Any) -> Service:
        svc = _start(demo, tmp_path / f"svc{len(started)}", database_url, chain=chain, **overrides)
        started.append(svc)
        return svc

    yield make
    for svc in started:
        svc.container.close()


def _postgres_required() -> bool:
    return os.environ.get("KNOWLEDGER_REQUIRE_POSTGRES", "") not in ("", "0", "false", "no")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database (dropped afterwards)."""
    try:
        import psycopg

        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except Exception as exc:
        message = f"PostgreSQL not reachable at {PG_ADMIN_URL} ({exc}); set KNOWLEDGER_TEST_POSTGRES"
        if _postgres_required():
            pytest.fail(message + " (KNOWLEDGER_REQUIRE_POSTGRES=1)")
        pytest.skip(message)
    name = "knowledger_test_" + secrets.token_hex(4)
    admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def drop_every_connection(svc: Service) -> int:
    """The server ends every other connection to the service's database (as a restart or a failover
    would); returns how many it ended."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    killer = create_engine(svc.container.engine.url, poolclass=NullPool)  # not one of the pool's own
    with killer.connect() as conn:
        ended = conn.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    killer.dispose()
    return int(ended)
