"""Synthetic regression tasks of the paper, each with its own seeded random stream.

- Fig. 2: linear target y* = T x, T (10×30) ~ U[−1, 1], x ~ N(0, I).
- Fig. 3c,d: a fixed random 30-20-10-10 tanh "teacher" network with linear outputs.
- Fig. 5: quadratic target y*_k = xᵀ Q_k x with Q_k random symmetric, entries U[−1, 1]/20.

A task is drawn once from its own generator (the target is shared by every algorithm); examples
are drawn from another generator, so the training stream and the held-out set never overlap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LinearTask:
    T: np.ndarray  # (n_out, n_in)

    @classmethod
    def draw(cls, rng: np.random.Generator, n_in: int = 30, n_out: int = 10) -> LinearTask:
        return cls(rng.uniform(-1.0, 1.0, size=(n_out, n_in)))

    @property
    def n_in(self) -> int:
        return self.T.shape[1]

    def target(self, x: np.ndarray) -> np.ndarray:
        return x @ self.T.T

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """n examples as rows: inputs x ~ N(0, I) and targets T x."""
        x = rng.standard_normal((n, self.n_in))
        return x, self.target(x)


@dataclass(frozen=True)
class TanhTeacher:
    """y* = W2 tanh(W1 tanh(W0 x + b0) + b1) + b2, weights and biases ~ U[−scale, scale]."""

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]

    @classmethod
    def draw(
        cls, rng: np.random.Generator, sizes=(30, 20, 10, 10), scale: float = 1.0
    ) -> TanhTeacher:
        ws = tuple(rng.uniform(-scale, scale, size=(o, i)) for i, o in zip(sizes[:-1], sizes[1:]))
        bs = tuple(rng.uniform(-scale, scale, size=o) for o in sizes[1:])
        return cls(ws, bs)

    @property
    def n_in(self) -> int:
        return self.weights[0].shape[1]

    def target(self, x: np.ndarray) -> np.ndarray:
        h = x
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            a = h @ w.T + b
            h = a if i == len(self.weights) - 1 else np.tanh(a)
        return h

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.standard_normal((n, self.n_in))
        return x, self.target(x)


@dataclass(frozen=True)
class QuadraticTask:
    Q: np.ndarray  # (n_out, n_in, n_in), each Q[k] symmetric

    @classmethod
    def draw(cls, rng: np.random.Generator, n_in: int = 20, n_out: int = 20) -> QuadraticTask:
        q = rng.uniform(-1.0, 1.0, size=(n_out, n_in, n_in)) / 20.0
        return cls(0.5 * (q + q.transpose(0, 2, 1)))

    @property
    def n_in(self) -> int:
        return self.Q.shape[1]

    def target(self, x: np.ndarray) -> np.ndarray:
        return np.einsum("ni,kij,nj->nk", x, self.Q, x)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.standard_normal((n, self.n_in))
        return x, self.target(x)
