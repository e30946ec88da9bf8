#!/usr/bin/env bash
# A/B timing of two source trees on this machine: the job on the preprocess benchmark's
# reference input (168 hourly 0.25-degree steps of t2m, uncompressed CDS layout) and
# `era5cache bench loader`, alternated ROUNDS times (A, B, A, B, ...).
#   tools/bench-ab.sh SRC_A SRC_B [ROUNDS] [WORKDIR]
# SRC_*: a tree's src/ folder (e.g. a `git worktree` of the commit before a change).
set -euo pipefail
A=$1; B=$2; ROUNDS=${3:-3}; WORK=${4:-bench-results/ab}
PY=${PY:-.venv/bin/python}
mkdir -p "$WORK"
"$PY" - "$WORK/input" <<'PYEOF'
import sys
from pathlib import Path
from era5cache.config.sample import SampleSpec
from era5cache.sample.netcdf import write_sample
out = Path(sys.argv[1])
if not (out / ".complete").exists():
    write_sample(out, SampleSpec(start="2021-07-01T00", end="2021-07-07T23", step="1h",
                                 resolution=0.25, variables=("t2m",), compress=False))
    (out / ".complete").touch()
PYEOF
cat "$WORK"/input/*.nc > /dev/null  # warm the page cache
for r in $(seq "$ROUNDS"); do
  for side in A B; do
    src=$A; [ "$side" = B ] && src=$B
    rm -rf "$WORK/out_$side"
    t0=$(date +%s.%N)
    PYTHONPATH="$src" "$PY" -m era5cache.cli preprocess --input "$WORK/input" \
      --output "$WORK/out_$side" --variables t2m --workers 2 --no-progress > /dev/null
    t1=$(date +%s.%N)
    echo "round $r $side job_s $(echo "$t1 - $t0" | bc)"
    PYTHONPATH="$src" "$PY" -m era5cache.cli bench loader --json "$WORK/loader_${side}_$r.json" \
      > "$WORK/loader_${side}_$r.txt"
    echo "round $r $side loader done"
  done
done
