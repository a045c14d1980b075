"""The committed compiler output, ``contracts/artifacts/<Contract>.json`` (ABI, bytecode, compiler settings,
input hash): what the clients deploy and decode with. Writing it is ``compiler.py``'s job; reading it needs
no compiler, so importing the chain layer never imports the Solidity toolchain.
"""

from __future__ import annotations

import json
from typing import Any

from .constants import ARTIFACTS_DIR


class CompilerError(RuntimeError):
    """The Solidity toolchain is missing, the sources do not compile, or an artifact is missing."""


def load_artifact(name: str) -> dict[str, Any]:
    path = ARTIFACTS_DIR / f"{name}.json"
    if not path.is_file():
        raise CompilerError(f"artifact {path} missing: run `make contracts` to compile.")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
