#!/bin/bash
# `bench --sweep` on a lent NVIDIA GPU, with llama.cpp built for CUDA on the card (n_gpu_layers is swept there).
#
#   bash benchmarks/gpu_sweep.sh carry     # here: writes .devcarry/sweep (ignored; ~10 MB)
#   bash benchmarks/gpu_sweep.sh device    # on the device, carry .devcarry/sweep; writes $OUT/gpu_sweep_*
#
# carry: llama.cpp from the pinned llama-cpp-python sdist (.gl/, as benchmarks/llama_bench_parity.py unpacks
# it), trimmed to what a CUDA build of the shared libraries needs; llama-cpp-python's pure-Python package
# with a 3-line dist-info (the engine reads its version) and diskcache beside it; a skeleton of the bundled
# SmolLM2-135M-Instruct Q4_1 GGUF (metadata, tokenizer, tensor list: the real file is over the device's
# transfer limit), and a sitecustomize.py that imports llama_cpp first (on that image, sentencepiece loaded
# before libllama segfaults in its tokenizer; see benchmarks/gpu_llamacpp_bench.py).
# device: builds the libraries (-DGGML_CUDA=ON, sm_90, ~270 s on 16 cores) while it writes a GGUF of the
# skeleton's tensors with random weights (speed only), then runs the CLI exactly as a user would:
#   python app.py bench --engine llamacpp --model FILE --sweep -p 512 -n 128 -r 6 -t 8 -o csv
set -uo pipefail
C=.devcarry/sweep
case "${1:-}" in
carry)
  SRC=.gl/llama_cpp_python-0.3.36
  test -d "$SRC/vendor/llama.cpp" || { echo "run benchmarks/llama_bench_parity.py once: it unpacks the sdist into .gl/"; exit 2; }
  rm -rf "$C" && mkdir -p "$C/site" "$C/preload" /tmp/gpu_sweep_src
  rm -rf /tmp/gpu_sweep_src/llama.cpp && mkdir -p /tmp/gpu_sweep_src/llama.cpp/tools /tmp/gpu_sweep_src/llama.cpp/ggml/src
  L=$SRC/vendor/llama.cpp T=/tmp/gpu_sweep_src/llama.cpp
  cp -r "$L"/{CMakeLists.txt,LICENSE,licenses,cmake,src,include,common,vendor,gguf-py} "$T/"
  cp -r "$L"/ggml/{CMakeLists.txt,cmake,include,.gitignore} "$T/ggml/" 2>/dev/null || cp -r "$L"/ggml/{CMakeLists.txt,cmake,include} "$T/ggml/"
  find "$L/ggml/src" -maxdepth 1 -type f -exec cp {} "$T/ggml/src/" \;
  cp -r "$L"/ggml/src/{ggml-cpu,ggml-cuda} "$T/ggml/src/"
  cp -r "$L/tools/llama-bench" "$T/tools/"
  printf 'find_package(Threads REQUIRED)\nllama_add_compile_flags()\nadd_subdirectory(llama-bench)\n' > "$T/tools/CMakeLists.txt"
  tar -C /tmp/gpu_sweep_src -cJf "$C/lcb-src.tar.xz" llama.cpp
  cp -r "$SRC/llama_cpp" "$C/site/"
  mkdir -p "$C/site/llama_cpp_python-0.3.36.dist-info"
  printf 'Metadata-Version: 2.1\nName: llama_cpp_python\nVersion: 0.3.36\n' > "$C/site/llama_cpp_python-0.3.36.dist-info/METADATA"
  cp -r "$(.venv/bin/python -c 'import diskcache, os; print(os.path.dirname(diskcache.__file__))')" "$C/site/"
  echo "import llama_cpp  # noqa: F401  (before sentencepiece: see benchmarks/gpu_llamacpp_bench.py)" > "$C/preload/sitecustomize.py"
  GGUF=$(.venv/bin/python -c "from models.catalog import smollm2_path; print(smollm2_path())")
  .venv/bin/python benchmarks/gpu_llamacpp_bench.py --make-skeleton "$GGUF" --skeleton "$C/skeleton"
  du -sh "$C"
  ;;
