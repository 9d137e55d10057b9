"""Measures used across experiments: normalised squared error and angles between vectors."""

from __future__ import annotations

import math

import numpy as np
from numba import njit


def nse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Σ‖y* − y‖² / Σ‖y*‖² over a held-out set (starts at ≈1 for near-zero weights)."""
    return float(np.sum((y_true - y_pred) ** 2) / np.sum(y_true**2))


@njit(cache=True)
def vector_angle(a, b, folded=True):
    """The angle between two vectors in degrees, NaN if one is zero; `folded`: the paper's
    arccos(|aᵀb| / (‖a‖‖b‖)), in [0°, 90°]. The one angle every measurement uses (also inside the
    rate engine's kernels)."""
    dot, na, nb = 0.0, 0.0, 0.0
    for i in range(a.shape[0]):
        dot += a[i] * b[i]
        na += a[i] * a[i]
        nb += b[i] * b[i]
    if na == 0.0 or nb == 0.0:
        return np.nan
    c = dot / math.sqrt(na * nb)
    return math.degrees(math.acos(max(-1.0, min(1.0, abs(c) if folded else c))))


def angle_deg(a: np.ndarray, b: np.ndarray, folded: bool = True) -> float:
    """Angle between two arrays taken as vectors, in degrees (`vector_angle`)."""
    return float(
        vector_angle(
            np.ravel(np.asarray(a, np.float64)), np.ravel(np.asarray(b, np.float64)), folded
        )
    )


def first_reaching(xs: np.ndarray, values: np.ndarray, level: float) -> float | None:
    """The first x at which `values` falls below `level`, or None if it never does."""
    below = np.flatnonzero(np.asarray(values) < level)
    return float(xs[below[0]]) if below.size else None


def window_stats(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SD of consecutive non-overlapping windows (a trailing partial window is dropped)."""
    n = len(values) // window * window
    w = np.asarray(values[:n]).reshape(-1, window)
    return w.mean(axis=1), w.std(axis=1)


def row_angles_deg(a: np.ndarray, b: np.ndarray, folded: bool = True) -> np.ndarray:
    """Angle between corresponding rows of a and b (one angle per example); `folded` as in
    `vector_angle`, else in [0°, 180°]."""
    return _row_angles(np.asarray(a, np.float64), np.asarray(b, np.float64), folded)


@njit(cache=True)
def _row_angles(a, b, folded):
    out = np.empty(a.shape[0])
    for k in range(a.shape[0]):
        out[k] = vector_angle(a[k], b[k], folded)
    return out
