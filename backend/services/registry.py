"""The model registry: every model version the service trained or found, kept in the database.

A version's row holds its artifact (the artifact directory as a zip archive, with its SHA-256), what it was
trained on, its held-out metrics on its own split, and the quality gate's verdict. Which version serves is
one fact, the ``served_model`` entry of ``service_meta``, changed only by :meth:`ModelRegistry.record_serving`
together with the versions' statuses and a line of history (:class:`backend.models.ModelEvent`), in one
transaction. Every process (and every host) loads the served version from here: an artifact is unpacked
into ``<state dir>/model-cache/<version>`` once and checked against its hash before it is loaded.

The archive holds the profile builder, which loads with joblib (it can run code): the registry is as
trusted as the database, and only the service's own training writes to it.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import threading
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import defer
from sqlmodel import Session, col, select

from backend.models import ModelEvent, ModelStatus, ModelVersion, ServiceMeta, utcnow
from backend.services.model import ServedModel
from recommender.artifacts import ArtifactError, load_artifact
from recommender.profile_store import load_profile_builder
from recommender.serving import ProductRanker

SERVED_KEY = "served_model"
#: An archive larger than this is refused (a model of the platform's size is a few megabytes).
MAX_ARCHIVE_BYTES = 512 * 1024 * 1024


class RegistryError(ValueError):
    """A version that cannot be registered or loaded (the message says which and why)."""


def pack(directory: Path) -> bytes:
    """The artifact directory as a zip archive (files only, sorted, so equal directories give equal bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        for path in sorted(p for p in directory.rglob("*") if p.is_file() and not p.name.startswith(".")):
            info = zipfile.ZipInfo(str(path.relative_to(directory)), date_time=(2020, 1, 1, 0, 0, 0))
            zf.writestr(info, path.read_bytes())
    return buffer.getvalue()


def unpack(archive: bytes, target: Path) -> None:
    """Unpack ``archive`` into ``target`` (replaced whole: written beside it, then renamed)."""
    tmp = target.with_name(target.name + ".unpacking")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        for name in zf.namelist():
            dest = (tmp / name).resolve()
            if not dest.is_relative_to(tmp.resolve()):
                raise RegistryError(f"archive entry {name!r} points outside the model directory")
        zf.extractall(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def load_served(path: Path) -> ServedModel:
    """The ranker and the profile builder of the artifact at ``path``."""
    try:
        return ServedModel(ProductRanker.load(path), load_profile_builder(path), path)
    except (ArtifactError, OSError, ValueError) as exc:
        raise RegistryError(f"cannot load the model at {path}: {exc}") from None


class ModelRegistry:
    def __init__(self, engine: Engine, cache_dir: Path) -> None:
        self._engine = engine
        self._cache = cache_dir
        self._lock = threading.Lock()
        self._product_rows: dict[str, list[str]] = {}

    # ------------------------------------------------------------------ reading
    def served_version(self) -> str | None:
        with Session(self._engine) as s:
            meta = s.get(ServiceMeta, SERVED_KEY)
            return None if meta is None else meta.value

    def get(self, version: str) -> ModelVersion | None:
        """A version's row without its archive."""
        with Session(self._engine, expire_on_commit=False) as s:
            stmt = select(ModelVersion).where(col(ModelVersion.version) == version)
            return s.exec(stmt.options(defer(ModelVersion.artifact))).first()  # type: ignore[arg-type]

    def versions(self) -> list[ModelVersion]:
        """Every version, newest first, without archives."""
        with Session(self._engine, expire_on_commit=False) as s:
            stmt = select(ModelVersion).order_by(col(ModelVersion.created_at).desc())
            return list(s.exec(stmt.options(defer(ModelVersion.artifact))).all())  # type: ignore[arg-type]

    def history(self, limit: int = 100) -> list[ModelEvent]:
        with Session(self._engine, expire_on_commit=False) as s:
            stmt = select(ModelEvent).order_by(col(ModelEvent.id).desc()).limit(limit)
            return list(s.exec(stmt).all())

    def product_rows(self, version: str) -> Sequence[str] | None:
        """The product ids of ``version`` in its rows' order (None for an unknown version). Cached: a
        version's rows never change."""
        rows = self._product_rows.get(version)
        if rows is None:
            with Session(self._engine) as s:
                found = s.exec(
                    select(ModelVersion.product_ids).where(col(ModelVersion.version) == version)
                ).first()
            if found is None:
                return None
            rows = self._product_rows[version] = list(found)
        return rows

    def previous_served(self) -> str | None:
        """The version served before the one serving now (what a rollback returns to)."""
        with Session(self._engine) as s:
            last = s.exec(
                select(ModelEvent)
                .where(col(ModelEvent.action).in_(["promoted", "rolled_back"]))
                .order_by(col(ModelEvent.id).desc())
                .limit(1)
            ).first()
        return None if last is None else last.previous

    # ------------------------------------------------------------------ writing
    def start_training(self, version: str, model_name: str, source: str) -> ModelVersion:
        """A row for a training job (status ``training``); :meth:`finish_training` or :meth:`fail` ends it."""
        row = ModelVersion(version=version, model_name=model_name, source=source)
        with Session(self._engine, expire_on_commit=False) as s:
            if s.get(ModelVersion, version) is not None:
                raise RegistryError(f"version {version!r} is already registered")
            s.add(row)
            s.commit()
        return row

    def set_progress(self, version: str, progress: float) -> None:
        with Session(self._engine) as s:
            row = s.get(ModelVersion, version)
            if row is not None and row.status == ModelStatus.TRAINING:
                row.progress = float(min(max(progress, 0.0), 1.0))
                s.add(row)
                s.commit()

    def fail(self, version: str, error: str) -> None:
        with Session(self._engine) as s:
            row = s.get(ModelVersion, version)
            if row is not None:
                row.status, row.error, row.finished_at = ModelStatus.FAILED, error[:2000], utcnow()
                s.add(row)
                s.commit()

    def register(
        self,
        artifact: Path,
        *,
        source: str,
        trained_on: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        gate: dict[str, Any] | None = None,
        status: ModelStatus = ModelStatus.CANDIDATE,
    ) -> ModelVersion:
        """Store the artifact directory ``artifact`` as a version (its own version name), finishing its
        training row if there is one."""
        try:
            _, meta = load_artifact(artifact)
        except ArtifactError as exc:
            raise RegistryError(str(exc)) from None
        builder = load_profile_builder(artifact)
        archive = pack(artifact)
        if len(archive) > MAX_ARCHIVE_BYTES:
            raise RegistryError(f"{artifact}: {len(archive)} bytes, more than {MAX_ARCHIVE_BYTES}")
        with Session(self._engine, expire_on_commit=False) as s:
            row = s.get(ModelVersion, meta.version)
            if row is not None and row.status != ModelStatus.TRAINING:
                raise RegistryError(f"version {meta.version!r} is already registered ({row.status})")
            row = row or ModelVersion(version=meta.version, model_name=meta.model_name, source=source)
            row.model_name = meta.model_name
            row.status = status
            row.progress = 1.0
            row.trained_on = trained_on or {"data_fingerprint": meta.data_fingerprint}
            row.metrics = metrics if metrics is not None else dict(meta.metrics)
            row.gate = gate or {}
            row.product_ids = list(meta.item_ids or [])
            row.course_ids = [] if builder is None else list(builder.item_ids)
            row.artifact = archive
            row.artifact_bytes = len(archive)
            row.artifact_sha256 = hashlib.sha256(archive).hexdigest()
            row.finished_at = utcnow()
            s.add(row)
            s.commit()
            row.artifact = None  # the caller gets the row, not the megabytes
        return row

    def record_serving(
        self, version: str, *, action: str, actor: str, detail: dict[str, Any] | None = None
    ) -> str | None:
        """Make ``version`` the served one (the previous served version becomes ``retired``), with a line
        of history; returns the previous version. One transaction."""
        with Session(self._engine) as s:
            row = s.get(ModelVersion, version)
            if row is None:
                raise RegistryError(f"unknown version {version!r}")
            meta = s.get(ServiceMeta, SERVED_KEY)
            previous = None if meta is None else meta.value
            if previous is not None and previous != version:
                old = s.get(ModelVersion, previous)
                if old is not None:
                    old.status = ModelStatus.RETIRED
                    s.add(old)
            row.status = ModelStatus.SERVED
            s.add(row)
            if meta is None:
                meta = ServiceMeta(key=SERVED_KEY, value=version)
            meta.value = version
            s.add(meta)
            s.add(
                ModelEvent(
                    action=action, version=version, previous=previous, actor=actor, detail=detail or {}
                )
            )
            s.commit()
        return previous

    def record_refusal(self, version: str, actor: str, gate: dict[str, Any]) -> None:
        with Session(self._engine) as s:
            row = s.get(ModelVersion, version)
            if row is not None:
                row.status, row.gate = ModelStatus.REJECTED, gate
                s.add(row)
            s.add(ModelEvent(action="refused", version=version, previous=None, actor=actor, detail=gate))
            s.commit()

    # ------------------------------------------------------------------ loading
    def materialise(self, version: str) -> Path:
        """The version's artifact directory in this host's cache (unpacked from the database if absent or
        not matching the recorded hash)."""
        target = self._cache / version
        stamp = target / ".sha256"
        with Session(self._engine) as s:
            found = s.exec(
                select(ModelVersion.artifact_sha256).where(col(ModelVersion.version) == version)
            ).first()
        if found is None:
            raise RegistryError(f"unknown version {version!r}")
        with self._lock:
            if stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == found:
                return target
            with Session(self._engine) as s:
                archive = s.exec(
                    select(ModelVersion.artifact).where(col(ModelVersion.version) == version)
                ).first()
            if not archive:
                raise RegistryError(f"version {version!r} has no artifact (it did not finish training)")
            if hashlib.sha256(archive).hexdigest() != found:
                raise RegistryError(f"version {version!r}: the stored archive does not match its SHA-256")
            self._cache.mkdir(parents=True, exist_ok=True)
            unpack(archive, target)
            (target / ".sha256").write_text(found, encoding="utf-8")
        return target

    def load(self, version: str) -> ServedModel:
        return load_served(self.materialise(version))
