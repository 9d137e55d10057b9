"""Dale's law: every unit is excitatory or inhibitory, and all its outgoing synapses share its sign.

The signs are drawn from the seed; initial weights take them with magnitudes that keep the expected
input zero; `equations.DALE` keeps them while the weights learn, by clipping or reflection
(`keep`)."""

from __future__ import annotations

import math

import numpy as np

from spikefa.seeds import stream


def dale_signs(spec) -> list[np.ndarray] | None:
    """Under Dale's law, the sign of every unit's outgoing synapses, per layer 0 … L: +1
    (excitatory, a fraction `dale["excitatory"]` of each layer, rounded) or −1 (inhibitory), drawn
    from the seed (stream "dale"); None when the law is off.

    Parameters
    ----------
    spec : SpikingSpec
        The network.

    Returns
    -------
    list of numpy.ndarray or None
        One array of ±1 per layer, in the spec's dtype.
    """
    if not spec.dale:
        return None
    rng, f = stream(spec.seed, "dale"), spec.dale["excitatory"]
    return [
        np.where(rng.permutation(n) < round(f * n), 1.0, -1.0).astype(spec.dtype)
        for n in spec.sizes
    ]


def dale_keep(spec) -> str:
    """How the weights keep their sign under Dale's law: "clip" (default) or "reflect"."""
    return spec.dale.get("keep", "clip")


def signed(w: np.ndarray, signs: np.ndarray, spec) -> np.ndarray:
    """|w| with the sign of its presynaptic unit (a row), magnitudes scaled so that the expected
    input stays zero and its variance that of the unsigned draw: excitatory by √((1−f)/f),
    inhibitory by √(f/(1−f)) (by 1 where a layer has one kind only)."""
    f = spec.dale["excitatory"]
    e, i = (math.sqrt((1 - f) / f), math.sqrt(f / (1 - f))) if 0 < f < 1 else (1.0, 1.0)
    rows = np.where(signs > 0, e, -i)
    return (np.abs(w) * rows[:, None]).astype(w.dtype)
