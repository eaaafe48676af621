#!/bin/bash
# Call 2: the first half of the mlx-cuda-13 archive, then torch fp16 (ours vs manual loop vs HF generate).
source .devcarry/scripts/env.sh
stamp start
[ -d "$D/c1" ] || { echo "cold machine: call 1's installs are gone"; exit 5; }
cp .devcarry/c2/mlxcuda.part-00 "$D/"
host_facts
PYTHONPATH=$REPO timeout 585 python3 benchmarks/gpu_worker_bench.py --config-dir "$D/c1/smollm2-config" \
  --parts torch --dtypes fp16 --reps 16 --out "$OUT" --prefix gpu_h200_run6_torch
echo "bench rc=$?"
host_facts
stamp done
