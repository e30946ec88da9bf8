#!/usr/bin/env bash
# Preprocessing at WeatherBench2-like width (issue 15): one month of 6-hourly 1-degree files
# holding z and t on 13 pressure levels plus sst and t2m (28 channels, 495 MB of NetCDF)
# against a one-variable job of the same input size (t2m, 28 monthly files, 501 MB). Prints
# each job's line (seconds by stage), three times alternated, then the bytes each job read
# from the disk with its inputs evicted first (a block I/O cgroup's counters; needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
W=${WORK:-bench-results/wide}
mkdir -p "$W/wide" "$W/narrow"
L=50,100,150,200,250,300,400,500,600,700,850,925,1000
[ -d "$W/wide/in" ] || $PY -m era5cache.cli sample --out "$W/wide/in" --start 2019-01-01 \
  --end 2019-01-31T18 --step 6h --resolution 1.0 --variables sst,t2m,z,t --levels $L
[ -d "$W/narrow/in" ] || $PY -m era5cache.cli sample --out "$W/narrow/in" --start 2019-01-01 \
  --end 2021-04-30T18 --step 6h --resolution 1.0 --variables t2m
printf 'inputs: [%s]\noutput: %s\nvariables: null\nhash_inputs: false\nperiods: {train: ["2019-01-01T00", "2019-01-31T18"]}\n' \
  "$W/wide/in" "$W/wide/cache" > "$W/wide/r.yaml"
printf 'inputs: [%s]\noutput: %s\nvariables: [t2m]\nhash_inputs: false\nperiods: {train: ["2019-01-01T00", "2021-04-30T18"]}\n' \
  "$W/narrow/in" "$W/narrow/cache" > "$W/narrow/r.yaml"
for _ in 1 2 3; do
  for w in wide narrow; do
    rm -rf "$W/$w/cache"
    echo "$w: $($PY -m era5cache.cli preprocess "$W/$w/r.yaml" --no-progress | grep '^built')"
  done
done
for w in wide narrow; do
  rm -rf "$W/$w/cache"
  $PY - "$W/$w" <<'PYEOF'
import subprocess, sys
from pathlib import Path
from era5cache.bench.cgroup import ReadThrottle
from era5cache.serve.readahead import evict
job = Path(sys.argv[1])
files = sorted((job / "in").glob("*.nc"))
for f in files:
    evict(f)
with ReadThrottle(files[0], 10**12) as th:  # no throttle: only its counters
    subprocess.run([sys.executable, "-m", "era5cache.cli", "preprocess", str(job / "r.yaml"),
                    "--no-progress"], check=True, capture_output=True)
    stats = (th.path / "blkio.throttle.io_service_bytes").read_text().split("\n")
read = sum(int(x.split()[2]) for x in stats if len(x.split()) == 3 and x.split()[1] == "Read")
size = sum(f.stat().st_size for f in files)
print(f"{job.name}: read {read / 1e6:.1f} MB from the disk for {size / 1e6:.1f} MB of inputs")
PYEOF
done
