"""Spike noise for the batched engine on the CPU: uniforms from a counter-based generator.

Draw k of a run is a pure function of (key, k): SplitMix64's output function applied to
key + k·γ, the top 24 bits scaled into [0, 1). So the generator's whole state is two integers, the
same numbers come out however the work is split into threads or chunks, and a resumed run continues
exactly where it stopped. A parallel Numba loop fills a step's uniforms several times faster than
NumPy's generators, and no buffer of random bits is kept.
"""

from __future__ import annotations

import zlib

import numba
import numpy as np

NAME = "SplitMix64Counter"  # recorded with the state, so that a checkpoint names its generator
_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S40 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(40)


@numba.njit(cache=True)
def _fill(flat, key, counter):
    scale = flat.dtype.type(1.0 / (1 << 24))
    for j in range(flat.size):
        z = key + (counter + np.uint64(j)) * _GAMMA  # integer arithmetic wraps modulo 2⁶⁴
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
        z = z ^ (z >> _S31)
        flat[j] = flat.dtype.type(z >> _S40) * scale


class CounterNoise:
    """Uniforms in [0, 1) for stream `name` of a run's `seed` (24 random bits each, exact in
    float32)."""

    def __init__(self, seed: int, name: str = "spikes"):
        seq = np.random.SeedSequence(int(seed), spawn_key=(zlib.crc32(name.encode()),))
        self.key, self.counter = int(seq.generate_state(1, np.uint64)[0]), 0

    def fill(self, out: np.ndarray) -> None:
        """Write the next `out.size` uniforms into `out` (any contiguous layout), in memory
        order."""
        flat = out.ravel(order="K")
        if not np.shares_memory(flat, out):
            raise ValueError("noise buffers must be contiguous")
        _fill(flat, np.uint64(self.key), np.uint64(self.counter))
        self.counter += out.size

    @property
    def state(self) -> dict:
        return {"bit_generator": NAME, "key": self.key, "counter": self.counter}

    @state.setter
    def state(self, saved: dict) -> None:
        self.key, self.counter = int(saved["key"]), int(saved["counter"])
