#!/bin/bash
# One prepared run for a lent GPU machine (the device tool): the CUDA tests, then vit-large speed
# (random weights) in bf16 and fp32 against transformers, as fractions of the GPU's measured matmul
# peak, everything saved under $OUT.
#
# The GPU image has torch, transformers, opencv, PyYAML, safetensors, tqdm; it lacks decord and PyAV,
# which travel as wheels. Once, here (this machine), in the repository root:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     --platform manylinux2010_x86_64 -d .whl decord==0.6.0 av
# then call the device tool's run with carry [".whl"], timeout_s 560 and the command
#   bash benchmarks/gpu_check.sh
# (about 6-8 minutes on one H100). Record the printed figures, with the card, in benchmarks/RESULTS.md.
#
# With the time the command has left (GPU_CHECK_BUDGET_S, default 560: the timeout_s above), at least
# 4 minutes, the GPU training run follows (training/gpu_train.sh, issue 12 lever 6) into $OUT/train;
# the checks' files are packed into $OUT/checks.tgz first (the tool returns at most 8 files). Beside the
# wheels its DAVIS data does not fit the tool's 64 MiB, so here it trains on synthetic pairs only; the
# full 8-minute run with DAVIS is its own call (see training/gpu_train.sh). GPU_CHECK_TRAIN=0: no training.
set -u -o pipefail
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
nvidia-smi -L | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))" | tee -a "$OUT/gpu.txt"

# CUDA paths against the CPU, and the engine tests on this machine
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_engine.py 2>&1 | tail -15 | tee "$OUT/tests.txt"

# model only: the GPU's own torch.mm peak per dtype, then ours vs transformers per query, fp32 (equal
# outputs) and bf16, each as a fraction of that peak
timeout 150 python3 -m benchmarks.speed_model --preset vit-large --device cuda --ks 1 3 8 9 --dtypes fp32 bf16 \
  --reps 3 --json "$OUT/speed_model.json" 2>&1 | tee "$OUT/speed_model.txt"

# end to end on a 854x480 clip: bf16 (the GPU default), then fp32, transformers loop beside each
timeout 200 python3 -m benchmarks.speed_vos --preset vit-large --device cuda --dtype bf16 --ks 1 2 8 \
  --frames 200 --reference-frames 60 --json "$OUT/speed_vos_bf16.json" 2>&1 | tee "$OUT/speed_vos_bf16.txt"
timeout 120 python3 -m benchmarks.speed_vos --preset vit-large --device cuda --dtype fp32 --ks 1 8 \
  --frames 100 --reference-frames 30 --json "$OUT/speed_vos_fp32.json" 2>&1 | tee "$OUT/speed_vos_fp32.txt"

# the GPU training run, with what is left of this command's time
LEFT=$(( ${GPU_CHECK_BUDGET_S:-560} - SECONDS - 20 ))
if [ "${GPU_CHECK_TRAIN:-1}" != "0" ] && [ "$LEFT" -ge 240 ]; then
  tar czf /tmp/checks.tgz -C "$OUT" . && rm -rf "${OUT:?}"/* && mv /tmp/checks.tgz "$OUT/"
  mkdir -p "$OUT/train"
  OUT="$OUT/train" TRAIN_BUDGET_S=$LEFT bash training/gpu_train.sh
else
  echo "GPU training not run here ($LEFT s left, 240 needed); as its own call: bash training/gpu_train.sh"
fi
