"""The committed artifacts are exactly what the pinned compiler makes of the committed sources."""

from __future__ import annotations

import json

import pytest

from backend.chain.compiler import ARTIFACTS_DIR, DEPLOYABLE, CompilerError, build_artifacts


def test_committed_artifacts_match_a_fresh_compile() -> None:
    try:
        fresh = build_artifacts()
    except CompilerError as exc:
        pytest.fail(f"the contracts do not compile: {exc}")
    stale = []
    for name in DEPLOYABLE:
        path = ARTIFACTS_DIR / f"{name}.json"
        committed = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        if committed != fresh[name]:
            stale.append(name)
    assert not stale, (
        f"contracts/artifacts/ is out of date for {', '.join(stale)}: run `make contracts` "
        "(python -m backend.chain.compiler) and commit the result"
    )
