"""The committed artifacts are exactly what the pinned compiler makes of the committed sources, and the
committed contract errors module is exactly what the generator makes of the committed artifacts."""

from __future__ import annotations

import json

import pytest

from backend.chain import codegen
from backend.chain.compiler import ARTIFACTS_DIR, CONTRACT_NAMES, CompilerError, build_artifacts


def test_committed_artifacts_match_a_fresh_compile() -> None:
    try:
        fresh = build_artifacts()
    except CompilerError as exc:
        pytest.fail(f"the contracts do not compile: {exc}")
    stale = []
    for name in CONTRACT_NAMES:
        path = ARTIFACTS_DIR / f"{name}.json"
        committed = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        if committed != fresh[name]:
            stale.append(name)
    assert not stale, (
        f"contracts/artifacts/ is out of date for {', '.join(stale)}: run `make contracts` "
        "(python -m backend.chain.compiler) and commit the result"
    )


def test_committed_error_module_is_what_the_artifacts_generate() -> None:
    committed = codegen.MODULE_FILE.read_text(encoding="utf-8")
    assert committed == codegen.generate(), (
        "backend/chain/contract_errors.py is out of date with contracts/artifacts/ or error_hints.toml: run "
        f"`{codegen.COMMAND}` and commit the result"
    )
