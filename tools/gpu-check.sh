#!/usr/bin/env bash
# One-shot GPU check for a lent H100/H200 (see DEVELOPERS brief: the device has torch,
# lightning, h5py, numpy and xarray but no zarr, dask, netCDF4 or pydantic, and reaches no
# registry). Runs from the repository root with the package from source; writes results
# under $OUT. The trainer's recipe needs pydantic: carry its wheels in .whl/ (README,
# "Checking on a GPU"), installed here into /tmp/site.
#   run: bash tools/gpu-check.sh
set -uo pipefail
export PYTHONPATH=src PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
if ! $PY -c "import pydantic" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=src:/tmp/site
fi
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
$PY -c "import torch, lightning; print(torch.__version__, lightning.__version__, torch.cuda.get_device_name())" \
  | tee "$OUT/versions.txt"
# 1. GPU tests of the Dataset's resident mode and of the trainer (skip without CUDA).
if $PY -c "import pytest" 2>/dev/null; then
  timeout 300 $PY -m pytest -q -p no:cacheprovider tests/serve/test_serve_gpu.py \
    tests/serve/test_serve_device_imports.py tests/test_layout.py 2>&1 | tail -20 | tee "$OUT/pytest.txt"
else
  echo "pytest not installed on this machine: GPU tests not run" | tee "$OUT/pytest.txt"
fi
# 2. The training benchmark on a synthetic cache (20,000 six-hourly steps, 3 channels).
timeout 120 $PY -m era5cache.cli bench synthetic-cache --out /tmp/gpucache --cache-steps "${CACHE_STEPS:-20000}" \
  | tee "$OUT/bench.txt"
timeout 300 $PY -m era5cache.cli bench train --data /tmp/gpucache --steps "${CPU_STEPS:-10}" --json "$OUT/train.json" 2>&1 \
  | grep -v -i warn | tee -a "$OUT/bench.txt"
# 3. The trainer itself on that cache: bf16, resident, batch 4096 (throughput, data wait).
printf 'data: /tmp/gpucache\ntrainer: {max_epochs: 4, batch_size: 4096, out: /tmp/gpurun}\noptim: {lr_scaling: sqrt}\n' \
  > /tmp/gpu-train.yaml
timeout 300 $PY -m era5cache.cli train /tmp/gpu-train.yaml 2>&1 \
  | grep -v -i warn | tail -25 | tee "$OUT/train-run.txt"
cp /tmp/gpurun/summary.json "$OUT/train-summary.json" 2>/dev/null || true
