"""Is feedback alignment training the hidden layers? Angles between what the feedback weights send
and what backprop would send on the same state.

For hidden layer l the feedback synapses deliver the modulator mod_l = δ_src B_l. Backprop, on the
same PSPs and the same output error, would deliver mod*_l = δ*_{l+1} w_{l+1}ᵀ, where δ* is its own
δ, computed down from the output through the transposed forward weights (δ*_l = σ'(u_l) ⊙ mod*_l,
the model's own δ term). Both are recorded step by step on held-out images with learning off. The
angle is signed, in [0°, 180°]: 90° is no agreement, below 90° the modulator points the way backprop
would move the weights, above 90° the opposite way.
"""

from __future__ import annotations

import numpy as np

from spikefa.metrics import angle_deg, row_angles_deg
from spikefa.spiking import fast
from spikefa.spiking.codegen import compile_model
from spikefa.spiking.spec import SpikingSpec, is_stream_var

STREAMS = 10


def alignment(
    spec: SpikingSpec, state: dict, images: np.ndarray, labels: np.ndarray, seed: int = 0
) -> dict:
    """`angle_deg_mod{l}`: mean signed angle (degrees) between the modulator of hidden layer l and
    backprop's, over `STREAMS` streams showing `images` in turn from the PSPs of stream 0 of
    `state`; `angle_deg_wb{l}`: the signed angle between B_l and w_{l+1}ᵀ (feedback from the layer
    above only)."""
    k = min(STREAMS, len(images))
    m = len(images) // k
    one = {key: (v[0] if is_stream_var(key) and v.ndim == 2 else v) for key, v in state.items()}
    st = fast.batch_state(spec, one, k)
    _, records = fast.run(
        spec,
        st,
        images[: k * m].reshape(k, m, -1),
        labels[: k * m].reshape(k, m),
        learn=False,
        rng=np.random.default_rng(seed),
        record=True,
    )
    delta = compile_model(spec, "numpy", loops=False).hidden_delta
    L, angles = spec.n_layers, {l: [] for l in range(1, spec.n_layers)}
    for r in records:
        d = r.delta[L]  # the output error: the same for both rules
        for l in reversed(range(1, L)):
            ns = {"u": r.u[l], "mod": d @ st[f"w{l + 1}"].T, "delta": np.empty_like(r.u[l])}
            angles[l].append(row_angles_deg(r.mod[l], ns["mod"], folded=False))
            delta(ns)
            d = ns["delta"]
    out = {f"angle_deg_mod{l}": float(np.nanmean(np.concatenate(a))) for l, a in angles.items()}
    for l in range(1, L):
        if spec.feedback_source(l) == l + 1:
            out[f"angle_deg_wb{l}"] = angle_deg(st[f"B{l}"], st[f"w{l + 1}"].T, folded=False)
    return out
