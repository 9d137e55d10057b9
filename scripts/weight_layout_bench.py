"""Fast engine, full network, learning on: weights column-major (as `fast.batch_state` stores them)
against the same state with row-major weights, timed alternately in one process (best of 3).

    OPENBLAS_NUM_THREADS=1 python scripts/weight_layout_bench.py [BATCH]
"""
import sys
import time

import numpy as np

from spikefa.bench import FULL
from spikefa.spiking import fast
from spikefa.spiking.spec import SpikingSpec, initial_state, is_stream_var

spec = SpikingSpec(sizes=FULL, reading="tau", steps_per_image=10, eta=0.01)
batch = int(sys.argv[1]) if len(sys.argv) > 1 else 50
rng = np.random.default_rng(0)
images, labels = rng.random((batch, 2, FULL[0])).astype(np.float32), rng.integers(0, 10, (batch, 2))


def stream_steps_per_s(order: str) -> float:
    state = fast.batch_state(spec, initial_state(spec), batch)
    if order == "row-major":
        state = {k: v if is_stream_var(k) or v.ndim < 2 else np.ascontiguousarray(v) for k, v in state.items()}
    ops, ws = fast.CpuOps(), fast.Workspace.allocate(spec, batch)
    fast.run(spec, state, images[:, :1], labels[:, :1], rng=rng, ops=ops, ws=ws)  # warm-up
    start = time.perf_counter()
    fast.run(spec, state, images, labels, rng=rng, ops=ops, ws=ws)
    return batch * 2 * spec.steps_per_image / (time.perf_counter() - start)


runs = {"row-major": [], "column-major": []}
for _ in range(3):
    for order, rates in runs.items():
        rates.append(stream_steps_per_s(order))
best = {order: max(rates) for order, rates in runs.items()}
print({k: round(v) for k, v in best.items()}, "ratio", round(best["column-major"] / best["row-major"], 2))
