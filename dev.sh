#!/usr/bin/env bash
# The project's two set-up commands (see README):
#   ./dev.sh demo    create .venv, install, train a short IRNN run (10 epochs of the embedded
#                    MNIST subset with the fast preset, ~1-2 minutes)
#   ./dev.sh test    create .venv, install with test extras, run the whole test suite
# and one more that CI runs:
#   ./dev.sh matrix  the Chainer 1.0 ... 7.8.1 x NumPy 1/2 matrix (tools/matrix.py)
# Extra arguments go to irnn-chainer train / pytest / the matrix script.
set -euo pipefail
cd "$(dirname "$0")"
# PYTHON: the interpreter the venv is made from; IRNN_VENV: the venv's folder (CI makes one
# per Python: IRNN_VENV=.venv312 PYTHON=.../3.12.1/bin/python ./dev.sh test).
PY=${PYTHON:-python3}
VENV=${IRNN_VENV:-.venv}

setup() {
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  # Chainer is a source package whose setup.py imports pkg_resources, which
  # setuptools >= 82 removed: this constraint reaches pip's isolated builds too.
  export PIP_CONSTRAINT="$PWD/constraints.txt"
  # Sweeps (Optuna, PostgreSQL driver) always; mpi4py where an MPI is installed (ChainerMN).
  local extras=test,sweep
  if command -v mpiexec >/dev/null 2>&1; then extras=$extras,mpi; fi
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[$extras]"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  demo)
    setup
    exec "$VENV/bin/irnn-chainer" train --dataset embedded --preset fast --epoch 10 --out result/demo --force "$@"
    ;;
  test)
    setup
    exec "$VENV/bin/python" -m pytest -q "$@"
    ;;
  matrix)
    setup
    exec "$VENV/bin/python" tools/matrix.py "$@"
    ;;
  *)
    echo "usage: ./dev.sh demo|test|matrix [args...]" >&2
    exit 2
    ;;
esac
