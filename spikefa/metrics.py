"""Measures used across experiments: normalised squared error and angles between vectors."""

from __future__ import annotations

import numpy as np


def nse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Σ‖y* − y‖² / Σ‖y*‖² over a held-out set (starts at ≈1 for near-zero weights)."""
    return float(np.sum((y_true - y_pred) ** 2) / np.sum(y_true ** 2))


def angle_deg(a: np.ndarray, b: np.ndarray, folded: bool = True) -> float:
    """Angle between vectors in degrees; the paper's |aᵀb| folds it into [0°, 90°]."""
    a, b = np.ravel(a), np.ravel(b)
    c = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.degrees(np.arccos(np.clip(abs(c) if folded else c, -1.0, 1.0))))


def first_reaching(xs: np.ndarray, values: np.ndarray, level: float) -> float | None:
    """The first x at which `values` falls below `level`, or None if it never does."""
    below = np.flatnonzero(np.asarray(values) < level)
    return float(xs[below[0]]) if below.size else None


def window_stats(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SD of consecutive non-overlapping windows (a trailing partial window is dropped)."""
    n = len(values) // window * window
    w = np.asarray(values[:n]).reshape(-1, window)
    return w.mean(axis=1), w.std(axis=1)


def row_angles_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Folded angle between corresponding rows of a and b (one angle per example)."""
    dot = np.abs(np.sum(a * b, axis=1))
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.degrees(np.arccos(np.clip(dot / norms, 0.0, 1.0)))