device)
  D=/tmp/lcb
  mkdir -p "$D" "$OUT"
  export LOCALBENCH_HOME=$D/home HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
  { nvidia-smi; nproc; lscpu | grep -E "Model name|Flags" | cut -c1-400; python3 -VV; } > "$OUT/gpu_sweep_env.txt" 2>&1
  [ -d "$D/llama.cpp" ] || tar xJf "$C/lcb-src.tar.xz" -C "$D"
  rm -rf "$D/site" && cp -r "$C/site" "$D/site"
  ( cd benchmarks && python3 -c "
from pathlib import Path
from gpu_llamacpp_bench import random_gguf
random_gguf(Path('../$C/skeleton'), Path('$D/smollm2-135m-random-Q4_1.gguf'), Path('$D/llama.cpp/gguf-py'))
" ) > "$OUT/gpu_sweep_gguf.log" 2>&1 &
  G=$!
  ( cd benchmarks && python3 -c "
from pathlib import Path
from gpu_llamacpp_bench import build, install_libs
print(install_libs(build(Path('unused'), Path('$D'), 16), Path('$D/site')))
" ) > "$OUT/gpu_sweep_build.log" 2>&1 || { tail -30 "$OUT/gpu_sweep_build.log"; exit 4; }
  wait $G || { cat "$OUT/gpu_sweep_gguf.log"; exit 5; }
  echo "built and written at ${SECONDS}s"
  # The preload: only in the worker processes, in every process (as run 6 needed), or none. On 2026-12-03 the
  # second made `app.py bench`'s parent abort at once ('free(): invalid pointer'; the parent never needs
  # llama_cpp itself), so each is smoke-tested and the first that runs the CLI is used.
  mkdir -p "$D/worker-preload"
  printf 'with open("/proc/self/cmdline", "rb") as f:\n    if b"--multiprocessing-fork" in f.read():\n        import llama_cpp  # noqa: F401\n' \
    > "$D/worker-preload/sitecustomize.py"
  BASE=$D/site:$PWD:$D/llama.cpp/gguf-py
  CHOSEN=
  for V in "worker:$D/worker-preload:" "every:$PWD/$C/preload:" "none:"; do
    name=${V%%:*} pre=${V#*:}
    PYTHONPATH=$pre$BASE PYTHONFAULTHANDLER=1 timeout 120 python3 app.py bench --engine llamacpp \
      --model "$D/smollm2-135m-random-Q4_1.gguf" -p 16 -n 4 -r 1 -t 8 > "$OUT/gpu_sweep_smoke_$name.log" 2>&1
    rc=$?
    echo "smoke, preload $name: rc=$rc at ${SECONDS}s"; tail -4 "$OUT/gpu_sweep_smoke_$name.log"
    [ $rc -eq 0 ] && { CHOSEN=$pre; echo "preload $name" > "$OUT/gpu_sweep_preload.txt"; break; }
  done
  [ $rc -eq 0 ] || { echo "no preload variant ran"; exit 6; }
  export PYTHONPATH=$CHOSEN$BASE
  python3 app.py doctor -o json > "$OUT/gpu_sweep_doctor.json" 2>&1 || true
  timeout $((590 - SECONDS)) python3 app.py bench --engine llamacpp --model "$D/smollm2-135m-random-Q4_1.gguf" \
    --sweep -p 512 -n 128 -r 6 -t 8 -o csv --out "$OUT/gpu_sweep_h200.csv" 2> "$OUT/gpu_sweep_h200.log"
  echo "bench rc=$? at ${SECONDS}s"
  tr '\r' '\n' < "$OUT/gpu_sweep_h200.log" | grep -v "sweep of" | tail -25
  ;;
*) echo "usage: $0 carry|device"; exit 2 ;;
esac
