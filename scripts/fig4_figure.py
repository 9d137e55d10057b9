"""Fig. 4 from a trained checkpoint: a hidden neuron's PSP and modulator evolving together early in
training (the seed's initial weights) and late (the checkpoint), spike rasters, and the test-error
curve stored in the checkpoint. The traces are recorded by the Brian2 model with plasticity on.

    python scripts/fig4_figure.py models/fig4_spiking_fa.npz docs/fig4.png [--device cpp_standalone]
"""

import argparse

import matplotlib.pyplot as plt
import numpy as np

from spikefa import plotting
from spikefa.data import load_images
from spikefa.spiking.spec import initial_state, load_checkpoint
from spikefa.spiking.traces import record_traces


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("out")
    ap.add_argument("--device", default="cpp_standalone")
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--neuron", type=int, default=0, help="hidden unit shown (in layer 1)")
    ap.add_argument("--data")
    args = ap.parse_args()
    spec, trained, meta = load_checkpoint(args.checkpoint)
    data = load_images(meta.get("dataset", "mnist"), args.data)
    images, labels = data.test_x[:args.images].astype(spec.dtype), data.test_y[:args.images]
    stages = {"early (initial weights)": initial_state(spec),
              f"late ({meta.get('images_seen', '?')} training images)": trained}
    fig, axes = plt.subplots(3, 3, figsize=(12, 7), gridspec_kw={"width_ratios": [1, 1, 0.8]})
    for col, (title, state) in enumerate(stages.items()):
        tr = record_traces(spec, state, images, labels, [args.neuron], args.device, learn=True)
        ax = axes[0, col]
        ax.plot(tr["t"], tr["psp"][0], color="k", linewidth=0.9, label="PSP u")
        ax.set(title=title, ylabel=f"h1[{args.neuron}] PSP")
        ax2 = ax.twinx()
        ax2.plot(tr["t"], tr["modulator"][0], color=plotting.COLOURS["fa"], linewidth=0.9)
        ax2.set_ylabel("modulator Bδ", color=plotting.COLOURS["fa"])
        raster = axes[1, col]
        for l in range(spec.n_layers):
            pick = (tr["spike_layer"] == l) & (tr["spike_index"] < 60)  # 60 units of each layer
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
    fig.savefig(args.out, dpi=110)
    print(args.out)


if __name__ == "__main__":
    main()
