"""The chain layer's module layout as absences: no import loop, eth-tester and py-evm only in
``embedded.py``, no hand-written module past 600 lines."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
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


def test_the_chain_package_has_no_import_loop() -> None:
    graph = {p.stem: _imports(p)[0] for p in MODULES if p.stem != "__init__"}
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        pytest.fail(f"import loop in backend/chain: {' -> '.join(exc.args[1])}")
    assert order[0] in graph


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_only_embedded_touches_eth_tester_and_py_evm(path: Path) -> None:
    if path.stem == "embedded":
        return
    assert not {"eth_tester", "eth"} & _imports(path)[1], (
        f"{path.name}: eth-tester/py-evm belong in embedded.py"
    )


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_hand_written_modules_stay_short(path: Path) -> None:
    if path.stem == "contract_errors":  # generated
        return
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= 600, f"{path.name} has {lines} lines: split it"
