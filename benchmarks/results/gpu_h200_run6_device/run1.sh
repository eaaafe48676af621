#!/bin/bash
# Call 1: environment check, installs, llama.cpp CUDA build and the llama.cpp benchmark.
source .devcarry/scripts/env.sh
stamp start
{
  nvidia-smi; nvcc --version | tail -2; cmake --version | head -1; nproc; python3 -VV
  which python3 pip ninja cmake; lscpu | grep -E "Model name|Hypervisor|Thread|Core|Socket|MHz|L3"
  cat /sys/class/dmi/id/product_name 2>/dev/null; systemd-detect-virt 2>/dev/null
  python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)"
  python3 -c "import numpy; print('numpy', numpy.__version__)"
  python3 -c "import sentencepiece; print('sentencepiece', sentencepiece.__version__, sentencepiece.__file__)"
  host_facts
} > "$OUT/gpu_h200_run6_env.txt" 2>&1
python3 -m pip list > "$OUT/gpu_h200_run6_pip_before.txt" 2>&1
cat "$OUT/gpu_h200_run6_env.txt"
rm -rf "$D/c1" && cp -r .devcarry/c1 "$D/c1"
stamp install
python3 -m pip install --no-index --find-links "$D/c1/whl" --break-system-packages \
  transformers==5.23.0 mlx==0.32.4 mlx-lm==0.32.2 psutil nvidia-ml-py diskcache ninja 2>&1 | tail -4
python3 -m pip list > "$OUT/gpu_h200_run6_pip_after.txt" 2>&1
which ninja || { echo "no ninja"; exit 3; }
mkdir -p /tmp/lcb && [ -d /tmp/lcb/llama.cpp ] || tar xJf "$D/c1/lcb-src.tar.xz" -C /tmp/lcb
stamp "random GGUF (background) + build"
( cd benchmarks && python3 -c "
from pathlib import Path
from gpu_llamacpp_bench import random_gguf
random_gguf(Path('$D/c1/skeleton'), Path('/tmp/lcb/smollm2-135m-random-Q4_1.gguf'), Path('/tmp/lcb/llama.cpp/gguf-py'))
" ) > "$D/gguf.log" 2>&1 &
GGUF_PID=$!
( cd benchmarks && python3 -c "
from pathlib import Path
from gpu_llamacpp_bench import build, install_libs
print(install_libs(build(Path('unused'), Path('/tmp/lcb'), 16), Path('$D/c1/site')))
" ) > "$OUT/gpu_h200_run6_llamacpp_build.log" 2>&1 || { tail -40 "$OUT/gpu_h200_run6_llamacpp_build.log"; exit 4; }
tail -3 "$OUT/gpu_h200_run6_llamacpp_build.log"
wait $GGUF_PID; cat "$D/gguf.log"
ls -la /tmp/lcb/build/bin/ | head -20
ROUNDS=12; [ $SECONDS -lt 300 ] && ROUNDS=18
stamp "llama.cpp bench, $ROUNDS rounds"
host_facts
PYTHONPATH=$D/c1/preload:$D/c1/site:$REPO:/tmp/lcb/llama.cpp/gguf-py timeout $((585 - SECONDS)) python3 benchmarks/gpu_llamacpp_bench.py \
  --skeleton "$D/c1/skeleton" --llama-bench /tmp/lcb/build/bin/llama-bench --work /tmp/lcb \
  --rounds $ROUNDS --reps 5 --out "$OUT" --prefix gpu_h200_run6_llamacpp
echo "bench rc=$?"
host_facts
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,power.draw,temperature.gpu --format=csv
stamp done
