#!/usr/bin/env bash
# The GPU check of sam2_fast: one script for a CUDA machine (see bench/README.md).
#
#   bash bench/gpu_check.sh          # on a CUDA machine; results under $OUT
#   bash bench/gpu_check.sh --dry    # on the CPU, tiny shapes, about 1-2 minutes (tests/test_bench_dry.py)
#
# Steps, each under a hard time cap (timeout) so that the whole check ends within TOTAL_CAP:
#   0. install wheels carried in .device/wheels (official sam2 + its pure-Python deps), if any
#   1. versions: GPU, driver, clocks, Python, torch, triton
#   2. pytest -m gpu (all tests), then the other kernel tests on the GPU   caps PYTEST_GPU_CAP, PYTEST_KERNEL_CAP
#   3. sam2-fast tune: the runtime profile of this GPU -> $OUT/profile.toml  cap TUNE_CAP
#   4. bench/bench_kernels.py (ceilings, all kernel shapes, 4 providers)   cap KERNELS_CAP
#   4b. bench/bench_amg.py (automatic mask generator, large 1024 px, bf16, vs official)  cap AMG_CAP
#   5. bench/bench_vos.py: official eager vs sam2_fast with the built-in kernel table and with
#      the tuned profile, one torch.profiler propagation (top 10 CUDA kernels), then the other
#      sizes, the sam2-fast video command end to end, image latency, 4/16 objects
#                                                                           cap: what is left of TOTAL_CAP
#   6. bench/summarize.py: the short table, printed last
# Files under $OUT (8): check.log (step log, versions; the tune, bench_kernels and bench_amg logs)
# pytest.log kernels.json profile.toml amg.json vos.json vos.log summary.txt.
# Every cap is an environment variable (defaults below); what was capped is printed.
set -uo pipefail
cd "$(dirname "$0")/.."

DRY=0
[ "${1:-}" = "--dry" ] && DRY=1
PY=${PYTHON:-python3}
OUT=${OUT:-$(mktemp -d /tmp/gpu_check.XXXXXX)}
mkdir -p "$OUT"
T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
log() { echo "[gpu_check +$(el)s] $*" | tee -a "$OUT/check.log"; }

if [ $DRY = 1 ]; then
  TOTAL_CAP=${TOTAL_CAP:-330}; PYTEST_GPU_CAP=${PYTEST_GPU_CAP:-60}; PYTEST_KERNEL_CAP=${PYTEST_KERNEL_CAP:-0}
  TUNE_CAP=${TUNE_CAP:-90}; KERNELS_CAP=${KERNELS_CAP:-120}
else
  TOTAL_CAP=${TOTAL_CAP:-540}          # seconds for the whole check
  PYTEST_GPU_CAP=${PYTEST_GPU_CAP:-120}
  PYTEST_KERNEL_CAP=${PYTEST_KERNEL_CAP:-45}
  TUNE_CAP=${TUNE_CAP:-100}
  KERNELS_CAP=${KERNELS_CAP:-90}
fi
TUNE_VARIANTS=${TUNE_VARIANTS:-base_plus,tiny,small,large}   # tune: Hiera variants, in priority order
COMPILE_BUDGET=${COMPILE_BUDGET:-30}    # bench_kernels: seconds of torch.compile in total
COMPILE_SIZES=${COMPILE_SIZES:-}        # bench_vos: sizes that run the official vos_optimized ('' = none)
COMPILE_CAP=${COMPILE_CAP:-aten-gemm}   # max-autotune GEMM search limited to cuBLAS ('none': as shipped)
COMPILE_TIMEOUT=${COMPILE_TIMEOUT:-150} # bench_vos: seconds for the vos_optimized child (compile + runs)
VOS_SIZES=${VOS_SIZES:-base_plus,tiny,small,large}   # priority order (b+ is the official benchmark's)
IMAGE_SIZES=${IMAGE_SIZES:-base_plus,tiny}
MULTI_SIZES=${MULTI_SIZES:-base_plus}
PROFILE_RUN=${PROFILE_RUN:-base_plus}   # size of the torch.profiler propagation ('' = none)
VOS_RUNS=${VOS_RUNS:-2}; VOS_WARMUP=${VOS_WARMUP:-1}
MULTI_FRAMES=${MULTI_FRAMES:-60}
STEPS=${STEPS:-tests,tune,kernels,amg,vos}  # e.g. STEPS=vos for a second call
has() { case ",$STEPS," in *",$1,"*) return 0;; esac; return 1; }

