#!/bin/bash
# The GPU training run (issue 12, lever 6) for a lent GPU machine (the device tool): the `medium`
# preset (width 256, depth 8, 64x64; 16 MB in fp16) trained from scratch in bf16 by the same trainer
# (configs/train_gpu.yaml, python -m training.gpu), the whole command within TRAIN_BUDGET_S seconds
# (default 480: 8 minutes, the training itself about 6.7 of them).
#
# Data: the synthetic generator plus DAVIS 2016 train 240p, read from data/davis2016-train-240p inside
# the working tree (gitignored: /data/). Once, here (this machine), in the repository root:
#   mkdir -p data && cp -r ../shared/data/davis2016-train-240p data/        # 53 MB
# then call the device tool's run with carry ["data/davis2016-train-240p"], timeout_s 560 and the command
#   bash training/gpu_train.sh
# (the working tree and the carried data together must stay under the tool's 64 MiB; no wheels are
# needed: training reads JPEG folders, not videos). Without the data it trains on synthetic pairs only
# and says so.
#
# Writes to $OUT: model.safetensors (fp16 weights of the last step, our format), log.jsonl (losses and
# evaluations: pair mIoU, J&F of held-out synthetic clips through the shipped engine), summary.json
# (model, steps, minutes, pairs/s, data, scores) and train.txt (this script's output). If the time runs
# out, SIGTERM ends the run with the weights of the last whole step written all the same.
# A few CPU steps of the same code, for a test: SEGGPT_GPU_SMOKE=1 bash training/gpu_train.sh
set -u -o pipefail
OUT=${OUT:-gpu_train_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
PYTHON=${PYTHON:-python3}
BUDGET=${TRAIN_BUDGET_S:-480}
nvidia-smi -L 2>/dev/null | head -1
timeout -s TERM -k 30 $((BUDGET + 20)) "$PYTHON" -m training.gpu --out "$OUT" --budget-s "$BUDGET" "$@" 2>&1 \
  | tee "$OUT/train.txt"
