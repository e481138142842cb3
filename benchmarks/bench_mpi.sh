#!/usr/bin/env bash
# Data-parallel speed-up (docs/distributed.md); pause other work first.
# 1 process at batch 16 vs mpiexec -n 2 at batch 8 per process (same global batch), fused C kernel,
# 8000 full-MNIST training images (500 updates per epoch), 2 epochs, eval on 2000 test images.
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
COMMON="--data-dir ${IRNN_MNIST_DIR:?set IRNN_MNIST_DIR to the MNIST IDX folder} --train-limit 8000 --test-limit 2000 --preset fast --epoch 2 --no-progress --force"
for rep in 1 2; do
  s=$(date +%s.%N); .venv/bin/irnn-chainer train $COMMON -b 16 --out "${TMPDIR:-/tmp}/irnn-bench1" > /dev/null; e=$(date +%s.%N)
  echo "rep $rep  1 process  batch 16:            $(echo "$e - $s" | bc) s wall; log elapsed $(python3 -c "import json;print(round(json.load(open('"${TMPDIR:-/tmp}/irnn-bench1"/log'))[-1]['elapsed_time'],2))") s"
  s=$(date +%s.%N); mpiexec --oversubscribe -n 2 .venv/bin/irnn-chainer train $COMMON -b 8 --communicator naive --out "${TMPDIR:-/tmp}/irnn-bench2" > /dev/null; e=$(date +%s.%N)
  echo "rep $rep  2 processes batch 8 each:    $(echo "$e - $s" | bc) s wall; log elapsed $(python3 -c "import json;print(round(json.load(open('"${TMPDIR:-/tmp}/irnn-bench2"/log'))[-1]['elapsed_time'],2))") s"
done
