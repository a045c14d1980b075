"""The chain layer's module layout as an absence: eth-tester and py-evm only in ``embedded.py`` (import loops
and module length are checked for the whole project in ``tests/test_boundaries.py``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CHAIN = Path(__file__).resolve().parents[2] / "backend" / "chain"
MODULES = sorted(CHAIN.glob("*.py"))


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(modules of this package it imports, top-level packages it imports), wherever the import is."""
    ours: set[str] = set()
    theirs: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                ours.add(node.module.split(".")[0])
            else:
                ours.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            theirs.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            theirs.update(alias.name.split(".")[0] for alias in node.names)
    return ours, theirs


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_only_embedded_touches_eth_tester_and_py_evm(path: Path) -> None:
    if path.stem == "embedded":
        return
    assert not {"eth_tester", "eth"} & _imports(path)[1], (
        f"{path.name}: eth-tester/py-evm belong in embedded.py"
    )
