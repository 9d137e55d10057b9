"""Fast engine, full network, learning on: the memory order of the weights and of the per-stream
arrays (PSPs, traces, spikes, δs), each row- or column-major, timed alternately in one process
(median of 5). `fast.batch_state` stores both column-major.

    python scripts/weight_layout_bench.py [BATCH]      (default 50)
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
images, labels = rng.random((batch, 4, FULL[0])).astype(np.float32), rng.integers(0, 10, (batch, 4))
ORDERS = {"C": "row-major", "F": "column-major"}


def stream_steps_per_s(streams: str, weights: str) -> float:
    fast.STREAM_ORDER = streams  # read by batch_state, Workspace.allocate and run
    state = fast.batch_state(spec, initial_state(spec), batch)
    state = {k: v if is_stream_var(k) or v.ndim < 2 else np.asarray(v, order=weights) for k, v in state.items()}
    ops, ws = fast.CpuOps(), fast.Workspace.allocate(spec, batch)
    fast.run(spec, state, images[:, :1], labels[:, :1], rng=rng, ops=ops, ws=ws)  # warm-up
    start = time.perf_counter()
    fast.run(spec, state, images, labels, rng=rng, ops=ops, ws=ws)
    return images.shape[0] * images.shape[1] * spec.steps_per_image / (time.perf_counter() - start)


layouts = [(s, w) for s in "CF" for w in "CF"]
rates = {layout: [] for layout in layouts}
for _ in range(5):
    for layout in layouts:
        rates[layout].append(stream_steps_per_s(*layout))
best = np.median(rates[("F", "F")])
for (s, w), r in rates.items():
    print(f"streams {ORDERS[s]:>12}, weights {ORDERS[w]:>12}: {np.median(r):6.0f} stream-steps/s "
          f"({np.median(r) / best:.2f} of the default)")
