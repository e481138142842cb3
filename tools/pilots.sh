#!/usr/bin/env bash
# The pilots of the fast preset, side by side: each candidate trains on the first 20000 training images
# and is scored on the first 2000 test images (the IRNN set: 6 epochs = 7500 updates at
# batch 16; the plain-RNN set: 3 epochs). One process per pilot, one thread each, one after
# another; a pilot already finished (its model.npz) is not run again.
#   tools/pilots.sh irnn|rnn OUTDIR [--permute]
set -euo pipefail
SET=${1:?usage: tools/pilots.sh irnn|rnn OUTDIR [--permute]}
OUT=${2:?usage: tools/pilots.sh irnn|rnn OUTDIR [--permute]}
shift 2
DATA=${IRNN_MNIST_DIR:?set IRNN_MNIST_DIR to the folder with the four MNIST IDX files}
BIN=${IRNN_BIN:-irnn-chainer}
EPOCHS=6
[ "$SET" = rnn ] && EPOCHS=3
common=(--batchsize 16 --clip 1 --skip-nonfinite --train-limit 20000 --test-limit 2000
        --epoch "$EPOCHS" --data-dir "$DATA" --threads 1 --no-progress "$@")
run() {
  local name=$1; shift
  [ -e "$OUT/$name/model.npz" ] && return 0
  "$BIN" train "${common[@]}" "$@" --out "$OUT/$name" --force > "$OUT/$name.txt" 2>&1 || true
}
mkdir -p "$OUT"
case "$SET" in
irnn)  # the IRNN-100 recipe: optimizer, rate, h0 noise
  run rmsprop1e-4            --model irnn --optimizer rmsprop --lr 1e-4
  run rmsprop1e-4-h0n        --model irnn --optimizer rmsprop --lr 1e-4 --h0-noise "${H0:-0.1}"
  run adam1e-4-h0n           --model irnn --optimizer adam --lr 1e-4 --h0-noise "${H0:-0.1}"
  run adam2e-4-h0n           --model irnn --optimizer adam --lr 2e-4 --h0-noise "${H0:-0.1}"
  run rmsprop2e-4-h0n        --model irnn --optimizer rmsprop --lr 2e-4 --h0-noise "${H0:-0.1}"
  ;;
rnn)   # the plain RNNs' recipe: N(0, 0.001) leaves a recurrence with no memory; N(0, 0.1)
       # (1/sqrt(100): spectral radius ~1) is the usual scaled-Gaussian start
  run tanh-std1e-3-rmsprop1e-4 --model rnn-tanh --optimizer rmsprop --lr 1e-4
  run tanh-std0.1-rmsprop1e-4  --model rnn-tanh --optimizer rmsprop --lr 1e-4 --init-std 0.1
  run tanh-std0.1-rmsprop1e-3  --model rnn-tanh --optimizer rmsprop --lr 1e-3 --init-std 0.1
  run relu-std0.1-rmsprop1e-4  --model rnn-relu --optimizer rmsprop --lr 1e-4 --init-std 0.1
  ;;
*) echo "tools/pilots.sh: expected the set irnn or rnn, got '$SET'" >&2; exit 2 ;;
esac
