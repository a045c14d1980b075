#!/usr/bin/env bash
# Start a local anvil devnet in the background: chain id 31337, the standard test mnemonic's accounts.
# PID file, log and connection info go to $KNOWLEDGER_DEVNET_RUN_DIR (default: .devnet/ at the repo root).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="${KNOWLEDGER_DEVNET_RUN_DIR:-$ROOT/.devnet}"
PORT="${KNOWLEDGER_DEVNET_PORT:-8545}"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
cd "$ROOT"
exec "$PYTHON" -m backend.cli devnet start --detach --port "$PORT" --run-dir "$RUN_DIR"
