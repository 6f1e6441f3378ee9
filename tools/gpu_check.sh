#!/usr/bin/env bash
# GPU readiness: the CUDA paths no CPU run exercises, in under 8 minutes on one GPU.
#
#   bash tools/gpu_check.sh [--out DIR]
#
# 1. the tests marked `cuda` (fused Adam, channels_last, bf16/fp16 training, CUDA memory);
# 2. tools/benchmark.py --device cuda --quick (figures as JSON in DIR/benchmark.json);
# 3. with 2 or more GPUs, a 2-rank NCCL training run under torchrun (DDP, SyncBatchNorm).
# Without a GPU each CUDA step says so and is skipped; `--cpu` runs the same steps on the CPU
# (the benchmark on --device cpu, no NCCL), which is how CI checks this script.
set -euo pipefail

out=gpu_check
device=cuda
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --cpu) device=cpu; shift ;;
    *) echo "usage: bash tools/gpu_check.sh [--out DIR] [--cpu]" >&2; exit 2 ;;
  esac
done
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
mkdir -p "$out"
gpus=$(python -c "import torch; print(torch.cuda.device_count())")
if [[ "$device" == cuda && "$gpus" -eq 0 ]]; then
  echo "gpu_check: no CUDA GPU visible (torch.cuda.device_count() is 0); use --cpu" >&2
  exit 1
fi
start=$SECONDS
step() { echo; echo "== $1 ($((SECONDS - start)) s so far)"; }

step "tests marked cuda"
timeout 240 python -m pytest -q -p no:cacheprovider -m cuda tests/ 2>&1 | tee "$out/tests.txt"

step "benchmark --device $device --quick"
# 256 px training/unpaired cases are the slowest; the rest show the CUDA paths' speed
timeout 240 python tools/benchmark.py --device "$device" --quick --size 256 \
  --only training --only converter --only realtime --json "$out/benchmark.json" \
  | tee "$out/benchmark.txt"

if [[ "$device" == cuda && "$gpus" -ge 2 ]]; then
  step "2-rank NCCL training step"
  data="$out/nccl_data"
  python - "$data" <<'PY'
import sys
from pathlib import Path
import numpy as np
from translate.data.images import write_image
rng = np.random.default_rng(0)
for split, count in (("train", 8), ("val", 2)):
    for i in range(count):
        a = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        write_image(Path(sys.argv[1]) / split / f"{i}.png", np.concatenate([a, 255 - a], 1))
PY
  timeout 120 python -m torch.distributed.run --standalone --nproc-per-node 2 \
    -m translate.cli train configs/pix2pix_facades.yaml --run-dir "$out/nccl_run" \
    --no-progress --set data.root="$data" --set train.max_steps=4 --set train.batch_size=2 \
    --set data.preprocess.load_size=64 --set data.preprocess.crop_size=64 \
    --set generator.name=unet --set generator.options.num_downs=6 --set log.tensorboard=false \
    | tee "$out/nccl.txt"
else
  step "2-rank NCCL step skipped: $gpus GPU(s) ($device)"
fi
echo; echo "gpu_check: done in $((SECONDS - start)) s; results in $out/"
