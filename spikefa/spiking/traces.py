"""Record and plot what Fig. 4 shows: a hidden neuron's PSP and its modulatory signal, together.

`record_traces` runs the Brian2 network with given weights on a few images (learning off unless
asked) and returns plain arrays; `plot_traces` draws PSP and modulator side by side for each
recorded neuron, image onsets marked, with a spike raster and the output rates below;
`fig4_figure` lays out the paper's Fig. 4 from a checkpoint: early and late traces with rasters and
the test-error curve.
"""

from __future__ import annotations

import numpy as np

from spikefa import plotting
from spikefa.errors import SpikefaError
from spikefa.spiking.brian import BrianNetwork
from spikefa.spiking.spec import SpikingSpec
from spikefa.spiking.training import single_stream


def record_traces(spec: SpikingSpec, state: dict, images: np.ndarray, labels: np.ndarray,
                  neurons: list[int], device: str = "cpp_standalone", learn: bool = False,
                  eta: float | None = None) -> dict:
    """Arrays for `traces.npz`: t and image_onsets in ms, psp / modulator / delta as
    recorded neurons × steps; `neurons` holds (layer, index) pairs, one row per recorded neuron.
    With `learn`, plasticity runs at `eta` (default spec.eta; see `spec.eta_in_force`)."""
    L = spec.n_layers
    bad = [n for n in neurons if not 0 <= n < min(spec.sizes[1:L])]
    if bad:
        raise SpikefaError(f"neurons {bad} do not exist in every hidden layer (sizes {list(spec.sizes)})")
    net = BrianNetwork(spec, len(images), device, trace_neurons={l: neurons for l in range(1, L)}, record_spikes=True)
    _, rec = net.run(single_stream(state), images, labels, learn=learn, eta=eta)
    steps = len(images) * spec.steps_per_image
    pairs = np.array([(l, n) for l in range(1, L) for n in neurons], dtype=np.int64)
    stack = {k: np.concatenate([rec.traces[l][k] for l in range(1, L)]) for k in ("u", "mod", "delta")}
    spike_steps = np.concatenate([rec.spikes[l][0] for l in range(L)])
    spike_layer = np.concatenate([np.full(len(rec.spikes[l][0]), l) for l in range(L)])
    spike_index = np.concatenate([rec.spikes[l][1] for l in range(L)])
    return {"t": np.arange(steps, dtype=float), "psp": stack["u"], "modulator": stack["mod"], "delta": stack["delta"],
            "neurons": pairs, "image_onsets": np.arange(len(images)) * float(spec.steps_per_image),
            "labels": np.asarray(labels), "y": rec.y, "error": rec.error,
            "spike_t": spike_steps.astype(float), "spike_layer": spike_layer, "spike_index": spike_index}


