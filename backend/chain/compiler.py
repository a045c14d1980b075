"""Compile the Solidity sources in ``contracts/`` with the pinned solcjs through py-solc-x.

py-solc-x cannot download a native ``solc`` here, so it calls ``contracts/toolchain/solc-shim.js`` as its
``solc_binary``: a tiny solc-compatible CLI over the npm ``solc`` package pinned in ``package.json``.
The compiler is given no file-system access: every import (our own and OpenZeppelin's from
``node_modules/@openzeppelin/contracts``) is resolved here and inlined into the standard-JSON input.

The result is written to ``contracts/artifacts/<Contract>.json`` (ABI, bytecode, compiler version and
settings, and a hash of the inputs), one per name in ``constants.CONTRACT_NAMES``; then the contract errors
module is regenerated from them (``codegen``). ``tests/chain/test_artifacts.py`` recompiles and fails if a
fresh compile differs from the committed artifacts, or the errors module from what they generate.

    python -m backend.chain.compiler                 # compile, write the artifacts and contract_errors.py
    python -m backend.chain.compiler --errors-only   # regenerate contract_errors.py from the artifacts
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import solcx

from . import codegen
from .artifacts import CompilerError
from .constants import ARTIFACTS_DIR, CONTRACT_NAMES, REPO_ROOT

CONTRACTS_DIR = REPO_ROOT / "contracts"
SHIM = CONTRACTS_DIR / "toolchain" / "solc-shim.js"
NODE_MODULES = REPO_ROOT / "node_modules"

SOLC_VERSION = "0.8.28"
SETTINGS: dict[str, Any] = {
    "evmVersion": "cancun",
    "optimizer": {"enabled": True, "runs": 1_000_000},
    "viaIR": True,
    "metadata": {"bytecodeHash": "none", "appendCBOR": False},
    "outputSelection": {
        "*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "evm.methodIdentifiers"]}
    },
}

_IMPORT_RE = re.compile(r"""^\s*import\s+(?:[^'"]*\s+from\s+)?["']([^"']+)["']\s*;""", re.MULTILINE)


@dataclass(frozen=True)
class CompiledContract:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str

    def to_artifact(self, input_hash: str) -> dict[str, Any]:
        return {
            "contractName": self.name,
            "abi": self.abi,
            "bytecode": self.bytecode,
            "deployedBytecode": self.deployed_bytecode,
            "compiler": {"name": "solc", "version": SOLC_VERSION, "settings": _artifact_settings()},
            "inputHash": input_hash,
        }


def _artifact_settings() -> dict[str, Any]:
    return {k: v for k, v in SETTINGS.items() if k != "outputSelection"}


def _resolve(import_path: str, importer_key: str) -> tuple[str, Path]:
    """Map an import to (source unit key, file on disk)."""
    if import_path.startswith("@openzeppelin/"):
        return import_path, NODE_MODULES / import_path
    if import_path.startswith("."):
        base = Path(importer_key).parent
        key = str(base / import_path).replace("\\", "/")
        parts: list[str] = []
        for part in key.split("/"):
            if part == "..":
                parts.pop()
            elif part and part != ".":
                parts.append(part)
        key = "/".join(parts)
        if key.startswith("@openzeppelin/"):
            return key, NODE_MODULES / key
        return key, REPO_ROOT / key
    return import_path, REPO_ROOT / import_path


def collect_sources() -> dict[str, str]:
    """Every source unit reachable from ``contracts/**/*.sol``, keyed as solc sees it."""
    if not (NODE_MODULES / "@openzeppelin" / "contracts").is_dir():
        raise CompilerError(
            f"OpenZeppelin sources not found under {NODE_MODULES}: run `npm ci` in {REPO_ROOT} first."
        )
    roots = sorted(
        p for p in CONTRACTS_DIR.rglob("*.sol") if "artifacts" not in p.parts and "toolchain" not in p.parts
    )
    sources: dict[str, str] = {}
    queue = [(str(p.relative_to(REPO_ROOT)), p) for p in roots]
    while queue:
        key, path = queue.pop()
        if key in sources:
            continue
        if not path.is_file():
            raise CompilerError(f"Solidity import {key!r} not found at {path}")
        text = path.read_text(encoding="utf-8")
        sources[key] = text
        for imp in _IMPORT_RE.findall(text):
            queue.append(_resolve(imp, key))
    return dict(sorted(sources.items()))


def standard_input(sources: dict[str, str] | None = None) -> dict[str, Any]:
    sources = collect_sources() if sources is None else sources
    return {
        "language": "Solidity",
        "sources": {k: {"content": v} for k, v in sources.items()},
        "settings": SETTINGS,
    }


def input_hash(std_input: dict[str, Any]) -> str:
    blob = json.dumps({"version": SOLC_VERSION, "input": std_input}, sort_keys=True).encode()
    return "0x" + hashlib.sha256(blob).hexdigest()


def _check_toolchain() -> None:
    if shutil.which("node") is None:
        raise CompilerError("`node` is not on PATH: install Node.js (Debian package nodejs) to compile.")
    if not (NODE_MODULES / "solc").is_dir():
        raise CompilerError(f"npm package solc not found under {NODE_MODULES}: run `npm ci` first.")


def compile_all() -> dict[str, CompiledContract]:
    """Compile every contract; return those declared in ``contracts/*.sol`` (not libraries of OZ)."""
    _check_toolchain()
    std = standard_input()
    try:
        out = solcx.compile_standard(std, solc_binary=SHIM, allow_empty=True)
    except solcx.exceptions.SolcError as exc:  # pragma: no cover - depends on the sources
        raise CompilerError(str(exc)) from exc
    errors = [e for e in out.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise CompilerError("\n".join(e.get("formattedMessage", e.get("message", "")) for e in errors))
    result: dict[str, CompiledContract] = {}
    for unit, contracts in out["contracts"].items():
        if not unit.startswith("contracts/"):
            continue
        for name, data in contracts.items():
            result[name] = CompiledContract(
                name=name,
                abi=data["abi"],
                bytecode="0x" + data["evm"]["bytecode"]["object"],
                deployed_bytecode="0x" + data["evm"]["deployedBytecode"]["object"],
            )
    return result


def build_artifacts() -> dict[str, dict[str, Any]]:
    """Fresh artifacts for the deployable contracts, as they would be written to disk."""
    compiled = compile_all()
    h = input_hash(standard_input())
    missing = [n for n in CONTRACT_NAMES if n not in compiled]
    if missing:
        raise CompilerError(f"contracts not found in the sources: {', '.join(missing)}")
    return {n: compiled[n].to_artifact(h) for n in CONTRACT_NAMES}


def write_artifacts(artifacts: dict[str, dict[str, Any]] | None = None) -> list[Path]:
    artifacts = build_artifacts() if artifacts is None else artifacts
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    written = []
    for name, art in artifacts.items():
        path = ARTIFACTS_DIR / f"{name}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(art, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(path)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m backend.chain.compiler",
        description="Compile the contracts into contracts/artifacts/ and regenerate contract_errors.py",
    )
    parser.add_argument(
        "--errors-only",
        action="store_true",
        help="only regenerate contract_errors.py from the committed artifacts (no compiler needed)",
    )
    args = parser.parse_args(argv)
    written = [] if args.errors_only else write_artifacts()
    written.append(codegen.write_module())
    for path in written:
        print(path.relative_to(REPO_ROOT))


if __name__ == "__main__":  # pragma: no cover
    main()
