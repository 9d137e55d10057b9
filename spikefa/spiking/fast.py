"""The batched engine: the Brian2 model's discrete-time equations for a batch of image streams.

Each of `batch` independent streams has its own PSPs and traces (arrays batch × n); the weights are
shared and the weight changes of all streams add up, so a batch of 1 is exactly the single-stream
model of `brian.py`. One step does, in the order of `brian.BrianNetwork._schedule`:

  1. u_l ← decay·u_l + (1−decay)·bias_l;  p_l ← decay·p_l
  2. bottom-up, l = 0 … L−1: s_l = [r < σ(u_l)] (input: [r < pixel]); p_l += (1−decay)·s_l;
     u_{l+1} += (1−decay)·s_l w_{l+1}
  3. δ_L = y* − σ(u_L); top-down, l = L−1 … 1: mod_l = δ_src B_l;  δ_l = σ'(u_l)·mod_l
  4. w_l += η·p_{l−1}ᵀ δ_l;  bias_l += η·Σ δ_l;  bp mode: B_l += η·δ_{l+1}ᵀ p_l (stays = w_{l+1}ᵀ)

Written against NumPy's array interface.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from spikefa.spiking.spec import SpikingSpec, is_stream_var


def sigmoid(u):
    return expit(u)  # 1 / (1 + exp(−u)) without overflow warnings for very negative u


@dataclass
class StepRecord:
    y: np.ndarray       # output rates, batch × n_out
    mod: list           # mod_l per hidden layer l (index 0 unused), batch × n_l
    delta: list         # δ_l per layer l = 1 … L
    spikes: list        # s_l per layer l = 0 … L−1


def batch_state(state: dict, batch: int) -> dict:
    """A copy of `state` whose PSPs and traces have one row per stream (single-stream state is repeated)."""
    return {k: np.array(np.broadcast_to(v, (batch, v.shape[-1]))) if is_stream_var(k) else v.copy()
            for k, v in state.items()}


def step(spec: SpikingSpec, state: dict, x: np.ndarray, target: np.ndarray, uniforms: list, eta: float) -> StepRecord:
    """Advance every stream by one step, updating `state` in place. x: batch × n_in pixels,
    target: batch × n_out one-hot, uniforms[l]: batch × n_l uniforms for layer l = 0 … L−1."""
    L, d = spec.n_layers, spec.decay
    g = 1.0 - d
    for l in range(1, L + 1):
        state[f"u{l}"] *= d
        state[f"u{l}"] += g * state[f"bias{l}"]
    spikes = []
    for l in range(L):
        state[f"p{l}"] *= d
        drive = x if l == 0 else sigmoid(state[f"u{l}"])
        s = (uniforms[l] < drive).astype(state[f"p{l}"].dtype)
        spikes.append(s)
        state[f"p{l}"] += g * s
        state[f"u{l + 1}"] += g * (s @ state[f"w{l + 1}"])
    y = sigmoid(state[f"u{L}"])
    delta, mod = [None] * (L + 1), [None] * L
    delta[L] = target - y
    for l in reversed(range(1, L)):
        mod[l] = delta[spec.feedback_source(l)] @ state[f"B{l}"]
        sig = sigmoid(state[f"u{l}"])
        delta[l] = sig * (1 - sig) * mod[l]
    if eta:
        for l in range(1, L + 1):
            if spec.weight_decay:
                state[f"w{l}"] -= eta * spec.weight_decay * x.shape[0] * state[f"w{l}"]
            state[f"w{l}"] += eta * (state[f"p{l - 1}"].T @ delta[l])
            state[f"bias{l}"] += eta * delta[l].sum(axis=0)
        if spec.feedback == "bp":
            for l in range(1, L):
                state[f"B{l}"] = state[f"w{l + 1}"].T.copy()
    return StepRecord(y, mod, delta, spikes)


def run(spec: SpikingSpec, state: dict, images: np.ndarray, labels: np.ndarray, learn: bool = True,
        uniforms: list | None = None, rng: np.random.Generator | None = None, record: bool = False):
    """Show images[k] (batch × n_img × n_in) to stream k in order. Returns (y, records): y has shape
    steps × batch × n_out; records holds every StepRecord when `record` is set."""
    batch, n_img, _ = images.shape
    T = spec.steps_per_image
    eye = np.eye(spec.sizes[-1], dtype=images.dtype)
    ys, records = [], []
    for k in range(n_img * T):
        img = k // T
        if uniforms is None:
            us = [rng.random((batch, n)).astype(images.dtype) for n in spec.sizes[:-1]]
        else:
            us = [u[:, k] for u in uniforms]
        r = step(spec, state, images[:, img], eye[labels[:, img]], us, spec.eta if learn else 0.0)
        ys.append(r.y)
        if record:
            records.append(r)
    return np.stack(ys), records
