#!/usr/bin/env bash
# The GPU session in one script (issues 4 and 7): CuPy conformance tests, `spikefa bench spiking` on
# the GPU, and parallel Fig. 4 training runs, each stopped at a deadline and then scored on the
# 10,000 test images: FA, BP and DFA with the per-layer learning rates of the rate engine's deep-FA
# recipe (η = 2.5e-4 halved every 20 epochs, B ~ U[−0.5, 0.5], plasticity_delay 3; docs/fig4_tuning.md,
# session 5), FA without the gate, and FA under the "decay" reading at 100 steps per image (η scaled
# by 10/100). Everything it measures lands in $OUT (runs.tgz and the FA checkpoints in 15 MB parts:
# at most 8 files come back from a lent machine).
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
TRAIN_UNTIL=${TRAIN_UNTIL:-480}   # seconds after the start at which training runs are stopped
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
[ "$BACKEND" = cupy ] && $PY -c "import cupy; print('cupy', cupy.__version__)" >>"$LOG/env.txt" 2>&1
cat "$LOG/env.txt"

# 1. the bench, alone on the device
if [ -n "${QUICK:-}" ]; then scaling=(); else scaling=(--scaling 200 1000); fi
$PY -m spikefa bench spiking --backend "$BACKEND" --no-brian2 --batch 50 "${scaling[@]}" --json >"$LOG/bench.json" 2>"$LOG/bench.err"
echo "[$(elapsed) s] bench: $(cat "$LOG/bench.json")"

# 2. training runs side by side (each process keeps the GPU busy only between its Python calls)
COMMON=(--set engine=fast --set backend="$BACKEND" --set batch=50 --set eta=0.00025 --set feedback_scale=0.5
        --set plasticity_delay=3 --set train.epochs=60 --set train.eta_halving_epochs=20.0 --set test.images=2000
        --set test.every_images=20000)
[ -n "${QUICK:-}" ] && COMMON+=(--set train.images=400 --set train.epochs=2 --set test.images=100 --set test.every_images=200)
train() {  # NAME, then extra arguments
  local name=$1; shift
  timeout -s TERM $(( TRAIN_UNTIL - $(elapsed) )) $PY -m spikefa run fig4_spiking "${COMMON[@]}" "$@" \
    --out "results/gpu-runs/$name" >"$LOG/$name.log" 2>&1
  local rc=$?
  echo "[$(elapsed) s] $name stopped (exit $rc; 124: at the deadline, resumable)"
}
train fa --set 'algorithms=["fa"]' &
train bp --set 'algorithms=["bp"]' &
train dfa --set 'algorithms=["dfa"]' &
train fa-d0 --set 'algorithms=["fa"]' --set plasticity_delay=0 &
train fa-decay --set 'algorithms=["fa"]' --set reading=decay --set steps_per_image=100 --set eta=0.000025 \
  --set plasticity_delay=30 &

# 3. the GPU tests while they train (their speed does not matter)
if [ "$BACKEND" = cupy ]; then
  $PY -m pytest -q -m gpu -p no:cacheprovider tests >"$LOG/pytest_gpu.log" 2>&1
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
for name in fa fa-d0; do  # FA checkpoints worth keeping, float16 with their state, in parts
  [ -f "results/gpu-runs/$name/fa.npz" ] || continue
  $PY -m spikefa export "results/gpu-runs/$name/fa.npz" "results/gpu-runs/$name/fa16.npz" --float16 --keep-state >/dev/null &&
    split -b 15M -d "results/gpu-runs/$name/fa16.npz" "$OUT/$name-fa16.npz.part"
done
tar czf "$OUT/runs.tgz" $LOG results/gpu-runs/*/metrics.csv results/gpu-runs/*/summary.json results/gpu-runs/*/config.toml 2>/dev/null
ls -la "$OUT"
echo "[$(elapsed) s] done"
