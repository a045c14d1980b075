"""Architecture invariants that are easiest to state as absences (see ARCHITECTURE.md)."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def _python_files(*dirs: str) -> list[Path]:
    return sorted(p for d in dirs for p in (ROOT / d).rglob("*.py"))


@pytest.mark.parametrize(
    "path", _python_files("backend", "recommender", "scripts"), ids=lambda p: str(p.relative_to(ROOT))
)
def test_only_the_chain_layer_imports_web3(path: Path) -> None:
    if (ROOT / "backend" / "chain") in path.parents:
        return
    assert not {"web3", "eth_tester"} & _imports(path), (
        f"{path} imports web3 directly: go through backend.chain"
    )


@pytest.mark.parametrize("path", _python_files("recommender"), ids=lambda p: str(p.relative_to(ROOT)))
def test_recommender_imports_no_chain_service_or_backend(path: Path) -> None:
    forbidden = {"web3", "eth_tester", "eth_account", "fastapi", "starlette", "backend", "sqlmodel"}
    assert not forbidden & _imports(path), f"{path} imports {forbidden & _imports(path)}"


def test_movielens_is_never_tracked() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.splitlines()
    if not tracked:
        pytest.skip("not a git checkout")
    bad = [f for f in tracked if re.search(r"(^|/)(ml-100k|ml-1m|u\.data|ratings\.dat)|\.inter$", f)]
    assert bad == []


def test_no_private_key_outside_devnet_and_tests() -> None:
    key = re.compile(r"0x[0-9a-fA-F]{64}\b")
    offenders = []
    for path in _python_files("backend", "recommender", "scripts"):
        if path.name == "devnet.py":
            continue
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if key.search(line) and "key" in line.lower():
                offenders.append(f"{path.relative_to(ROOT)}:{lineno}")
    assert offenders == []
