"""The small, rarely changed tables every request consults, cached in memory: partner API keys, products per
partner, product names, and the map from the catalogue to a served model's rows.

The rows of a model are computed once per model version, from the model's own id lists, so a request
holding one :class:`ServedModel` gets rows of that model even while another is being swapped in.

Refreshed after any change to partners, products or courses. Where several processes share the
database, a change made by one must reach the others before their next request: whoever changes these tables
calls :func:`mark_changed` in the same transaction, which bumps a version row (``service_meta``), and every
request that uses the directory first compares that version with the one it loaded (:meth:`Directory.current`,
one primary-key read) and re-reads the tables when it moved. A partner registered, or a key rotated, through
one process is therefore known, or refused, by every other process on its next request. A process that owns
its database (the embedded chain, the default SQLite file) skips the check: nobody else writes there."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import anyio.to_thread
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from backend.core.async_db import AsyncStatements
from backend.core.security import key_hash, same_key
from backend.core.shared_read import AsyncSharedRead
from backend.models import KnowledgeItem, Partner, Product, ServiceMeta
from backend.services.model import ServedModel

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
    products_of: dict[str, list[str]]
    product_names: dict[str, str]
    #: Course id → stored position (the rows of a model without a profile builder).
    positions: dict[str, int]
    #: Per model version: partner id → that partner's product rows in the model.
    rows: dict[str, dict[str, list[int]]] = field(default_factory=dict)


class Directory:
    def __init__(self, engine: Engine, operator_key_hash: str, *, shared: bool = False) -> None:
        """``shared``: other processes write to this database too (check the version before each use)."""
        self._engine = engine
        self._operator_key_hash = operator_key_hash
        self._shared = shared
        self._lock = threading.Lock()
        self._tables = _Tables({}, {}, {}, {})
        self._version: str | None = None
        # on PostgreSQL the version row is awaited on the event loop; elsewhere read in a worker thread
        self._statements = AsyncStatements.for_engine(engine, version=_READ) if shared else None
        self._versions: AsyncSharedRead[str | None] = (
            AsyncSharedRead(self._read_version)
            if self._statements is None
            else AsyncSharedRead(self._read_version_async)
        )
        #: Counts refreshes: anything derived from the tables (cached rankings) is keyed by it.
        self.generation = 0
        self.refresh()

    def current(self) -> None:
        """Bring the tables up to date if another process changed them (one primary-key read; nothing when
        this process owns its database)."""
        if not self._shared:
            return
        if self._read_version() != self._version:
            self.refresh()

    async def current_async(self) -> None:
        """:meth:`current` for the event loop: concurrent requests share one read of the version row, made
        in a worker thread after each of them asked (:class:`backend.core.shared_read.AsyncSharedRead`), so a
        change another process committed before a request arrived is seen by that request."""
        if not self._shared:
            return
        if await self._versions.get() != self._version:
            await anyio.to_thread.run_sync(self.refresh)

    def _read_version(self) -> str | None:
        with self._engine.connect() as conn:
            version = conn.execute(_READ, {"key": VERSION_KEY}).scalar()
        return None if version is None else str(version)

    async def _read_version_async(self) -> str | None:
        assert self._statements is not None
        row = await self._statements.first("version", key=VERSION_KEY)
        return None if row is None or row[0] is None else str(row[0])

    async def aclose(self) -> None:
        """Close this event loop's connections (at the app's shutdown)."""
        if self._statements is not None:
            await self._statements.aclose()

    def changed(self) -> None:
        """Mark the tables changed (in a transaction of its own) and re-read them."""
        with Session(self._engine) as s:
            mark_changed(s)
            s.commit()
        self.refresh()

    def refresh(self) -> None:
        """Re-read partners, products and courses (after any change to them)."""
        with Session(self._engine) as s:
            # the version first: a change committed while the tables are read shows as a newer version
            # next time, never as new tables under an old version
            version = s.connection().execute(_READ, {"key": VERSION_KEY}).scalar()
            partners = s.exec(select(Partner)).all()
            products = s.exec(select(Product)).all()
            courses = s.exec(select(KnowledgeItem.id, KnowledgeItem.position)).all()
        products_of: dict[str, list[str]] = {}
        for prod in products:
            products_of.setdefault(prod.partner_id, []).append(prod.id)
        tables = _Tables(
            keys={p.api_key_hash: PartnerAuth(p.id, p.name, p.address) for p in partners},
            products_of=products_of,
            product_names={p.id: p.name for p in products},
            positions={cid: int(pos) for cid, pos in courses if pos is not None},
        )
        with self._lock:
            self._tables = tables
            self._version = None if version is None else str(version)
            self.generation += 1

    def partner_for_key(self, api_key: str) -> PartnerAuth | None:
        return self._tables.keys.get(key_hash(api_key))

    def is_operator_key(self, api_key: str) -> bool:
        return same_key(api_key, self._operator_key_hash)

    def partner_products(self, partner_id: str, model: ServedModel) -> list[int]:
        """The rows in ``model`` of ``partner_id``'s products (the candidates a partner's request may
        rank); products the model does not know are not candidates."""
        tables = self._tables
        rows = tables.rows.get(model.version)
        if rows is None:
            index = model.product_index
            rows = {
                partner: sorted(index[p] for p in ids if p in index)
                for partner, ids in tables.products_of.items()
            }
            tables.rows[model.version] = rows  # a benign race: two threads compute the same table
        return rows.get(partner_id, [])

    def course_index(self, model: ServedModel) -> dict[str, int]:
        """Knowledge item id → its row in ``model``'s topic space: the order the model's profile builder was
        fitted on, or (for a model without one) the positions stored with the catalogue."""
        index = model.course_index
        return self._tables.positions if index is None else index

    def product_name(self, product_id: str) -> str:
        return self._tables.product_names.get(product_id, product_id)

    def products_of(self, partner_id: str) -> list[str]:
        return list(self._tables.products_of.get(partner_id, []))
