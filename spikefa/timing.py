"""Where a run's time goes: seconds per named part, nested parts counted once.

`with parts("validation"): ...` adds the block's wall time to "validation"; a part opened inside
another is recorded under both names ("validation/spike noise") and taken out of the outer one, so
the parts add up to the whole. A run that is not being profiled uses `NO_PARTS`, whose blocks cost
a function call and nothing else.
"""

from __future__ import annotations

import collections
import contextlib
import time


class Parts:
    def __init__(self):
        self.seconds = collections.Counter()
        self._open = []  # (name, seconds spent in parts nested in it) of each open part

    @contextlib.contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        key = "/".join([n for n, _ in self._open] + [name])
        self._open.append([name, 0.0])
        try:
            yield
        finally:
            _, inner = self._open.pop()
            elapsed = time.perf_counter() - start
            self.seconds[key] += elapsed - inner
            if self._open:
                self._open[-1][1] += elapsed


class _NoParts:
    def __call__(self, name: str):
        return contextlib.nullcontext()


NO_PARTS = _NoParts()
