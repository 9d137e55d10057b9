"""Is feedback alignment training the hidden layers? Angles between what the feedback weights send
and what backprop would send on the same state.

For hidden layer l the feedback synapses deliver the modulator mod_l = δ_src B_l; backprop would
deliver δ_{l+1} w_{l+1}ᵀ, computed from the same δ_{l+1} with the transposed forward weights. Both are
recorded step by step on held-out images with learning off; their angle, averaged over streams and
steps, falls below 90° only where the forward weights have come to agree with the feedback.
"""

from __future__ import annotations

import numpy as np

from spikefa.metrics import angle_deg, row_angles_deg
from spikefa.spiking import fast
from spikefa.spiking.spec import SpikingSpec, is_stream_var

STREAMS = 10


def alignment(spec: SpikingSpec, state: dict, images: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict:
    """`angle_deg_mod{l}`: mean angle (degrees) between the modulator of hidden layer l and backprop's,
    over `STREAMS` streams showing `images` in turn from the PSPs of stream 0 of `state`;
    `angle_deg_wb{l}`: the angle between B_l and w_{l+1}ᵀ (feedback from the layer above only)."""
    k = min(STREAMS, len(images))
    m = len(images) // k
    one = {key: (v[0] if is_stream_var(key) and v.ndim == 2 else v) for key, v in state.items()}
    st = fast.batch_state(spec, one, k)
    _, records = fast.run(spec, st, images[:k * m].reshape(k, m, -1), labels[:k * m].reshape(k, m), learn=False,
                          rng=np.random.default_rng(seed), record=True)
    out = {}
    for l in range(1, spec.n_layers):
        w_t = st[f"w{l + 1}"].T
        angles = np.concatenate([row_angles_deg(r.mod[l], r.delta[l + 1] @ w_t) for r in records])
        out[f"angle_deg_mod{l}"] = float(np.nanmean(angles))
    for l in range(1, spec.n_layers):
        if spec.feedback_source(l) == l + 1:
            out[f"angle_deg_wb{l}"] = angle_deg(st[f"B{l}"], st[f"w{l + 1}"].T)
    return out
