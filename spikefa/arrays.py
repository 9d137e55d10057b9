"""The array module an array belongs to (NumPy or CuPy) and the way back to NumPy — the few lines
that let the batched engines run the same code on a CPU or a GPU — and the spiking engine's in-place
BLAS matrix product (no temporaries on the CPU; for the rate engine's smaller minibatch products
NumPy's matmul measured faster, so it keeps that)."""

from __future__ import annotations

import contextlib
import importlib
import os

import numpy as np
from scipy.linalg import blas

from spikefa.errors import SpikefaError


def array_module(a):
    """numpy for NumPy arrays, else the package that defines the array's type (cupy)."""
    return (
        np
        if isinstance(a, np.ndarray)
        else importlib.import_module(type(a).__module__.split(".")[0])
    )


def import_cupy():
    """CuPy, once it has shown that a GPU answers; otherwise one clear error."""
    try:
        import cupy

        cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # ImportError, or CUDA's own errors when there is no driver or device
        raise SpikefaError(
            f"backend cupy needs CuPy and a GPU (pip install -e '.[gpu]'): {exc}"
        ) from None
    return cupy


def to_numpy(a) -> np.ndarray:
    """A NumPy array of `a` (NumPy, CuPy or PyTorch), copied from the GPU when it lives there."""
    if isinstance(a, np.ndarray):
        return a
    if hasattr(a, "get"):  # CuPy
        return a.get()
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)  # torch


def gemm(a, b, out, alpha=1.0, beta=0.0, trans_a=False):
    """out = α·x b + β·out with x = a (or aᵀ with `trans_a`), written into `out` in place by float32
    or float64 BLAS: no temporary the size of `out`, and β carries a decay of `out` for free."""
    # BLAS is column-major: a column-major `out` is α·x·b directly; a row-major one is
    # outᵀ = α·bᵀ·xᵀ. Every operand goes to BLAS as a column-major view with its transpose flag, so nothing
    # is copied.
    x = a.T if trans_a else a
    f = blas.sgemm if out.dtype == np.float32 else blas.dgemm
    if out.flags.f_contiguous and not out.flags.c_contiguous:
        (A, ta), (B, tb) = _column_major(x), _column_major(b)
        f(alpha, A, B, trans_a=ta, trans_b=tb, beta=beta, c=out, overwrite_c=True)
        return
    (A, ta), (B, tb) = _column_major(b.T), _column_major(x.T)
    res = f(alpha, A, B, trans_a=ta, trans_b=tb, beta=beta, c=out.T, overwrite_c=True)
    if not np.shares_memory(
        res, out
    ):  # out was neither C- nor F-contiguous and BLAS worked on a copy
        out[...] = res.T


def _column_major(m):
    """(array, transpose flag) such that BLAS reading the array column-major and applying the flag
    sees m."""
    return (m, False) if m.flags.f_contiguous else (m.T, True)


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container or `taskset`
    narrows)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextlib.contextmanager
def blas_threads(n: int | None = None):
    """Run the block with `n` BLAS threads; by default the number OMP_NUM_THREADS or
    OPENBLAS_NUM_THREADS asks for, else every core this process is given. Two runs sharing a machine
    each take their share, instead of both spinning on every core."""
    from threadpoolctl import threadpool_limits

    if n is not None and n < 1:
        raise SpikefaError(f"--threads must be at least 1, got {n}")
    asked = next(
        (os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS") if os.environ.get(k)),
        "",
    )
    with threadpool_limits(
        limits=n or (int(asked) if asked.isdigit() else available_cores()), user_api="blas"
    ):
        yield
