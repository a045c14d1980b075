"""Which artifact is the newest: one rule, by the creation time recorded in the metadata."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from recommender.artifacts import (
    METADATA_FILE,
    ArtifactError,
    ArtifactMetadata,
    latest_version,
    newest_artifact,
    resolve_artifact,
    save_artifact,
)

JAN_2020 = 1_577_836_800  # 2020-01-01T00:00:00Z as epoch seconds


def save(root: Path, version: str, created_at: str, mtime: int | None = None, model: str = "hybrid") -> Path:
    """An artifact of ``model`` recorded as created at ``created_at``, its metadata written at ``mtime``."""
    path = save_artifact(
        root, {"x": np.zeros(1)}, ArtifactMetadata(model, version, created_at, "sha256:0", {})
    )
    if mtime is not None:
        os.utime(path / METADATA_FILE, (mtime, mtime))
    return path


def test_the_recorded_creation_time_wins_over_names_and_file_times(tmp_path: Path) -> None:
    # version names and modification times both point the other way
    save(tmp_path, "c-newest-name", "2024-01-01T00:00:00+00:00", mtime=JAN_2020 + 300)
    save(tmp_path, "b", "2024-06-01T00:00:00+00:00", mtime=JAN_2020 + 200)
    newest = save(tmp_path, "a", "2025-01-01T00:00:00+00:00", mtime=JAN_2020 + 100)
    assert resolve_artifact(tmp_path) == newest
    assert latest_version(tmp_path, "hybrid") == newest


def test_creation_times_compare_as_instants(tmp_path: Path) -> None:
    save(tmp_path, "v1", "2025-01-01T10:00:00+02:00")  # 08:00 UTC
    later = save(tmp_path, "v2", "2025-01-01T09:00:00+00:00")
    naive_utc = save(tmp_path, "v3", "2025-01-01T08:30:00")  # no offset: read as UTC
    assert resolve_artifact(tmp_path) == later
    assert newest_artifact([tmp_path / "hybrid" / "v1", naive_utc]) == naive_utc


def test_same_second_ties_go_to_the_later_write_then_the_name(tmp_path: Path) -> None:
    stamp = "2025-03-01T12:00:00+00:00"
    written_later = save(tmp_path, "a", stamp, mtime=JAN_2020 + 10)
    save(tmp_path, "b", stamp, mtime=JAN_2020)
    assert resolve_artifact(tmp_path) == written_later
    os.utime(written_later / METADATA_FILE, (JAN_2020, JAN_2020))
    assert resolve_artifact(tmp_path) == tmp_path / "hybrid" / "b"


def test_an_unreadable_time_counts_as_the_metadata_write_time(tmp_path: Path) -> None:
    year_2039 = JAN_2020 + 19 * 365 * 86400
    dated = save(tmp_path, "dated", "2025-01-01T00:00:00+00:00")
    undated = save(tmp_path, "undated", "yesterday", mtime=JAN_2020)
    assert resolve_artifact(tmp_path) == dated
    os.utime(undated / METADATA_FILE, (year_2039, year_2039))
    assert resolve_artifact(tmp_path) == undated
    (undated / METADATA_FILE).write_text("{not json", encoding="utf-8")
    os.utime(undated / METADATA_FILE, (JAN_2020, JAN_2020))
    assert resolve_artifact(tmp_path) == dated
    os.utime(undated / METADATA_FILE, (year_2039, year_2039))
    assert resolve_artifact(tmp_path) == undated


def test_an_artifact_directory_resolves_to_itself(tmp_path: Path) -> None:
    older = save(tmp_path, "v1", "2020-01-01T00:00:00+00:00")
    save(tmp_path, "v2", "2025-01-01T00:00:00+00:00")
    assert resolve_artifact(older) == older
    assert resolve_artifact(str(older)) == older
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "arrays.npz").write_bytes(b"")  # incomplete, but clearly meant: loading will say what lacks
    assert resolve_artifact(partial) == partial


def test_nothing_to_resolve(tmp_path: Path) -> None:
    assert resolve_artifact(tmp_path / "absent") is None
    assert resolve_artifact(tmp_path) is None
    (tmp_path / "hybrid" / "empty-version").mkdir(parents=True)  # no metadata: not a version
    assert resolve_artifact(tmp_path) is None
    assert newest_artifact([]) is None
    save(tmp_path, "v1", "2025-01-01T00:00:00+00:00", model="ease")
    # without a model name the newest artifact of any model is served; a name restricts the search
    assert resolve_artifact(tmp_path) == tmp_path / "ease" / "v1"
    assert resolve_artifact(tmp_path, "hybrid") is None
    assert resolve_artifact(tmp_path, "ease") == tmp_path / "ease" / "v1"
    with pytest.raises(ArtifactError, match="no artifact of 'hybrid'"):
        latest_version(tmp_path, "hybrid")
    save(tmp_path, "v2", "2025-02-01T00:00:00+00:00", model="hybrid")
    assert resolve_artifact(tmp_path) == tmp_path / "hybrid" / "v2"


def test_latest_version_follows_the_same_rule(tmp_path: Path) -> None:
    for i, created in enumerate(["2024-05-01T00:00:00Z", "2023-01-01T00:00:00Z", "2024-04-30T23:59:59Z"]):
        save(tmp_path, f"v{i}", created, mtime=JAN_2020 + 1000 - i)
    assert latest_version(tmp_path, "hybrid") == resolve_artifact(tmp_path) == tmp_path / "hybrid" / "v0"
