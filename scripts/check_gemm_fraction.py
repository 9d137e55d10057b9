"""The fast engine's batched training step as a fraction of the float32 matrix-multiply peak the way
issue 4's check measures that peak (a 640×1500 by 1500×1500 product, 20 times), at several batch
sizes, twice; the peak is measured just before each round because this shared machine's speed drifts.

    python scripts/check_gemm_fraction.py [BATCH ...]      (default 50 100 200)
"""
import sys
import time

import numpy as np

from spikefa.bench import FULL, fast_stream_steps_per_s, stream_step_flops
from spikefa.spiking.spec import SpikingSpec

spec = SpikingSpec(sizes=FULL, reading="tau", steps_per_image=10, eta=0.01)
batches = [int(b) for b in sys.argv[1:]] or [50, 100, 200]
a, w = np.random.rand(640, 1500).astype(np.float32), np.random.rand(1500, 1500).astype(np.float32)
a @ w
for _ in range(2):
    start = time.perf_counter()
    for _ in range(20):
        a @ w
    peak = 2 * 640 * 1500 * 1500 * 20 / (time.perf_counter() - start) / 1e9
    fractions = {b: fast_stream_steps_per_s(spec, b) * stream_step_flops(spec) / 1e9 / peak for b in batches}
    print(f"640-row peak {peak:.0f} GFLOP/s; " + ", ".join(f"{b} streams {f:.0%}" for b, f in fractions.items()))
