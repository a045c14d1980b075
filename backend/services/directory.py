"""The small, rarely changed tables every request consults, cached in memory: partner API keys, and the
map from the catalogue to the served model's rows (products per partner, courses in the topic space).

Refreshed after any change to partners, products, courses or the model. Where several processes share the
database, a change made by one must reach the others before their next request: whoever changes these tables
calls :func:`mark_changed` in the same transaction, which bumps a version row (``service_meta``), and every
request that uses the directory first compares that version with the one it loaded (:meth:`Directory.current`,
one primary-key read) and re-reads the tables when it moved. A partner registered, or a key rotated, through
one process is therefore known, or refused, by every other process on its next request. A process that owns
its database (the embedded chain, the default SQLite file) skips the check: nobody else writes there."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from backend.core.security import key_hash, same_key
from backend.models import KnowledgeItem, Partner, Product, ServiceMeta
from backend.services.model import ModelSlot

#: The ``service_meta`` row that counts changes to partners, products and courses.
VERSION_KEY = "directory_version"
_BUMP = text(
    f"UPDATE {ServiceMeta.__tablename__} SET value = CAST(CAST(value AS BIGINT) + 1 AS VARCHAR(20)) "
    "WHERE key = :key"
)
_READ = text(f"SELECT value FROM {ServiceMeta.__tablename__} WHERE key = :key")


def mark_changed(session: Session) -> None:
    """Record, in ``session``'s transaction, that partners, products or courses changed (the caller commits):
    every process re-reads them before its next request uses them."""
    if session.connection().execute(_BUMP, {"key": VERSION_KEY}).rowcount == 0:
        session.add(ServiceMeta(key=VERSION_KEY, value="1"))


@dataclass(frozen=True)
class PartnerAuth:
    """The partner an API key belongs to."""

    id: str
    name: str
    address: str


@dataclass(frozen=True)
class _Tables:
    keys: dict[str, PartnerAuth]
    product_index: dict[str, int]
    partner_products: dict[str, list[int]]
    product_names: dict[str, str]
    course_index: dict[str, int]


class Directory:
    def __init__(
        self, engine: Engine, model: ModelSlot, operator_key_hash: str, *, shared: bool = False
    ) -> None:
        """``shared``: other processes write to this database too (check the version before each use)."""
        self._engine = engine
        self._model = model
        self._operator_key_hash = operator_key_hash
        self._shared = shared
        self._lock = threading.Lock()
        self._tables = _Tables({}, {}, {}, {}, {})
        self._version: str | None = None
        self.refresh()

    def current(self) -> None:
        """Bring the tables up to date if another process changed them (one primary-key read; nothing when
        this process owns its database)."""
        if not self._shared:
            return
        with self._engine.connect() as conn:
            version = conn.execute(_READ, {"key": VERSION_KEY}).scalar()
        if version != self._version:
            self.refresh()

    def changed(self) -> None:
        """Mark the tables changed (in a transaction of its own) and re-read them."""
        with Session(self._engine) as s:
            mark_changed(s)
            s.commit()
        self.refresh()

    def refresh(self) -> None:
        """Re-read partners, products and courses (after any change to them or to the model)."""
        with Session(self._engine) as s:
            # the version first: a change committed while the tables are read shows as a newer version
            # next time, never as new tables under an old version
            version = s.connection().execute(_READ, {"key": VERSION_KEY}).scalar()
            partners = s.exec(select(Partner)).all()
            products = s.exec(select(Product)).all()
            courses = s.exec(select(KnowledgeItem.id, KnowledgeItem.position)).all()
        ranker = self._model.ranker
        index = {pid: i for i, pid in enumerate(ranker.product_ids)} if ranker is not None else {}
        by_partner: dict[str, list[int]] = {}
        for prod in products:
            if prod.id in index:
                by_partner.setdefault(prod.partner_id, []).append(index[prod.id])
        tables = _Tables(
            keys={p.api_key_hash: PartnerAuth(p.id, p.name, p.address) for p in partners},
            product_index=index,
            partner_products={k: sorted(v) for k, v in by_partner.items()},
            product_names={p.id: p.name for p in products},
            course_index=self._course_rows(courses),
        )
        with self._lock:
            self._tables = tables
            self._version = None if version is None else str(version)

    def _course_rows(self, stored: Sequence[tuple[str, int | None]]) -> dict[str, int]:
        """Item id → its row in the served model's topic space: the order the model's profile builder was
        fitted on, or (for a model without one) the positions stored with the catalogue."""
        builder = self._model.profiles
        if builder is not None:
            return {item: i for i, item in enumerate(builder.item_ids)}
        return {cid: int(pos) for cid, pos in stored if pos is not None}

    def partner_for_key(self, api_key: str) -> PartnerAuth | None:
        return self._tables.keys.get(key_hash(api_key))

    def is_operator_key(self, api_key: str) -> bool:
        return same_key(api_key, self._operator_key_hash)

    def product_index(self) -> dict[str, int]:
        """Product id → its row in the served model."""
        return self._tables.product_index

    def partner_products(self, partner_id: str) -> list[int]:
        """The model rows of ``partner_id``'s products (the candidates a partner's request may rank)."""
        return self._tables.partner_products.get(partner_id, [])

    def course_index(self) -> dict[str, int]:
        """Knowledge item id → its row in the model's topic space."""
        return self._tables.course_index

    def product_name(self, product_id: str) -> str:
        return self._tables.product_names.get(product_id, product_id)
