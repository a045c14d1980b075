#!/usr/bin/env bash
# Stop the devnet started by start.sh: SIGTERM, wait up to 5 s, then SIGKILL; removes the PID file.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="${KNOWLEDGER_DEVNET_RUN_DIR:-$ROOT/.devnet}"
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
cd "$ROOT"
exec "$PYTHON" -m backend.cli devnet stop --run-dir "$RUN_DIR"
