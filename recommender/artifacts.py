"""Versioned model artifacts: a directory with ``arrays.npz`` and ``metadata.json``.

Layout: ``<root>/<model name>/<version>/{arrays.npz, metadata.json}``. Nothing is pickled: the arrays
are plain numpy (``allow_pickle=False`` on load), so loading an artifact cannot run code, and the
metadata is JSON a person can read. The metadata records what is needed to trust and reproduce a
model: name, version, creation time, a fingerprint of the training data, the evaluation metrics, the
feature dimensions the model expects, the seed and the format version. Which version is the newest is
decided by one rule, :func:`newest_artifact` (by the recorded creation time), used by
:func:`resolve_artifact` and :func:`latest_version`.

Arrays are namespaced: ``model/<name>`` for the model's fitted arrays (see
:mod:`recommender.models.registry`; the model's spec is in the metadata's ``params["spec"]``),
``serving/<name>`` for what the ranker needs besides the model (the non-personalised baseline) and
``knowledge/<name>`` for the topic space that explanations need (LSA components, vocabulary, TF-IDF of
courses and products), stored as arrays too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommender.models.base import InteractionData

FORMAT_VERSION = 1
ARRAYS_FILE = "arrays.npz"
METADATA_FILE = "metadata.json"
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


class ArtifactError(ValueError):
    """An artifact directory is missing, incomplete or of an unknown format."""


@dataclass
class ArtifactMetadata:
    """What ``metadata.json`` holds."""

    model_name: str
    version: str
    created_at: str
    data_fingerprint: str
    feature_dims: dict[str, int]
    seed: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    item_ids: list[str] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=_json_default)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ArtifactMetadata:
        required = (
            "model_name",
            "version",
            "created_at",
            "data_fingerprint",
            "feature_dims",
            "format_version",
        )
        missing = [key for key in required if key not in raw]
        if missing:
            raise ArtifactError(f"metadata.json lacks {missing}")
        if raw["format_version"] != FORMAT_VERSION:
            raise ArtifactError(
                f"artifact format_version {raw['format_version']} is not supported "
                f"(expected {FORMAT_VERSION})"
            )
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in raw.items() if k in known})


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in metadata.json")


def data_fingerprint(data: InteractionData) -> str:
    """SHA-256 over the interaction structure and the feature matrices: same data, same fingerprint."""
    digest = hashlib.sha256()
    x = sp.csr_matrix(data.interactions)
    x.sort_indices()
    digest.update(np.asarray(x.shape, dtype=np.int64).tobytes())
    digest.update(np.asarray(x.indptr, dtype=np.int64).tobytes())
    digest.update(np.asarray(x.indices, dtype=np.int64).tobytes())
    digest.update(np.asarray(x.data, dtype=np.float32).tobytes())
    for name, arr in (("items", data.item_features), ("users", data.user_features)):
        digest.update(name.encode())
        if arr is not None:
            a = np.ascontiguousarray(arr, dtype=np.float32)
            digest.update(np.asarray(a.shape, dtype=np.int64).tobytes())
            digest.update(a.tobytes())
    return "sha256:" + digest.hexdigest()


def default_version(fingerprint: str, now: dt.datetime | None = None) -> str:
    """``YYYYMMDDTHHMMSSZ-<first 8 hex of the data fingerprint>``: sortable and tied to the data."""
    now = now or dt.datetime.now(dt.UTC)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{fingerprint.split(':')[-1][:8]}"


def save_artifact(
    root: str | Path,
    arrays: dict[str, np.ndarray],
    metadata: ArtifactMetadata,
    overwrite: bool = False,
) -> Path:
    """Write ``arrays`` and ``metadata`` to ``root/<model_name>/<version>``; returns that directory."""
    if not _VERSION_RE.match(metadata.version):
        raise ArtifactError(f"version {metadata.version!r} must match {_VERSION_RE.pattern}")
    if not _VERSION_RE.match(metadata.model_name):
        raise ArtifactError(f"model_name {metadata.model_name!r} must match {_VERSION_RE.pattern}")
    for key, value in arrays.items():
        if not isinstance(value, np.ndarray):
            raise ArtifactError(f"array {key!r} is a {type(value).__name__}, not a numpy array")
        if value.dtype == object:
            raise ArtifactError(
                f"array {key!r} has dtype object; only plain numeric/string arrays are stored"
            )
    target = Path(root) / metadata.model_name / metadata.version
    if target.exists() and not overwrite:
        raise ArtifactError(f"{target} already exists; pick a new version or pass overwrite=True")
    target.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(target / ARRAYS_FILE, **arrays)  # type: ignore[arg-type]
    (target / METADATA_FILE).write_text(metadata.to_json() + "\n", encoding="utf-8")
    return target


def load_artifact(path: str | Path) -> tuple[dict[str, np.ndarray], ArtifactMetadata]:
    """Read an artifact directory written by :func:`save_artifact`."""
    directory = Path(path)
    arrays_path, meta_path = directory / ARRAYS_FILE, directory / METADATA_FILE
    if not directory.is_dir():
        raise ArtifactError(f"{directory} is not an artifact directory")
    for needed in (arrays_path, meta_path):
        if not needed.is_file():
            raise ArtifactError(f"{directory} lacks {needed.name}")
    try:
        raw = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{meta_path} is not valid JSON: {exc}") from exc
    metadata = ArtifactMetadata.from_dict(raw)
    with np.load(arrays_path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    return arrays, metadata


def record_metrics(path: str | Path, metrics: dict[str, Any]) -> ArtifactMetadata:
    """Store ``metrics`` (numbers only) as the evaluation metrics of the artifact at ``path``, e.g. the
    held-out figures measured by loading it after it was written; returns the updated metadata."""
    directory = Path(path)
    _, metadata = load_artifact(directory)
    metadata.metrics = {
        k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }
    tmp = directory / (METADATA_FILE + ".tmp")
    tmp.write_text(metadata.to_json() + "\n", encoding="utf-8")
    tmp.replace(directory / METADATA_FILE)
    return metadata


def _versions(base: Path) -> list[Path]:
    """The version directories of one model: the sub-directories of ``base`` that hold metadata."""
    if not base.is_dir():
        return []
    return [p for p in base.iterdir() if p.is_dir() and (p / METADATA_FILE).is_file()]


def _creation_key(directory: Path) -> tuple[dt.datetime, int, str]:
    """Sort key of :func:`newest_artifact`: recorded creation time, metadata mtime, version name."""
    meta = directory / METADATA_FILE
    mtime_ns = meta.stat().st_mtime_ns
    try:
        created = dt.datetime.fromisoformat(str(json.loads(meta.read_text(encoding="utf-8"))["created_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        created = dt.datetime.fromtimestamp(mtime_ns / 1e9, dt.UTC)
    if created.tzinfo is None:
        created = created.replace(tzinfo=dt.UTC)
    return created, mtime_ns, directory.name


def newest_artifact(directories: Iterable[Path]) -> Path | None:
    """The newest of ``directories`` (artifact directories), ``None`` when there is none.

    The one rule for "newest": the latest ``created_at`` recorded in ``metadata.json`` (ISO 8601, compared
    as instants; a time without offset counts as UTC). The recorded time travels with the artifact, so
    copying or touching a directory does not change which model is newest, and version names may be
    anything. Times recorded to the same second are told apart by the modification time of
    ``metadata.json``, then by the version name. An artifact whose metadata cannot be read or records no
    readable time counts as created when its ``metadata.json`` was last written.
    """
    return max(directories, key=_creation_key, default=None)


def resolve_artifact(path: str | Path, model_name: str | None = None) -> Path | None:
    """The artifact directory ``path`` designates: ``path`` itself when it is one (it holds
    ``arrays.npz`` or ``metadata.json``; loading reports what is missing), else the newest version under
    it (``path/<model name>/<version>``, see :func:`newest_artifact`) of ``model_name``, or of any model
    when ``model_name`` is ``None``, else ``None``.
    """
    directory = Path(path)
    if (directory / ARRAYS_FILE).is_file() or (directory / METADATA_FILE).is_file():
        return directory
    if model_name is not None:
        return newest_artifact(_versions(directory / model_name))
    if not directory.is_dir():
        return None
    return newest_artifact([v for sub in sorted(directory.iterdir()) if sub.is_dir() for v in _versions(sub)])


def latest_version(root: str | Path, model_name: str) -> Path:
    """The newest version directory of ``model_name`` under ``root`` (see :func:`newest_artifact`)."""
    newest = newest_artifact(_versions(Path(root) / model_name))
    if newest is None:
        raise ArtifactError(f"no artifact of {model_name!r} under {root}")
    return newest
