#!/usr/bin/env bash
# The project's two set-up commands (see README):
#   ./dev.sh demo    create .venv, install, train the IRNN for about a minute on the embedded
#                    MNIST subset (784-pixel sequences, as the paper) and show where the plots are
#   ./dev.sh test    create .venv, install with test extras, run the whole test suite
# and one more that CI runs:
#   ./dev.sh matrix  the Chainer 1.0 ... 7.8.1 x NumPy 1/2 matrix (tools/matrix.py)
# Extra arguments go to irnn-chainer train / pytest / the matrix script.
#
# The install is skipped when nothing it depends on changed since the last one: a stamp in the
# venv records a hash of setup.py, pyproject.toml, constraints.txt, the C kernel's sources, the
# interpreter and the extras installed (IRNN_REINSTALL=1 forces it).
set -euo pipefail
cd "$(dirname "$0")"
# PYTHON: the interpreter the venv is made from; IRNN_VENV: the venv's folder (CI makes one
# per Python: IRNN_VENV=.venv312 PYTHON=.../3.12.1/bin/python ./dev.sh test).
PY=${PYTHON:-python3}
VENV=${IRNN_VENV:-.venv}
STAMP="$VENV/.irnn-chainer-installed"
START=$SECONDS

say() { echo "dev.sh: $*"; }

# One line: the hash of what the install depends on (the extras are kept beside it).
install_hash() {
  "$VENV/bin/python" - <<'EOF'
import glob, hashlib, sys
h = hashlib.sha256()
h.update(('%s %s\n' % (sys.executable, sys.version)).encode())
for path in ['setup.py', 'pyproject.toml', 'constraints.txt'] + sorted(
        glob.glob('irnn_chainer/kernels/*.[ch]') + ['irnn_chainer/kernels/build.py']):
    with open(path, 'rb') as f:
        h.update(path.encode() + b'\0' + hashlib.sha256(f.read()).digest())
# a kernel that was built and has since gone (git clean) is built again
h.update(b'kernel built' if glob.glob('irnn_chainer/kernels/_irnn_cpu*.so') else b'no kernel')
print(h.hexdigest())
EOF
}

# Is the stamp's hash current, with at least the extras $1 (comma-separated) installed?
up_to_date() {
  [ -z "${IRNN_REINSTALL:-}" ] && [ -f "$STAMP" ] || return 1
  local hash extras want
  { read -r hash; read -r extras || true; } < "$STAMP"
  [ "$hash" = "$(install_hash)" ] || return 1
  for want in ${1//,/ }; do
    case ",$extras," in *",$want,"*) ;; *) return 1 ;; esac
  done
}

setup() {  # $1: the extras this command needs (comma-separated, may be empty)
  local extras=$1
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating the virtual environment $VENV ($("$PY" --version 2>&1)) ..."
    "$PY" -m venv "$VENV"
  fi
  if up_to_date "$extras"; then
    say "$VENV is up to date: skipping the install (IRNN_REINSTALL=1 forces it)"
    return
  fi
  # Chainer is a source package whose setup.py imports pkg_resources, which
  # setuptools >= 82 removed: this constraint reaches pip's isolated builds too.
  export PIP_CONSTRAINT="$PWD/constraints.txt"
  say "installing irnn-chainer${extras:+ [$extras]} into $VENV with Chainer, NumPy and Matplotlib, and"
  say "  compiling its C kernel (about 45 s on 2 cores the first time; later runs skip this) ..."
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".${extras:+[$extras]}"
  # the stamp keeps every extra installed so far (a demo after a test install reinstalls nothing)
  local had=""
  [ -f "$STAMP" ] && had=$(sed -n 2p "$STAMP")
  printf '%s\n%s\n' "$(install_hash)" "$(echo "$had,$extras" | tr ',' '\n' | sed '/^$/d' | sort -u | paste -sd, -)" \
    > "$STAMP"
}

# Sweeps (Optuna, PostgreSQL driver) always; mpi4py where an MPI is installed (ChainerMN).
test_extras() {
  if command -v mpiexec >/dev/null 2>&1; then echo test,sweep,mpi; else echo test,sweep; fi
}

# The run folder a demo writes: result/demo unless --out/-o is among the extra arguments.
demo_out() {
  local out=result/demo
  while [ $# -gt 0 ]; do
    case "$1" in
      --out|-o) out=${2:-$out}; shift ;;
      --out=*) out=${1#--out=} ;;
    esac
    shift
  done
  echo "$out"
}

# The demo: the IRNN of the paper (100 ReLU units, identity recurrence, one pixel a step, 784
# steps, nothing shortened), trained on the embedded subset's 20000 training images and tested
# every epoch on its 2000 held-out MNIST test images. The fast preset (RMSprop, clip 1, a cosine
# over the run, noise on h_0, the pull toward I) with, for the first minute: 5 epochs at batch
# 32 and rate 2e-4 (fewer, larger steps), input and output weights N(0, 0.01) as the 2015 blog
# ran (larger first features), no averaged weights (one evaluation an epoch). 77.5-77.6 % for
# seeds 0-2 on this machine (4 epochs gave 62-72 %: too close to the 70 % promised below), where
# the fast preset itself at batch 16 took 6 epochs to reach 72 % (docs/demo.md).
DEMO_ARGS=(--dataset embedded --preset fast --epoch 5 --batchsize 32 --lr 2e-4 --init-std 0.01 --ema 0
           --out result/demo --force)

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  demo)
    setup ""
    out=$(demo_out "${DEMO_ARGS[@]}" "$@")
    say "training: the IRNN on pixel-by-pixel MNIST (784 steps per image), about a minute on 2 cores ..."
    status=0
    "$VENV/bin/irnn-chainer" train "${DEMO_ARGS[@]}" "$@" || status=$?
    [ "$status" -eq 0 ] || exit "$status"
    cat <<EOF

dev.sh: done in $((SECONDS - START)) s. The run is in $out/:
  $out/accuracy.png   train and test accuracy per epoch: the test curve climbing from chance
                      (10 %) to above 70 % is what a working install shows
  $out/loss.png       train and test loss
  $out/log            every evaluation (JSON); config.json: the settings; model.npz: the weights
Next (the commands are on PATH once the venv is active):
  source $VENV/bin/activate
  irnn-chainer evaluate $out                       # its test accuracy again
  irnn-chainer predict $out examples/digit.png     # classify a 28x28 grayscale image (yours too)
  irnn-chainer train --preset fast --epoch 100 --out result/fast
                                       # the full recipe on all of MNIST: 97 % (1-2 hours on 2 cores)
  irnn-chainer train --help            # every setting
EOF
    ;;
  test)
    setup "$(test_extras)"
    say "running the test suite (a few minutes) ..."
    exec "$VENV/bin/python" -m pytest -q "$@"
    ;;
  matrix)
    setup "$(test_extras)"
    exec "$VENV/bin/python" tools/matrix.py "$@"
    ;;
  *)
    echo "usage: ./dev.sh demo|test|matrix [args...]" >&2
    exit 2
    ;;
esac
