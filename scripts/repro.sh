#!/usr/bin/env bash
# Quickstart command 1: set everything up, then reproduce the pipeline on the embedded synthetic data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# stages run `python -m chessrec.stages.*`: that python must be the one in .venv
export PATH="$PWD/.venv/bin:$PATH" VIRTUAL_ENV="$PWD/.venv"
exec dvc repro "$@"