# ---- 0. wheels (a machine without network: .device/wheels is carried along) --------------------
if [ $DRY = 0 ] && ls .device/wheels/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .device/wheels/*.whl \
    >>"$OUT/check.log" 2>&1 && log "wheels installed: $(ls .device/wheels | tr '\n' ' ')" \
    || log "WARNING: wheel install failed (see check.log)"
  export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
  [ $DRY = 0 ] && log "no .device/wheels/*.whl: the official sam2 must already be importable"
fi

# ---- frames ------------------------------------------------------------------------------------
FRAMES=${FRAMES:-}
if [ -z "$FRAMES" ]; then
  for d in .device/bedroom ../shared/data/bedroom; do
    if [ -d "$d" ]; then FRAMES=$d; break; fi
  done
fi
if [ -z "$FRAMES" ] && [ $DRY = 0 ]; then
  log "ERROR: no bedroom frames (.device/bedroom, ../shared/data/bedroom): set FRAMES=/path/to/frames"
  exit 2
fi
if [ -z "$FRAMES" ]; then  # a dry run without data: synthetic random frames (never zeros)
  FRAMES=$(mktemp -d /tmp/gpu_check_frames.XXXXXX)
  "$PY" - "$FRAMES" <<'EOF'
import sys, numpy as np
from PIL import Image
rng = np.random.default_rng(0)
for i in range(3):
    Image.fromarray(rng.integers(0, 256, (96, 160, 3), dtype=np.uint8)).save(f"{sys.argv[1]}/{i:05d}.jpg")
EOF
  log "no bedroom frames found: synthetic frames in $FRAMES"
fi

# ---- 1. versions -------------------------------------------------------------------------------
log "dry=$DRY out=$OUT frames=$FRAMES python=$PY steps=$STEPS caps: total=${TOTAL_CAP}s pytest=${PYTEST_GPU_CAP}+${PYTEST_KERNEL_CAP}s tune=${TUNE_CAP}s kernels=${KERNELS_CAP}s amg=${AMG_CAP:-default}s compile_budget=${COMPILE_BUDGET}s compile_sizes='$COMPILE_SIZES' compile_cap=$COMPILE_CAP compile_timeout=${COMPILE_TIMEOUT}s"
log "plan: tune_variants=$TUNE_VARIANTS vos_sizes=$VOS_SIZES image_sizes=$IMAGE_SIZES multi_sizes=$MULTI_SIZES multi_frames=$MULTI_FRAMES profile_run='$PROFILE_RUN' vos_warmup=$VOS_WARMUP vos_runs=$VOS_RUNS amg_runs=${AMG_RUNS:-3}"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.draw,temperature.gpu \
    --format=csv 2>&1 | tee -a "$OUT/check.log"
fi
"$PY" - <<'EOF' 2>&1 | tee -a "$OUT/check.log"
import platform, torch
try:
    import triton; tv = triton.__version__
except ImportError:
    tv = None
try:
    import sam2, importlib.metadata as md; sv = md.version("sam2")
except Exception as e:  # noqa: BLE001
    sv = f"not importable ({type(e).__name__})"
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
print(f"python {platform.python_version()} torch {torch.__version__} (cuda {torch.version.cuda}) "
      f"triton {tv} sam2 {sv} gpu {gpu}")
EOF
if [ $DRY = 0 ] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  log "ERROR: no CUDA GPU here: bash bench/gpu_check.sh --dry runs the scripts on the CPU (tiny shapes)"
  exit 2
fi

run_capped() {  # run_capped CAP LOGFILE CMD...  -> rc (124 = capped)
  local cap=$1 logf=$2; shift 2
  if [ "$cap" -le 0 ]; then log "skipped (cap 0): $*"; return 0; fi
  timeout --kill-after=10 "$cap" "$@" >>"$logf" 2>&1
  local rc=$?
  if [ $rc = 124 ] || [ $rc = 137 ]; then log "CAPPED after ${cap}s: $*"; fi
  return $rc
}

# ---- 2. tests ----------------------------------------------------------------------------------
export PYTHONDONTWRITEBYTECODE=1
if has tests; then
log "pytest -m gpu (cap ${PYTEST_GPU_CAP}s)"
if [ $DRY = 1 ]; then PYT_GPU="tests/test_kernels.py"; else PYT_GPU="tests"; fi
run_capped "$PYTEST_GPU_CAP" "$OUT/pytest.log" "$PY" -m pytest -q -p no:cacheprovider \
  --continue-on-collection-errors -m gpu $PYT_GPU
rc=$?; log "pytest -m gpu rc=$rc : $(grep -E '(passed|failed|error|skipped|no tests ran)' "$OUT/pytest.log" | tail -1)"
log "pytest kernel tests, not gpu-marked, on the GPU (cap ${PYTEST_KERNEL_CAP}s)"
if [ "$PYTEST_KERNEL_CAP" -gt 0 ]; then
  run_capped "$PYTEST_KERNEL_CAP" "$OUT/pytest.log" "$PY" -m pytest -q -p no:cacheprovider -m "not gpu" \
    tests/test_kernels.py tests/test_profile.py
  rc=$?; log "pytest kernels rc=$rc : $(grep -E '(passed|failed|error|skipped|no tests ran)' "$OUT/pytest.log" | tail -1)"
else
  log "pytest kernel tests skipped (PYTEST_KERNEL_CAP=0)"
fi
fi

# ---- 3. the runtime profile of this GPU --------------------------------------------------------
if has tune; then
  log "sam2-fast tune (cap ${TUNE_CAP}s$( [ $DRY = 0 ] && echo "; variants $TUNE_VARIANTS")) -> $OUT/profile.toml"
  if [ $DRY = 1 ]; then
    run_capped "$TUNE_CAP" "$OUT/check.log" env TRITON_INTERPRET=1 "$PY" -m sam2_fast tune --dry \
      --out "$OUT/profile.toml"
  else
    run_capped "$TUNE_CAP" "$OUT/check.log" "$PY" -m sam2_fast tune --out "$OUT/profile.toml" \
      --variants "$TUNE_VARIANTS" --time-budget $((TUNE_CAP - 20))
  fi
  rc=$?
  if [ -f "$OUT/profile.toml" ]; then
    n=$(grep -cE '^impl = "(triton|rotate)' "$OUT/profile.toml" || true)
    log "tune rc=$rc (profile written; entries that are not torch: ${n:-0})"
  else
    log "tune rc=$rc (no profile written)"
  fi
fi

# ---- 4. kernel benchmark -----------------------------------------------------------------------
KARGS=(--json "$OUT/kernels.json" --compile-budget "$COMPILE_BUDGET" --time-budget $((KERNELS_CAP - 25)))
if [ $DRY = 1 ]; then KARGS+=(--dry); export TRITON_INTERPRET=1; fi
if has kernels; then
  log "bench_kernels (cap ${KERNELS_CAP}s, no new case after $((KERNELS_CAP - 25))s, torch.compile budget ${COMPILE_BUDGET}s)"
  run_capped "$KERNELS_CAP" "$OUT/check.log" "$PY" bench/bench_kernels.py "${KARGS[@]}"
  rc=$?; log "bench_kernels rc=$rc (rc 1 = some kernel error above the limit; see check.log)"
fi
unset TRITON_INTERPRET

# ---- 4b. automatic mask generator ("segment everything"): bench/bench_amg.py ----------------------
# sam2_fast vs the official SAM2AutomaticMaskGenerator, same process, alternating calls: large at
# 1024 px, official defaults (points_per_side=32), bf16, the 3 images. Writes amg.json (the log
# goes to check.log, keeping the file count at 8).
if has amg; then
  if [ $DRY = 1 ]; then AMG_CAP=${AMG_CAP:-90}; AMG_ARGS=(--dry); else AMG_CAP=${AMG_CAP:-120}; AMG_ARGS=(--runs "${AMG_RUNS:-3}"); fi
  log "bench_amg (cap ${AMG_CAP}s)"
  run_capped "$AMG_CAP" "$OUT/check.log" "$PY" bench/bench_amg.py --json "$OUT/amg.json" "${AMG_ARGS[@]}"
  rc=$?; log "bench_amg rc=$rc: $(grep -E '^amg ' "$OUT/check.log" | tail -1)"
fi

# ---- 5. end-to-end benchmark -------------------------------------------------------------------
VOS_CAP=$(( TOTAL_CAP - $(el) - 15 ))
[ $VOS_CAP -lt 60 ] && VOS_CAP=60
VOS_BUDGET=$(( VOS_CAP - 45 )); [ $VOS_BUDGET -lt 30 ] && VOS_BUDGET=30
VARGS=(--frames-dir "$FRAMES" --json "$OUT/vos.json" --time-budget $VOS_BUDGET
       --compile-timeout "$COMPILE_TIMEOUT" --compile-cap "$COMPILE_CAP"
       --compile-sizes "$COMPILE_SIZES" --multi-sizes "$MULTI_SIZES" --multi-frames "$MULTI_FRAMES"
       --runs "$VOS_RUNS" --warmup "$VOS_WARMUP" --profile-run "$PROFILE_RUN")
[ -f "$OUT/profile.toml" ] && VARGS+=(--profile "$OUT/profile.toml")
if [ $DRY = 1 ]; then VARGS+=(--dry); else VARGS+=(--sizes "$VOS_SIZES" --image-sizes "$IMAGE_SIZES"); fi
if has vos; then
  log "bench_vos (cap ${VOS_CAP}s; no new task after ${VOS_BUDGET}s; sam2_fast with the built-in table and with $( [ -f "$OUT/profile.toml" ] && echo "the tuned profile" || echo "no tuned profile (none written)"); vos_optimized for '$COMPILE_SIZES')"
  run_capped "$VOS_CAP" "$OUT/vos.log" "$PY" bench/bench_vos.py "${VARGS[@]}"
  rc=$?; log "bench_vos rc=$rc"
fi

# ---- 6. the short table, last ------------------------------------------------------------------
log "done in $(el)s; files: $(ls "$OUT" | tr '\n' ' ')"
"$PY" bench/summarize.py "$OUT/kernels.json" "$OUT/vos.json" "$OUT/profile.toml" --amg "$OUT/amg.json" \
  >"$OUT/summary.txt" 2>&1
tail -n 40 "$OUT/pytest.log" 2>/dev/null | grep -E "FAILED|ERROR|passed|failed" | tail -8
cat "$OUT/summary.txt"
