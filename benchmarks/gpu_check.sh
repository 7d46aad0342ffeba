#!/usr/bin/env bash
# One prepared check on a machine with an NVIDIA GPU, in under 5 minutes:
#   1. install the project with the `cuda` extra (make's venv, CPU torch),
#   2. the CUDA tests (marker `cuda`) on the real device, and the real-compilation test,
#   3. launch and flag-read overheads (benchmarks/gpu_overheads.py),
#   4. the GPU rows of benchmarks/dem_throughput.py (both dense states, N = 32 000 .. 1e6),
#   5. benchmarks/time_to_jamming.py on the GPU if that script exists and takes --backend.
# Every result is JSON under benchmarks/results/ (gpu_check_*.json); a step that fails or runs past
# its time limit is recorded in gpu_check_summary.json and the others still run. Steps 2-5 are
# capped at 300 s together; the first install downloads about 0.5 GB (torch CPU, CUDA wheels).
# Usage (repository root): bash benchmarks/gpu_check.sh
# (PYTHON=path/to/python uses another environment; SKIP_INSTALL=1 skips step 1.)
set -uo pipefail
cd "$(dirname "$0")/.."
RES=benchmarks/results
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$RES"
declare -A STATUS

step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s)"
  local t0=$SECONDS
  timeout "$limit" "$@"
  local rc=$?
  STATUS[$name]="{\"rc\": $rc, \"seconds\": $((SECONDS - t0))}"
}

if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "no nvidia-smi: this check needs a machine with an NVIDIA GPU" >&2
  exit 3
fi
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$RES/gpu_check_device.csv"

if [ "${SKIP_INSTALL:-0}" != 1 ]; then
  step install 300 bash -c "make .venv/.jamwave-installed >/dev/null && $PY -m pip install --quiet -e '.[cuda]'"
fi
export NUMBA_ENABLE_CUDASIM=0
step tests 120 "$PY" -m pytest -q -m "not slow" -p no:cacheprovider --junitxml="$RES/gpu_check_tests.xml" \
  tests/test_granular_engine_cuda.py tests/test_granular_cuda_hostloop.py tests/test_granular_backend_kept.py \
  tests/test_granular_cuda_compile.py
step overheads 20 "$PY" -m benchmarks.gpu_overheads --repeats 2000 --name gpu_check_overheads
step dem_throughput 130 "$PY" -m benchmarks.dem_throughput --gpu-only --repeats 1 \
  --gpu-sizes 32000,256000,1000000 --name gpu_check_dem_throughput
if [ -f benchmarks/time_to_jamming.py ] && "$PY" -m benchmarks.time_to_jamming --help 2>/dev/null | grep -q -- --backend; then
  step time_to_jamming 30 "$PY" -m benchmarks.time_to_jamming --backend cuda --systems mono_N1000 \
    --methods bisection --seeds 0 --cap 25 --name gpu_check_time_to_jamming
else
  echo "== time_to_jamming: skipped (script absent or without --backend)"
  STATUS[time_to_jamming]='{"rc": null, "skipped": "benchmarks/time_to_jamming.py absent or without --backend"}'
fi

"$PY" - "$RES" <<'EOF'
import json, sys, xml.etree.ElementTree as ET
from pathlib import Path
res = Path(sys.argv[1])
summary = {}
xml = res / "gpu_check_tests.xml"
if xml.exists():
    suite = ET.parse(xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    summary["tests"] = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    summary["tests"]["failed"] = [c.get("classname") + "::" + c.get("name") for c in suite.iter("testcase")
                                  if c.find("failure") is not None or c.find("error") is not None]
Path(res / "gpu_check_tests.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary))
EOF

{
  echo "{"
  first=1
  for k in "${!STATUS[@]}"; do
    [ $first -eq 1 ] || echo ","
    first=0
    printf '"%s": %s' "$k" "${STATUS[$k]}"
  done
  echo "}"
} > "$RES/gpu_check_summary.json"
cat "$RES/gpu_check_summary.json"
