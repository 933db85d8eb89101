#!/usr/bin/env bash
# Quickstart command 2: set everything up, then run the test suite (slow tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# stages run `python -m chessrec.stages.*`: that python must be the one in .venv
export PATH="$PWD/.venv/bin:$PATH" VIRTUAL_ENV="$PWD/.venv"
exec python -m pytest "$@"
