"""Erased learners stay erased: a register of keyed hashes of their platform ids.

Erasure deletes the platform's id of the learner, so nothing in the database could say that an event sent
later under that id belongs to an erased learner. The register keeps ``HMAC-SHA256(key, platform id)``
instead: it answers "was this id erased?" without holding the id, and without the key (kept in
``service_meta``) a copy of the table cannot be checked against a list of ids.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from backend.models import ErasedLearner, ServiceMeta

KEY_NAME = "erasure_key"


class ErasureRegister:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._key: bytes | None = None

    def ensure_key(self) -> None:
        """Read (or create) the key now, in its own transaction: not later inside a caller's write, which on
        SQLite would wait on itself."""
        self._secret()

    def _secret(self) -> bytes:
        if self._key is None:
            with Session(self._engine) as s:
                row = s.get(ServiceMeta, KEY_NAME)
                if row is None:
                    s.add(ServiceMeta(key=KEY_NAME, value=secrets.token_hex(32)))
                    try:
                        s.commit()
                    except IntegrityError:  # another process wrote it first
                        s.rollback()
                    row = s.get(ServiceMeta, KEY_NAME)
                assert row is not None
                self._key = bytes.fromhex(row.value)
        return self._key

    def digest(self, platform_user_id: str) -> str:
        return hmac.new(self._secret(), platform_user_id.encode("utf-8"), hashlib.sha256).hexdigest()

    def record(self, session: Session, platform_user_id: str) -> None:
        """Register ``platform_user_id`` as erased (in the caller's transaction)."""
        digest = self.digest(platform_user_id)
        if session.get(ErasedLearner, digest) is None:
            session.add(ErasedLearner(digest=digest))

    def erased(self, session: Session, platform_user_ids: Iterable[str]) -> set[str]:
        """Which of ``platform_user_ids`` belong to erased learners."""
        by_digest = {self.digest(p): p for p in set(platform_user_ids)}
        found: set[str] = set()
        digests = list(by_digest)
        for start in range(0, len(digests), 5_000):
            chunk = digests[start : start + 5_000]
            rows = session.exec(select(col(ErasedLearner.digest)).where(col(ErasedLearner.digest).in_(chunk)))
            found.update(by_digest[d] for d in rows.all())
        return found
