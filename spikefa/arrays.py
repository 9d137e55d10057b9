"""The array module an array belongs to (NumPy or CuPy) and the way back to NumPy: the few lines
that let the batched engines run the same code on a CPU or a GPU."""

from __future__ import annotations

import importlib

import numpy as np


def array_module(a):
    """numpy for NumPy arrays, else the package that defines the array's type (cupy)."""
    return np if isinstance(a, np.ndarray) else importlib.import_module(type(a).__module__.split(".")[0])


def to_numpy(a) -> np.ndarray:
    """A NumPy array of `a`, copied from the GPU when it lives there."""
    return a if isinstance(a, np.ndarray) else a.get() if hasattr(a, "get") else np.asarray(a)
