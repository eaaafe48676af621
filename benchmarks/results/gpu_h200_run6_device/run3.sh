#!/bin/bash
# Call 3: join and unpack mlx-cuda-13 0.32.4 beside the installed mlx, then the MLX-CUDA benchmark.
source .devcarry/scripts/env.sh
stamp start
[ -f "$D/mlxcuda.part-00" ] || { echo "cold machine: call 2's half is gone"; exit 5; }
cat "$D/mlxcuda.part-00" .devcarry/c3/mlxcuda.part-01 > "$D/mlxcuda.tar.xz"
(cd "$D" && sed "s#/tmp/mlxcuda.tar.xz#$D/mlxcuda.tar.xz#" "$REPO/.devcarry/c3/mlxcuda.sha256" | sha256sum -c) || exit 6
SITE=$(python3 -m pip show mlx | sed -n 's/^Location: //p')
xz -dc -T16 "$D/mlxcuda.tar.xz" | tar x -C "$SITE"
stamp unpacked into "$SITE"
python3 -c "import mlx.core as mx; print(mx.__version__, mx.default_device(), mx.cuda.is_available())"
host_facts
REPS=${REPS:-24}
PYTHONPATH=$REPO timeout 585 python3 benchmarks/gpu_mlx_bench.py --config-dir "$D/c1/smollm2-config" \
  --reps $REPS --out "$OUT" --prefix gpu_h200_run6_mlx
echo "bench rc=$?"
host_facts
stamp done
