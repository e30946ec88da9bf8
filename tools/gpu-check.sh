#!/usr/bin/env bash
# One-shot GPU check for a lent H100/H200 (see DEVELOPERS brief: the device has torch,
# lightning, h5py, numpy and xarray but no zarr, dask, netCDF4 or pydantic, and reaches no
# registry). Runs from the repository root with the package from source; writes results
# under $OUT as it goes, the most wanted first, each step under its own timeout. The whole
# takes about 6-8 minutes, more than one call's 600 s may allow with compilation: run it as
# two calls on the same warm machine, `bash tools/gpu-check.sh bench` then
# `bash tools/gpu-check.sh tests` (no argument: both). The trainer's recipe needs pydantic:
# carry its wheels in .whl/ (README, "Checking on a GPU"), installed here into /tmp/site.
set -uo pipefail
export PYTHONPATH=src PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
if ! $PY -c "import pydantic" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=src:/tmp/site
fi
OUT=${OUT:-/tmp/gpu-check}
WHAT=${1:-all}
mkdir -p "$OUT"
# 0. The machine: card, versions, and the C compiler torch.compile needs.
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
{
  $PY -c "import torch, lightning; print('torch', torch.__version__, 'lightning', \
lightning.__version__, torch.cuda.get_device_name())"
  for c in cc gcc c++ g++ clang; do printf '%s: %s\n' "$c" "$(command -v $c || echo none)"; done
  $PY -c "import pynvml" 2>/dev/null && echo "pynvml: yes" || echo "pynvml: no (no GPU utilisation)"
  nproc; free -g | head -2
} 2>&1 | tee "$OUT/versions.txt"
if [ "$WHAT" != tests ]; then
# 1. A synthetic cache (20,000 six-hourly steps, 3 channels: 16,000 training windows).
[ -f /tmp/gpucache/manifest.json ] || timeout 150 $PY -m era5cache.cli bench synthetic-cache --out /tmp/gpucache \
  --cache-steps "${CACHE_STEPS:-20000}" | tee "$OUT/bench.txt"
# 2. The training benchmark: feeding paths, eager and compiled ceilings, the era5cache
#    train loop sustained over 300 steps, the loop's overhead; a profile of the eager step
#    and the eager step with one part taken out at a time (--ablate).
timeout "${BENCH_TIMEOUT:-420}" $PY -m era5cache.cli bench train --data /tmp/gpucache \
  --json "$OUT/train.json" --profile "$OUT/profile.txt" --ablate ${BENCH_ARGS:-} 2>&1 \
  | grep --line-buffered -v -i "warn\|Epoch \|Validation" | tee -a "$OUT/bench.txt"
fi
[ "$WHAT" = bench ] && exit 0
# 3. GPU tests: resident data, the trainer on CUDA (compiled), no host sync in the step.
if $PY -c "import pytest" 2>/dev/null; then
  timeout "${TEST_TIMEOUT:-300}" $PY -m pytest -q -p no:cacheprovider \
    tests/serve/test_serve_gpu.py tests/serve/test_serve_device_imports.py \
    tests/test_layout.py 2>&1 | tail -30 | tee "$OUT/pytest.txt"
else
  echo "pytest not installed on this machine: GPU tests not run" | tee "$OUT/pytest.txt"
fi
