"""One seed per run, split into named, independent random streams.

`stream(seed, "feedback")` always gives the same generator for the same (seed, name), whatever
other streams were used before: BP and FA runs of one seed share data order and forward init,
and only the stream that differs (e.g. B) changes between them.
"""

import zlib

import numpy as np

STREAMS = (
    "task",
    "data",
    "test",
    "init",
    "feedback",
    "masks",
    "dale",
    "perturbation",
    "spikes",
    "order",
    "figures",
)


def stream(seed: int, name: str, *index: int, bits=np.random.PCG64) -> np.random.Generator:
    """The generator of stream `name`; `index` (e.g. an epoch) picks an independent sub-stream;
    `bits` is NumPy's bit generator (PCG64DXSM draws float32 twice as fast here)."""
    if name not in STREAMS:
        raise ValueError(f"unknown random stream {name!r}; known: {', '.join(STREAMS)}")
    key = (zlib.crc32(name.encode()), *map(int, index))
    return np.random.Generator(bits(np.random.SeedSequence(int(seed), spawn_key=key)))
