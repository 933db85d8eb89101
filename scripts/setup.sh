#!/usr/bin/env bash
# Create .venv and install chessrec with the pinned dependency set (requirements.lock).
# Idempotent: does nothing when .venv already matches the lock file and pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
stamp=".venv/.chessrec-installed"
want="$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "setup: installing chessrec and its pinned dependencies into .venv (first run: a few minutes)"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# torch is pinned to the CPU build 2.13.0; a GPU user installs a CUDA build of torch 2.13.0 into
# .venv first (see README), which satisfies the same pin and is kept.
.venv/bin/python -m pip install --quiet -r requirements.lock
.venv/bin/python -m pip install --quiet --no-deps -e .
echo "$want" > "$stamp"
echo "setup: done"
