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


# ------------------------------------------------------------------------------------------ module layout
PACKAGES = ("backend", "recommender")
#: Modules written by a generator (each says so at its top, with the command that writes it).
GENERATED = {ROOT / "backend" / "chain" / "contract_errors.py"}
MAX_LINES = 600


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module → the project modules it imports, wherever the import sits (module level, inside a function,
    under ``TYPE_CHECKING``): a loop is a knot in the design even when Python can run it."""
    files = {
        _module_name(p): p for p in _python_files(*PACKAGES) if "migrations" not in p.relative_to(ROOT).parts
    }

    def known(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                deps.update(filter(None, (known(a.name) for a in node.names)))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                for alias in node.names:
                    target = f"{source}.{alias.name}"
                    found = target if target in files else known(source)
                    if found:
                        deps.add(found)
        deps.discard(module)
        graph[module] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_loop_in_backend_or_recommender() -> None:
    graph = _import_graph()
    assert "backend.container" in graph and "recommender.trainer" in graph
    assert _cycles(graph) == []


def test_the_loop_detector_finds_a_loop() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_only_the_composition_root_builds_services() -> None:
    """Services receive what they use: no service imports the container (or the app)."""
    graph = _import_graph()
    offenders = sorted(
        m
        for m, deps in graph.items()
        if m.startswith("backend.services.")
        and deps & {"backend.container", "backend.main", "backend.api.deps"}
    )
    assert offenders == []


@pytest.mark.parametrize(
    "path",
    [p for p in _python_files(*PACKAGES) if p not in GENERATED and "migrations" not in p.parts],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_hand_written_modules_stay_short(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines: split it by concern"


def test_generated_modules_say_so() -> None:
    for path in GENERATED:
        head = "\n".join(path.read_text(encoding="utf-8").splitlines()[:5]).lower()
        assert "generated" in head, path
