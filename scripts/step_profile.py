"""Where the fast engine's batched training step spends its time: full network, learning on, each
backend operation timed inside real steps (so caches are as cold as in training), each matrix
product with its GFLOP/s, beside the float32 matrix-multiply peak measured in the same run.

    python scripts/step_profile.py [BATCH ...]      (default 50)
"""
import sys
import time
from collections import defaultdict

import numpy as np

from spikefa.bench import FULL, gemm_peak_gflops, stream_step_flops
from spikefa.spiking import fast
from spikefa.spiking.spec import SpikingSpec, initial_state

spec = SpikingSpec(sizes=FULL, reading="tau", steps_per_image=10, eta=0.01)
OPS = ("gemm", "spike_input", "spike_hidden", "output_error", "hidden_delta", "uniforms")


class TimedOps(fast.CpuOps):
    """CpuOps that adds each call's seconds to `seconds[name]`; products are named by their shapes."""

    def __init__(self):
        super().__init__()
        self.seconds, self.flops = defaultdict(float), defaultdict(float)


def _timed(name):
    inner = getattr(fast.CpuOps, name)

    def call(self, *args, **kw):
        start = time.perf_counter()
        inner(self, *args, **kw)
        seconds = time.perf_counter() - start
        if name == "gemm":
            a, b = args[0], args[1]
            m, k = (a.shape[1], a.shape[0]) if kw.get("trans_a") else a.shape
            key = f"gemm {m}x{k} @ {k}x{b.shape[1]}"
            self.flops[key] += 2.0 * m * k * b.shape[1]
        else:
            key = name
        self.seconds[key] += seconds

    return call


for _name in OPS:
    setattr(TimedOps, _name, _timed(_name))


def profile(batch: int, steps: int) -> tuple[float, TimedOps]:
    rng = np.random.default_rng(0)
    state, ws, ops = fast.batch_state(spec, initial_state(spec), batch), fast.Workspace.allocate(spec, batch), TimedOps()
    x = rng.random((batch, FULL[0]), dtype=np.float32)
    for k in range(steps + 10):  # the first 10 steps warm up
        if k == 10:
            ops.seconds.clear()
            ops.flops.clear()
            start = time.perf_counter()
        for r in ws.r:
            ops.uniforms(rng, r)
        fast.step(spec, state, x, ws, spec.eta, ops)
    return (time.perf_counter() - start) / steps, ops


STEPS = 100
peak = gemm_peak_gflops()
for batch in map(int, sys.argv[1:] or ["50"]):
    per_step, ops = profile(batch, STEPS)
    gflops = stream_step_flops(spec) * batch / per_step / 1e9
    print(f"batch {batch}: {1e3 * per_step:.2f} ms per step, {gflops:.0f} GFLOP/s = {gflops / peak:.0%} "
          f"of the {peak:.0f} GFLOP/s peak")
    for name, seconds in sorted(ops.seconds.items(), key=lambda kv: -kv[1]):
        rate = f"  {ops.flops[name] / seconds / 1e9:5.0f} GFLOP/s" if name in ops.flops else ""
        print(f"  {1e3 * seconds / STEPS:6.3f} ms  {name}{rate}")
    in_gemm = sum(v for k, v in ops.seconds.items() if k in ops.flops)
    gemm_gflops = sum(ops.flops.values()) / in_gemm / 1e9
    print(f"  matrix products: {gemm_gflops:.0f} GFLOP/s = {gemm_gflops / peak:.0%} of the peak, "
          f"{in_gemm / STEPS / per_step:.0%} of the step (spike_hidden includes its spike_input call)")
