"""NumPy's array interface over PyTorch tensors: the part the batched engine calls.

The engine (`fast.py`) and the code `codegen` prints from the model's equations address an array
module `xp` by NumPy's names (`xp.zeros`, `exp`, `where`, `less`, …). This module is such an `xp`
for tensors on one device: CUDA where PyTorch finds a GPU, else the CPU, so that the same code runs
in tests on a CPU and in training on a GPU. Memory-order arguments are accepted and ignored: the
column-major layout of the CPU engine is an OpenBLAS preference, and PyTorch's kernels take any
strides.
"""

from __future__ import annotations

import numpy as np
import torch

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")

# element-wise functions of the generated code, under the names NumPy's printer gives them
exp, log, sqrt, tanh, sinh, cosh = (
    torch.exp,
    torch.log,
    torch.sqrt,
    torch.tanh,
    torch.sinh,
    torch.cosh,
)
sin, cos, tan, arcsin, arccos, arctan = (
    torch.sin,
    torch.cos,
    torch.tan,
    torch.asin,
    torch.acos,
    torch.atan,
)
absolute, sign, power, where, clip = torch.abs, torch.sign, torch.pow, torch.where, torch.clamp
less, less_equal, greater, greater_equal = torch.lt, torch.le, torch.gt, torch.ge
equal, not_equal = torch.eq, torch.ne  # element-wise (torch.equal compares whole tensors)
logical_and, logical_or, logical_not = torch.logical_and, torch.logical_or, torch.logical_not
broadcast_to, copy = torch.broadcast_to, torch.clone
inf = np.inf


def as_dtype(dtype) -> torch.dtype:
    """The torch dtype of a NumPy dtype, a name such as "float32", or a torch dtype."""
    return dtype if isinstance(dtype, torch.dtype) else getattr(torch, np.dtype(dtype).name)


def zeros(shape, dtype="float64", order=None) -> torch.Tensor:
    return torch.zeros(shape, dtype=as_dtype(dtype), device=DEVICE)


def zeros_like(a, order=None) -> torch.Tensor:
    return torch.zeros_like(a)


def ones(shape, dtype="float64", order=None) -> torch.Tensor:
    return torch.ones(shape, dtype=as_dtype(dtype), device=DEVICE)


def full(shape, value, dtype="float64", order=None) -> torch.Tensor:
    return torch.full(shape, value, dtype=as_dtype(dtype), device=DEVICE)


def eye(n, dtype="float64") -> torch.Tensor:
    return torch.eye(n, dtype=as_dtype(dtype), device=DEVICE)


def asarray(a, dtype=None, order=None) -> torch.Tensor:
    """`a` on the device, without a copy where it already is one of the right dtype."""
    if isinstance(a, torch.Tensor):
        return a.to(DEVICE, None if dtype is None else as_dtype(dtype))
    a = np.asarray(a)  # NumPy arrays and Python numbers
    if dtype is None and a.dtype.kind == "u":
        dtype = "int64"  # labels index rows; torch would read a uint8 index as a boolean mask
    return torch.as_tensor(np.ascontiguousarray(a), device=DEVICE).to(
        as_dtype(a.dtype if dtype is None else dtype)
    )


def array(a, copy=True, order=None) -> torch.Tensor:
    """A new tensor of `a` on the device."""
    if isinstance(a, torch.Tensor):
        return a.detach().to(DEVICE, copy=True)
    return torch.as_tensor(np.array(a), device=DEVICE)


def synchronize() -> None:
    """Wait for the device to finish the work queued on it (for timings)."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()
