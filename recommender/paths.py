"""Where the recommender finds the repository, the shared real data and its download cache.

The real data sets (Udemy catalogue, CoIL 2000 insurance) are read-only and live *beside* the checkout in
``../shared/data`` so they never get committed. Tests, scripts and library code all resolve that folder
through :func:`data_dir`, so moving the checkout or pointing at another copy is one environment variable
(``KNOWLEDGER_DATA_DIR``) rather than a search-and-replace. Downloaded artefacts (e.g. the ``recbole``
wheel that carries MovieLens-100k) go to :func:`cache_dir` (``~/.cache/knowledger`` unless
``KNOWLEDGER_CACHE_DIR`` says otherwise) so a fresh machine can rebuild everything itself.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "KNOWLEDGER_DATA_DIR"
CACHE_DIR_ENV = "KNOWLEDGER_CACHE_DIR"

#: Root of the repository checkout (the folder holding ``recommender/`` and ``pyproject.toml``).
REPO_ROOT: Path = Path(__file__).resolve().parents[1]


def repo_root() -> Path:
    """The repository root, derived from this file's location (independent of the working directory)."""
    return REPO_ROOT


def _candidate_data_dirs() -> list[Path]:
    """``shared/data`` next to the repository root first, then at each ancestor of this file."""
    candidates = [REPO_ROOT.parent / "shared" / "data", REPO_ROOT / "shared" / "data"]
    candidates += [parent / "shared" / "data" for parent in Path(__file__).resolve().parents]
    seen: list[Path] = []
    for candidate in candidates:
        if candidate not in seen:
            seen.append(candidate)
    return seen


def data_dir() -> Path:
    """The shared real-data folder.

    ``KNOWLEDGER_DATA_DIR`` wins when set (it must exist, so a typo fails loudly instead of silently
    falling back). Otherwise the first existing ``shared/data`` among :func:`_candidate_data_dirs`.
    Raises :class:`FileNotFoundError` naming every place looked at.
    """
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        path = Path(override).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"{DATA_DIR_ENV}={override!r} does not name an existing directory")
        return path
    candidates = _candidate_data_dirs()
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"shared data directory not found (looked at {looked}); set {DATA_DIR_ENV} to its location"
    )


#: Alias used by the evaluation code; same resolution rules as :func:`data_dir`.
shared_data_dir = data_dir


def data_file(relative: str | Path) -> Path:
    """A file inside :func:`data_dir`, with an error naming the full expected path when it is missing."""
    try:
        base = data_dir()
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"cannot locate shared data file {relative!s}: {exc}") from exc
    path = base / relative
    if not path.is_file():
        raise FileNotFoundError(
            f"shared data file {path} is missing (expected under {base}; set {DATA_DIR_ENV} to override)"
        )
    return path


def cache_dir(create: bool = True) -> Path:
    """Download cache: ``KNOWLEDGER_CACHE_DIR`` or ``~/.cache/knowledger`` (created unless ``create=False``).

    Shared with the MovieLens reader, which keeps the ``recbole`` wheel here.
    """
    override = os.environ.get(CACHE_DIR_ENV)
    path = Path(override).expanduser() if override else Path.home() / ".cache" / "knowledger"
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path
