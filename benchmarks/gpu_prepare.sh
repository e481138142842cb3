#!/usr/bin/env bash
# Prepare, on a machine with PyPI, what benchmarks/gpu_check.sh needs on a GPU machine
# without internet (docs/gpu.md):
#
#   benchmarks/gpu_prepare.sh [DIR]             DIR (default dist/gpu-check): wheels for
#       Python $TARGET_PY (3.12: the H200 machine's): Chainer 7.8.1 (pure Python, built with
#       `pip wheel --no-deps` under constraints.txt's setuptools<82), this project (with its
#       C kernel compiled here), the dependencies the
#       GPU machine may lack (matplotlib, pytest, ...; not NumPy or CuPy: the machine's own
#       are used), and the four MNIST files from $IRNN_MNIST_DIR (required).
#       About 45 MB. With SLIM=1 the wheels of packages a PyTorch/JAX/CuPy image already
#       has (matplotlib, pillow, pytest, six, protobuf, ...) are left out: about 15 MB.
#   benchmarks/gpu_prepare.sh cupy-venv [VENV]  a throwaway venv (default /tmp/irnn-cupy-venv,
#       ~3 GB) with cupy-cuda12x[ctk] and this project, for the opt-in no-driver tests:
#       IRNN_CUPY_VENV=VENV .venv/bin/python -m pytest tests/test_cuda_install.py
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PIP_CONSTRAINT=$ROOT/constraints.txt PIP_DISABLE_PIP_VERSION_CHECK=1
TARGET_PY=${TARGET_PY:-3.12}

# An interpreter of the target version (pyenv's too), to build the project's C kernel for it.
find_python() {
  local v=$1 c
  for c in "python$v" "$HOME/.pyenv/versions/$v"*/bin/python"$v"; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys' >/dev/null 2>&1; then
      command -v "$c"; return 0
    fi
  done
  echo "gpu_prepare: no Python $v here (set PY=/path/to/python$v)" >&2
  return 1
}

if [ "${1:-}" = cupy-venv ]; then
  VENV=${2:-/tmp/irnn-cupy-venv}
  PY=${PY:-$(find_python "$TARGET_PY")}
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q -e ".[test]" "cupy-cuda12x[ctk]"
  du -sh "$VENV"
  echo "IRNN_CUPY_VENV=$VENV .venv/bin/python -m pytest -q tests/test_cuda_install.py"
  exit 0
fi

DIR=${1:-dist/gpu-check}
PY=${PY:-$(find_python "$TARGET_PY")}
MNIST=${IRNN_MNIST_DIR:?set IRNN_MNIST_DIR to the folder with the four MNIST IDX files}
rm -rf "$DIR" && mkdir -p "$DIR/wheels"
W=$DIR/wheels

pip_() { "$PY" -m pip "$@" 2>&1 | grep -v '^WARNING: Location' || true; }

# Chainer 7.8.1: an sdist whose setup.py imports pkg_resources -> setuptools<82 (constraint).
pip_ wheel -q --no-deps chainer==7.8.1 -w "$W"
# This project, built by the target Python (its C kernel compiled for it).
rm -rf build
pip_ wheel -q --no-deps . -w "$W"
# Runtime dependencies as wheels for the target (CPython $TARGET_PY, manylinux x86-64),
# without NumPy: the GPU machine's own NumPy (and CuPy) are used.
abi=cp${TARGET_PY/./}
if [ "${SLIM:-0}" != 1 ]; then
  pip_ download -q --only-binary=:all: --python-version "$TARGET_PY" --implementation cp --abi "$abi" \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    -d "$W" six filelock 'protobuf>=3' typing_extensions setuptools matplotlib pytest
fi
rm -f "$W"/numpy-*.whl

ls "$W"/chainer-7.8.1-*.whl "$W"/irnn_chainer-*.whl >/dev/null
[ "${SLIM:-0}" = 1 ] || ls "$W"/matplotlib-*.whl "$W"/pytest-*.whl >/dev/null
# The CUDA kernels' sources must be inside the project's wheel (setup.py package data).
if ! "$PY" -c "import sys, zipfile, glob; n = zipfile.ZipFile(glob.glob(sys.argv[1] + '/irnn_chainer-*.whl')[0]).namelist(); sys.exit(not {'irnn_chainer/kernels/irnn_cuda.cu', 'irnn_chainer/kernels/irnn_whole.cu'} <= set(n))" "$W"; then
  echo "gpu_prepare: the project's wheel lacks irnn_chainer/kernels/irnn_cuda.cu or irnn_whole.cu: setup.py must ship them (package_data={'irnn_chainer.kernels': ['*.cu']})" >&2
  exit 1
fi

if [ -f "$MNIST/train-images-idx3-ubyte.gz" ]; then
  mkdir -p "$DIR/mnist" && cp "$MNIST"/*-ubyte.gz "$DIR/mnist/"
else
  echo "gpu_prepare: no MNIST files in $MNIST: gpu_check.sh will skip the full-MNIST epoch" >&2
fi
du -sh "$DIR"
ls "$W"
echo "ready: on the GPU machine run  benchmarks/gpu_check.sh $DIR"
