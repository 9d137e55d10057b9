#!/usr/bin/env bash
# The GPU checks in one script: CuPy conformance tests, `spikefa bench spiking` on
# the GPU, and Fig. 4 training runs side by side, each stopped at a deadline and then scored on the
# 10,000 test images: BP and DFA with their own per-layer learning rates, and FA under the "decay"
# reading (×0.9 per step, 100 steps per image) at 50 and at 200 streams. Everything it measures lands
# in $OUT (runs.tgz and the kept checkpoints in 15 MB parts, for machines that return few files).
#
#   OUT=results/gpu bash scripts/gpu_check.sh            # on a machine with a GPU and CuPy
#   QUICK=1 BACKEND=numpy OUT=/tmp/gpu bash scripts/gpu_check.sh   # a dry run of the plumbing on a CPU
#
# Carried wheels in .whl/ (NumPy < 2.4 and Brian2 2.9, where the machine's Python lacks them) are
# installed first; MNIST is read from $SPIKEFA_DATA.
set -u
T0=$(date +%s)
OUT=${OUT:-results/gpu}
BACKEND=${BACKEND:-cupy}
TRAIN_UNTIL=${TRAIN_UNTIL:-400}   # seconds after the start at which training runs are stopped
LOG=results/gpu-runs/logs
mkdir -p "$OUT" $LOG
elapsed() { echo $(( $(date +%s) - T0 )); }

if ls .whl/*.whl >/dev/null 2>&1 && ! python3 -c "import numpy, brian2" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD PYTHONUNBUFFERED=1
PY=python3
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$LOG/env.txt"
$PY -c "import sys, numpy, scipy, numba, brian2; print(sys.version.split()[0], 'numpy', numpy.__version__, 'scipy', scipy.__version__, 'numba', numba.__version__, 'brian2', brian2.__version__)" >>"$LOG/env.txt" 2>&1 || exit 1
if [ "$BACKEND" = cupy ]; then  # fail fast, before any device time goes into the runs
  $PY -c "import cupy; cupy.ones(1).sum(); print('cupy', cupy.__version__)" >>"$LOG/env.txt" 2>&1 || { cat "$LOG/env.txt"; exit 1; }
fi
cat "$LOG/env.txt"

# 1. the bench, alone on the device
if [ -n "${QUICK:-}" ]; then scaling=(); else scaling=(--scaling 200 1000); fi
$PY -m spikefa bench spiking --backend "$BACKEND" --no-brian2 --batch 50 "${scaling[@]}" --json >"$LOG/bench.json" 2>"$LOG/bench.err"
echo "[$(elapsed) s] bench: $(cat "$LOG/bench.json")"

# 2. training runs side by side (each process keeps the GPU busy only between its Python calls)
COMMON=(--set engine=fast --set backend="$BACKEND" --set batch=50 --set eta=0.00025 --set feedback_scale=0.5
        --set plasticity_delay=3 --set train.epochs=60 --set train.eta_halving_epochs=20.0 --set test.images=2000
        --set validation.every_images=60000 --set checkpoint_minutes=1.0)
[ -n "${QUICK:-}" ] && COMMON+=(--set train.images=400 --set train.epochs=2 --set test.images=100 --set validation.every_images=200)
DECAY=(--set 'algorithms=["fa"]' --set reading='"decay"' --set steps_per_image=100 --set eta=0.000025
       --set plasticity_delay=30 --set validation.every_images=20000)
[ -n "${QUICK:-}" ] && DECAY+=(--set validation.every_images=200)
train() {  # NAME, then extra arguments
  local name=$1; shift
  timeout -s TERM $(( TRAIN_UNTIL - $(elapsed) )) $PY -m spikefa run fig4_spiking "${COMMON[@]}" "$@" \
    --out "results/gpu-runs/$name" >"$LOG/$name.log" 2>&1
  local rc=$?
  echo "[$(elapsed) s] $name stopped (exit $rc; 124: at the deadline, resumable)"
}
train bp --set 'algorithms=["bp"]' --set 'eta_scale=[116,23.8,4.75,1]' &
train dfa --set 'algorithms=["dfa"]' --set 'eta_scale=[4.68,2.16,1.01,1]' &
train fa-decay "${DECAY[@]}" &
train fa-decay-b200 "${DECAY[@]}" --set batch=200 &

# 3. the GPU tests while they train (their speed does not matter)
if [ "$BACKEND" = cupy ]; then
  # (test_sweep.py is left out: it imports Dask, which the GPU image lacks, and holds no GPU test)
  $PY -m pytest -q -m gpu -p no:cacheprovider --ignore=tests/test_sweep.py tests >"$LOG/pytest_gpu.log" 2>&1
  echo "[$(elapsed) s] gpu tests: $(tail -1 "$LOG/pytest_gpu.log")"
fi
wait

# 4. every run's latest checkpoint on the 10,000 test images, then the files to take home
for ck in results/gpu-runs/*/*.npz; do
  name=$(basename "$(dirname "$ck")")-$(basename "$ck" .npz)
  n_test=$([ -n "${QUICK:-}" ] && echo 200 || echo 0)
  $PY -m spikefa evaluate "$ck" --engine fast --backend "$BACKEND" --batch 500 --n-test "$n_test" --json \
    >"$LOG/eval-$name.json" 2>&1 &
done
wait
for f in $LOG/eval-*.json; do echo "$f $(cat "$f")"; done
for ck in results/gpu-runs/{bp/bp,fa-decay/fa,fa-decay-b200/fa}.npz; do  # kept: float16 with their state, in parts
  [ -f "$ck" ] || continue
  name=$(basename "$(dirname "$ck")")
  $PY -m spikefa export "$ck" "${ck%.npz}16.npz" --float16 --keep-state >/dev/null &&
    split -b 15M -d "${ck%.npz}16.npz" "$OUT/$name-16.npz.part"
done
tar czf "$OUT/runs.tgz" $LOG results/gpu-runs/*/metrics.csv results/gpu-runs/*/summary.json results/gpu-runs/*/config.toml 2>/dev/null
ls -la "$OUT"
echo "[$(elapsed) s] done"