def plot_traces(tr: dict, title: str = "", max_neurons: int = 4):
    """PSP (left) and modulator (right) of up to `max_neurons` recorded neurons, a raster and the output rates."""
    import matplotlib.pyplot as plt

    k = min(max_neurons, len(tr["neurons"]))
    fig, axes = plt.subplots(k + 2, 2, figsize=(9, 1.5 * (k + 2)), sharex=True, squeeze=False)
    t = tr["t"]
    for r in range(k):
        layer, idx = tr["neurons"][r]
        axes[r, 0].plot(t, tr["psp"][r], color="k", linewidth=0.9)
        axes[r, 0].set_ylabel(f"h{layer}[{idx}]\nPSP u")
        axes[r, 1].plot(t, tr["modulator"][r], color=plotting.COLOURS["fa"], linewidth=0.9)
        axes[r, 1].axhline(0, color="0.7", linewidth=0.5)
        axes[r, 1].set_ylabel("modulator (Bδ)")
    raster = fig.add_subplot(k + 2, 1, k + 1, sharex=axes[0, 0])
    for ax in axes[k]:
        ax.remove()
    layers = tr["spike_layer"]
    offset = np.zeros(layers.max() + 1 if len(layers) else 1, dtype=int)
    for l in range(len(offset)):
        offset[l] = 0 if l == 0 else offset[l - 1] + int(tr["spike_index"][layers == l - 1].max(initial=0)) + 1
    raster.plot(tr["spike_t"], tr["spike_index"] + offset[layers], ",k")
    raster.set_ylabel("neuron\n(input→h3)")
    for ax in axes[k + 1]:
        ax.remove()
    out = fig.add_subplot(k + 2, 1, k + 2, sharex=axes[0, 0])
    out.plot(t, tr["y"], linewidth=0.8)
    out.set(ylabel="output rate y", xlabel="time (ms = steps)", ylim=(0, 1))
    for ax in list(axes[:k].ravel()) + [raster, out]:
        for onset in tr["image_onsets"]:
            ax.axvline(onset, color="0.6", linestyle=":", linewidth=0.7)
    for onset, lab in zip(tr["image_onsets"], tr["labels"]):
        out.text(onset + 0.5, 0.9, str(lab), fontsize=7, color="0.3")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def fig4_figure(spec: SpikingSpec, trained: dict, meta: dict, images: np.ndarray, labels: np.ndarray,
                neuron: int = 0, device: str = "cpp_standalone"):
    """PSP and modulator of first-layer unit `neuron` early in training (the seed's initial weights)
    and late (`trained`), recorded with plasticity on, above spike rasters (60 units of each layer)
    and output rates, beside the test-error curve stored in the checkpoint's `meta`. Each stage
    learns at the rate the run had then (its start, and the checkpoint)."""
    import matplotlib.pyplot as plt

    from spikefa.spiking.spec import eta_in_force, initial_state

    stages = {"early (initial weights)": (initial_state(spec), eta_in_force(spec, meta, at_start=True)),
              f"late ({meta.get('images_seen', '?')} training images)": (trained, eta_in_force(spec, meta))}
    fig, axes = plt.subplots(3, 3, figsize=(12, 7), gridspec_kw={"width_ratios": [1, 1, 0.8]})
    for col, (title, (state, eta)) in enumerate(stages.items()):
        tr = record_traces(spec, state, images, labels, [neuron], device, learn=True, eta=eta)
        ax = axes[0, col]
        ax.plot(tr["t"], tr["psp"][0], color="k", linewidth=0.9, label="PSP u")
        ax.set(title=title, ylabel=f"h1[{neuron}] PSP")
        ax2 = ax.twinx()
        ax2.plot(tr["t"], tr["modulator"][0], color=plotting.COLOURS["fa"], linewidth=0.9)
        ax2.set_ylabel("modulator Bδ", color=plotting.COLOURS["fa"])
        raster = axes[1, col]
        for l in range(spec.n_layers):
            pick = (tr["spike_layer"] == l) & (tr["spike_index"] < 60)
            raster.plot(tr["spike_t"][pick], tr["spike_index"][pick] + 70 * l, "|", color="k", markersize=1.5)
        raster.set(ylabel="units (input, h1, h2, h3)", yticks=[])
        out = axes[2, col]
        out.plot(tr["t"], tr["y"], linewidth=0.8)
        out.set(ylabel="output rate", xlabel="time (ms = steps)", ylim=(0, 1))
        for a in (ax, raster, out):
            for onset in tr["image_onsets"]:
                a.axvline(onset, color="0.6", linestyle=":", linewidth=0.7)
    curve = np.array(meta.get("curve", []))
    gs = axes[0, 2].get_gridspec()
    for a in axes[:, 2]:
        a.remove()
    err = fig.add_subplot(gs[:, 2])
    if len(curve):
        err.plot(curve[:, 0] / 60000, 100 * curve[:, 1], "o-", color=plotting.COLOURS["fa"], markersize=3)
    err.set(yscale="log", xlabel="epochs", ylabel="test error (%)", title="test error")
    fig.suptitle(f"Fig. 4 — {spec.describe()}", fontsize=9)
    fig.tight_layout()
    return fig
