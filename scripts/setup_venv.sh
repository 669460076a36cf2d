#!/usr/bin/env bash
# Creates .venv from requirements/lock.txt. Idempotent: a stamp holding the hash of the lock
# and of pyproject.toml makes a second run take well under a second when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${FRLITE_PYTHON:-python3.11}
VENV=.venv
STAMP=$VENV/.frlite-stamp
want=$(cat requirements/lock.txt pyproject.toml | sha256sum | cut -d' ' -f1)

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/frlite" ]; then
  exit 0
fi

command -v "$PY" >/dev/null || { echo "setup: $PY not found; install Python 3.11 or set FRLITE_PYTHON" >&2; exit 1; }
"$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || { echo "setup: $PY is not Python 3.11 (onnx2tf 1.29.24 needs 3.11)" >&2; exit 1; }

# torch 2.13.0+cpu is only on the local wheel store, never the CUDA build from the index.
FIND_LINKS=()
[ -d /opt/wheels ] && FIND_LINKS=(--find-links /opt/wheels)

echo "setup: creating $VENV from requirements/lock.txt (about a minute the first time)"
[ -d "$VENV" ] || "$PY" -m venv "$VENV"
# pip warns about every local index folder lacking a package; that noise hides real errors
quiet() { "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }
quiet "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
  "${FIND_LINKS[@]}" -r requirements/lock.txt
quiet "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
  --no-build-isolation -e .
"$VENV/bin/python" -c 'import torch, sys; sys.exit(0 if torch.__version__ == "2.13.0+cpu" else "setup: torch is " + torch.__version__ + ", expected 2.13.0+cpu")'
echo "$want" > "$STAMP"
echo "setup: $VENV ready"
