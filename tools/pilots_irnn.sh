#!/usr/bin/env bash
# Issue 19's pilots for the IRNN-100 recipe, side by side: each candidate trains on the first
# 20000 training images for 6 epochs (120000 sequences, 7500 updates at batch 16, two full
# epochs' worth) and is scored on the first 2000 test images. One process per pilot, one
# thread each, one after another.
#   tools/pilots_irnn.sh OUTDIR [--permute]
set -euo pipefail
OUT=${1:?usage: tools/pilots_irnn.sh OUTDIR [--permute]}
shift
DATA=${IRNN_MNIST_DIR:-$(dirname "$0")/../../shared/data/mnist}
BIN=${IRNN_BIN:-irnn-chainer}
common=(--model irnn --batchsize 16 --clip 1 --skip-nonfinite --train-limit 20000 --test-limit 2000
        --epoch 6 --data-dir "$DATA" --threads 1 --no-progress "$@")
run() {
  local name=$1; shift
  [ -e "$OUT/$name/model.npz" ] && return 0
  "$BIN" train "${common[@]}" "$@" --out "$OUT/$name" --force > "$OUT/$name.txt" 2>&1 || true
}
mkdir -p "$OUT"
run rmsprop1e-4            --optimizer rmsprop --lr 1e-4
run rmsprop1e-4-h0n        --optimizer rmsprop --lr 1e-4 --h0-noise "${H0:-0.1}"
run adam1e-4-h0n           --optimizer adam --lr 1e-4 --h0-noise "${H0:-0.1}"
run adam2e-4-h0n           --optimizer adam --lr 2e-4 --h0-noise "${H0:-0.1}"
run rmsprop2e-4-h0n        --optimizer rmsprop --lr 2e-4 --h0-noise "${H0:-0.1}"
