#!/usr/bin/env bash
# The device check, for a machine with a CUDA GPU, CuPy installed and no internet
# (docs/gpu.md). Needs the folder benchmarks/gpu_prepare.sh made (default dist/gpu-check).
#
#   benchmarks/gpu_check.sh [DIR]
#
# 1. a venv on top of the machine's Python, NumPy and CuPy (--system-site-packages) with
#    the wheels in DIR/wheels installed offline (Chainer 7.8.1, this project, ...);
# 2. `irnn-chainer info`; 3. `pytest -m gpu` (tests/test_gpu.py and tests/test_gpu_whole.py,
#    from a copy of tests/ so the installed package is the one tested); 4.
#    benchmarks/bench_gpu.py (ms per update, batch 16 and 256: fused CUDA kernel (the
#    baseline), the whole update (4 and 8 threads per unit, 2 blocks per SM), PyTorch nn.RNN with cuDNN, JAX
#    lax.scan, fused CPU); 5. one full-MNIST epoch of the whole update with the test set
#    (bench_gpu.py --epoch); 6. one full-MNIST epoch with --gpu 0 in the real training loop
#    (DIR/mnist).
# Everything goes to $OUT (default results/gpu-check-2); a table at the end. Each step has a
# time limit (45 + 15 + 85 + 80 + 25 + 50 s), so the whole check ends within 5 minutes.
# Exit status: 0 when every step passed.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DIR=$(cd "${1:-dist/gpu-check}" 2>/dev/null && pwd) || { echo "gpu_check: no folder ${1:-dist/gpu-check} (run benchmarks/gpu_prepare.sh first)" >&2; exit 2; }
OUT=${OUT:-$ROOT/results/gpu-check-2}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
WORK=$(mktemp -d)
START=$(date +%s)
declare -a STEPS=()

step() {  # step NAME LIMIT_S COMMAND...: run with a time limit, log to $OUT/NAME.txt
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s) rc
  echo "== $name (limit ${limit}s)"
  timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.txt" 2>&1
  rc=$?
  tail -n 25 "$OUT/$name.txt"
  STEPS+=("$(printf '%-10s %-7s %4ss  %s' "$name" "$([ $rc = 0 ] && echo ok || ([ $rc = 124 ] && echo TIMEOUT || echo "rc=$rc"))" "$(( $(date +%s) - t0 ))" "$OUT/$name.txt")")
  return $rc
}

{
  date -u; uname -a; "$PY" -V
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || true
  "$PY" -c 'import numpy, cupy; print("numpy", numpy.__version__); print("cupy", cupy.__version__); print("devices", cupy.cuda.runtime.getDeviceCount())' 2>&1
} >"$OUT/machine.txt"
cat "$OUT/machine.txt"

V=$WORK/venv
step install 45 bash -c "
  set -e
  '$PY' -m venv --system-site-packages '$V'
  # the machine's NumPy and CuPy may live outside the system site (user site, PYTHONPATH), which
  # a venv does not see: a .pth file puts their folders on the venv's path
  '$PY' -c 'import numpy, cupy, os; print(os.path.dirname(os.path.dirname(numpy.__file__))); print(os.path.dirname(os.path.dirname(cupy.__file__)))' \\
    > \"\$('$V/bin/python' -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])')/machine-numpy-cupy.pth\"
  '$V/bin/python' -c 'import numpy, cupy; print(\"numpy\", numpy.__version__, numpy.__file__); print(\"cupy\", cupy.__version__, cupy.__file__)'
  # every wheel without resolving: pip's resolver does not count the machine's own NumPy (the
  # H200's, outside the venv's view of installed distributions) and, offline, finds no other
  '$V/bin/python' -m pip install --no-index --no-deps '$DIR'/wheels/*.whl
  '$V/bin/python' -m pip list"
ok_install=$?

if [ $ok_install = 0 ]; then
  # from a folder without the source tree, so the installed package is the one that runs
  cp -r "$ROOT/tests" "$ROOT/pyproject.toml" "$WORK/" && cd "$WORK"
  step info 15 "$V/bin/irnn-chainer" info
  step pytest 85 "$V/bin/python" -m pytest -m gpu -q -ra -p no:cacheprovider --junitxml "$OUT/pytest.xml" \
    -s tests/test_gpu.py tests/test_gpu_whole.py
  # the stepwise and array-module rows are left out: 10-100x behind, they would take the
  # budget; results/gpu-check has them
  step bench 80 "$V/bin/python" "$ROOT/benchmarks/bench_gpu.py" --batch 16 256 --repeat 10 --budget 1.5 \
    --only fused-cuda whole-cuda whole-cuda-split8 whole-cuda-2pb torch-cudnn jax-scan fused-cpu --json "$OUT/bench.json"
  if [ -f "$DIR/mnist/train-images-idx3-ubyte.gz" ]; then
    step whole-epoch 25 "$V/bin/python" "$ROOT/benchmarks/bench_gpu.py" --epoch "$DIR/mnist" --json "$OUT/whole-epoch.json"
    step epoch 50 "$V/bin/irnn-chainer" train --gpu 0 --data-dir "$DIR/mnist" --epoch 1 -o "$OUT/epoch" --force
  else
    STEPS+=("$(printf '%-10s %-7s' epoch skipped) (no MNIST files in $DIR/mnist)")
  fi
fi

echo
echo "== summary ($(( $(date +%s) - START )) s; everything in $OUT)"
for s in "${STEPS[@]}"; do echo "$s"; done
if [ -f "$OUT/bench.json" ]; then
  echo
  "$PY" - "$OUT/bench.json" <<'EOF'
import json, sys
rows = json.load(open(sys.argv[1]))
print('%-17s %6s %10s %9s  %s' % ('variant', 'batch', 'ms/update', 'x whole', 'kernel'))
for r in rows:
    print('%-17s %6d %10s %9s  %s' % (r['variant'], r['batch'], '-' if r['ms'] is None else '%.3f' % r['ms'],
                                      '%.1f' % r['x_whole'] if 'x_whole' in r else '-', r.get('error', r['kernel'])))
EOF
fi
if [ -f "$OUT/whole-epoch.json" ]; then
  "$PY" -c "import json,sys; r=json.load(open(sys.argv[1])); print('whole-update epoch: %d updates in %.2f s (%.3f ms each) + test set %.2f s = %.2f s; test accuracy %.4f' % (r['updates'], r['train_s'], r['ms_per_update'], r['eval_s'], r['epoch_s'], r['test_accuracy']))" "$OUT/whole-epoch.json"
fi
if [ -f "$OUT/epoch/log" ]; then
  "$PY" -c "import json,sys; r=json.load(open(sys.argv[1]))[-1]; print('epoch: %d iterations, %.0f s, test accuracy %.4f' % (r['iteration'], r['elapsed_time'], r['validation/main/accuracy']))" "$OUT/epoch/log"
fi
cd "$ROOT" && rm -rf "$WORK"
for s in "${STEPS[@]}"; do case "$s" in *" ok "*|*skipped*) ;; *) exit 1;; esac; done
exit 0
