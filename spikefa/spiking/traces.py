"""Record and plot what Fig. 4 shows: a hidden neuron's PSP and its modulatory signal, together.

`record_traces` runs the Brian2 network with given weights on a few images (learning off unless
asked) and returns plain arrays; `plot_traces` draws PSP and modulator side by side for each
recorded neuron, image onsets marked, with a spike raster and the output rates below;
`fig4_figure` lays out the paper's Fig. 4 from a checkpoint: early and late traces with rasters and
the validation-error curve of its training run.
"""

from __future__ import annotations

import numpy as np

from spikefa import plotting
from spikefa.errors import SpikefaError
from spikefa.spiking.brian import BrianNetwork
from spikefa.spiking.codegen.eligibility import split_rule
from spikefa.spiking.spec import SpikingSpec
from spikefa.spiking.training import single_stream


def record_traces(
    spec: SpikingSpec,
    state: dict,
    images: np.ndarray,
    labels: np.ndarray,
    neurons: list[int],
    device: str = "cpp_standalone",
    learn: bool = False,
    eta: float | None = None,
    pre: list[int] = (),
) -> dict:
    """Arrays for `traces.npz`: t and image_onsets in ms, psp / modulator / delta as
    recorded neurons × steps; `neurons` holds (layer, index) pairs, one row per recorded neuron.
    With `learn`, plasticity runs at `eta` (default spec.eta; see `spec.eta_in_force`). With `pre`
    (a rule that declares eligibility traces), also `eligibility`: traces × recorded neurons ×
    `pre` × steps, the trace of each recorded neuron's synapse from each presynaptic unit in `pre`,
    with `eligibility_names` (the rule's trace names) and `pre`."""
    L = spec.n_layers
    _check_units(spec, neurons, pre)
    net = BrianNetwork(
        spec,
        len(images),
        device,
        trace_neurons={l: neurons for l in range(1, L)},
        record_spikes=True,
        trace_pre=list(pre),
    )
    _, rec = net.run(single_stream(state), images, labels, learn=learn, eta=eta)
    steps = len(images) * spec.steps_per_image
    pairs = np.array([(l, n) for l in range(1, L) for n in neurons], dtype=np.int64)
    stack = {
        k: np.concatenate([rec.traces[l][k] for l in range(1, L)]) for k in ("u", "mod", "delta")
    }
    spike_steps = np.concatenate([rec.spikes[l][0] for l in range(L)])
    spike_layer = np.concatenate([np.full(len(rec.spikes[l][0]), l) for l in range(L)])
    spike_index = np.concatenate([rec.spikes[l][1] for l in range(L)])
    return {
        "t": np.arange(steps, dtype=float),
        "psp": stack["u"],
        "modulator": stack["mod"],
        "delta": stack["delta"],
        "neurons": pairs,
        "image_onsets": np.arange(len(images)) * float(spec.steps_per_image),
        "labels": np.asarray(labels),
        "y": rec.y,
        "error": rec.error,
        "spike_t": spike_steps.astype(float),
        "spike_layer": spike_layer,
        "spike_index": spike_index,
        **(_eligibility(rec, net.trace_names, L, list(pre)) if pre else {}),
    }


def _check_units(spec: SpikingSpec, neurons: list[int], pre: list[int]) -> None:
    """Recorded units that every hidden layer has, presynaptic units that every layer below one
    has, and a rule with eligibility traces where `pre` asks for them."""
    L = spec.n_layers
    bad = [n for n in neurons if not 0 <= n < min(spec.sizes[1:L])]
    if bad:
        raise SpikefaError(
            f"neurons {bad} do not exist in every hidden layer (sizes {list(spec.sizes)})"
        )
    bad = [i for i in pre if not 0 <= i < min(spec.sizes[: L - 1])]
    if bad:
        raise SpikefaError(
            f"presynaptic units {bad} do not exist in every layer below a hidden one "
            f"(sizes {list(spec.sizes)})"
        )
    if pre and not split_rule(spec.plasticity)[0]:
        raise SpikefaError(
            "only a plasticity rule that declares an eligibility trace (dX/dt = ...) has traces "
            "to record from presynaptic units"
        )


def _eligibility(rec, names: list[str], L: int, pre: list[int]) -> dict:
    """The recorded eligibility traces as traces × recorded neurons × pre × steps (the monitors
    hold them neuron-major, one row per synapse)."""
    stacked = np.stack(
        [np.concatenate([rec.traces[l]["eligibility"][x] for l in range(1, L)]) for x in names]
    )
    return {
        "eligibility": stacked.reshape(len(names), -1, len(pre), stacked.shape[-1]),
        "eligibility_names": np.array(names),
        "pre": np.array(pre, dtype=np.int64),
    }


def plot_traces(tr: dict, title: str = "", max_neurons: int = 4):
    """PSP (left) and modulator (right) of up to `max_neurons` recorded neurons, a spike raster of
    a subset of every layer's units and the output rates below, image onsets marked."""
    import matplotlib.pyplot as plt

    k = min(max_neurons, len(tr["neurons"]))
    fig = plt.figure(figsize=(9, 1.4 * k + 4.6))
    grid = fig.add_gridspec(k + 2, 2, height_ratios=[1] * k + [2.2, 1.3])
    t = tr["t"]
    first = fig.add_subplot(grid[0, 0])
    axes = []
    for r in range(k):
        layer, idx = tr["neurons"][r]
        psp = first if r == 0 else fig.add_subplot(grid[r, 0], sharex=first)
        psp.plot(t, tr["psp"][r], color="k", linewidth=0.9)
        psp.set_ylabel(f"h{layer}[{idx}]\nPSP u")
        mod = fig.add_subplot(grid[r, 1], sharex=first)
        mod.plot(t, tr["modulator"][r], color=plotting.COLOURS["fa"], linewidth=0.9)
        mod.axhline(0, color="0.7", linewidth=0.5)
        mod.set_ylabel("modulator (Bδ)")
        axes += [psp, mod]
    raster = draw_raster(fig.add_subplot(grid[k, :], sharex=first), tr)
    out = draw_outputs(fig.add_subplot(grid[k + 1, :], sharex=first), tr)
    out.set_xlabel("time (ms = steps)")
    for ax in axes + [raster, out]:
        for onset in tr["image_onsets"]:
            ax.axvline(onset, color="0.6", linestyle=":", linewidth=0.7)
        if ax is not out:
            ax.tick_params(labelbottom=False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def raster_units(tr: dict, layer: int, n: int = 40) -> np.ndarray:
    """Up to `n` units of `layer` for a raster, evenly spread over those that spiked (input pixels
    outside the digit never do); all of them in a layer with fewer units."""
    pick = tr["spike_layer"] == layer
    active = np.unique(tr["spike_index"][pick])
    return (
        active[np.linspace(0, len(active) - 1, n).round().astype(int)]
        if len(active) > n
        else active
    )


def draw_raster(ax, tr: dict, n: int = 25):
    """Each spike of `n` units per layer as a short tick in that unit's row, layers stacked
    bottom-up from the input, so that single spikes and silent steps stay visible."""
    layers = int(tr["spike_layer"].max(initial=0)) + 1
    names = ["input"] + [f"h{l}" for l in range(1, layers)]
    gap = 4
    for l in range(layers):
        units = raster_units(tr, l, n)
        pick = (tr["spike_layer"] == l) & np.isin(tr["spike_index"], units)
        row = np.searchsorted(units, tr["spike_index"][pick]) + l * (n + gap)
        ax.vlines(tr["spike_t"][pick], row - 0.35, row + 0.35, color="k", linewidth=0.8)
        if l:
            ax.axhline(l * (n + gap) - gap / 2 - 0.5, color="0.8", linewidth=0.5)
    ax.set_yticks([l * (n + gap) + (n - 1) / 2 for l in range(layers)], names, fontsize=7)
    ax.set_ylim(-1, layers * (n + gap) - gap)
    ax.set_ylabel(f"spikes ({n} active\nunits per layer)")
    return ax


def draw_outputs(ax, tr: dict, legend: bool = True):
    """The output rates, one colour per class, with the frame a little beyond [0, 1] so that a rate
    at 0 or 1 stays visible; each image's label above its onset, in its class's colour."""
    colours = class_colours(tr["y"].shape[1])
    for c in range(tr["y"].shape[1]):
        ax.plot(tr["t"], tr["y"][:, c], color=colours[c], linewidth=0.8, label=str(c))
    ax.set(ylabel="output rate y", ylim=(-0.04, 1.12))
    for onset, lab in zip(tr["image_onsets"], tr["labels"]):
        ax.text(onset + 0.5, 1.04, f"label {lab}", fontsize=7, color=colours[int(lab)], va="bottom")
    if legend:
        ax.legend(
            title="class",
            fontsize=6,
            title_fontsize=7,
            ncol=2,
            frameon=False,
            loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
        )
    return ax


def class_colours(n: int) -> list:
    import matplotlib.pyplot as plt

    return [plt.get_cmap("tab10" if n <= 10 else "tab20")(i % 20) for i in range(n)]


def fig4_figure(
    spec: SpikingSpec,
    trained: dict,
    meta: dict,
    images: np.ndarray,
    labels: np.ndarray,
    neuron: int = 0,
    device: str = "cpp_standalone",
):
    """PSP and modulator of first-layer unit `neuron` early in training (the seed's initial weights)
    and late (`trained`), recorded with plasticity on, above spike rasters (60 units of each layer)
    and output rates, beside the validation-error curve stored in the checkpoint's `meta`. Each
    stage learns at the rate the run had then (its start, and the checkpoint)."""
    import matplotlib.pyplot as plt

    from spikefa.spiking.spec import eta_in_force, initial_state

    stages = {
        "early (initial weights)": (initial_state(spec), eta_in_force(spec, meta, at_start=True)),
        f"late ({meta.get('images_seen', 0):,} training images)": (
            trained,
            eta_in_force(spec, meta),
        ),
    }
    fig, axes = plt.subplots(3, 3, figsize=(12, 7), gridspec_kw={"width_ratios": [1, 1, 0.8]})
    for col, (title, (state, eta)) in enumerate(stages.items()):
        tr = record_traces(spec, state, images, labels, [neuron], device, learn=True, eta=eta)
        ax = axes[0, col]
        ax.plot(tr["t"], tr["psp"][0], color="k", linewidth=0.9, label="PSP u")
        ax.set(title=title, ylabel=f"h1[{neuron}] PSP")
        ax2 = ax.twinx()
        ax2.plot(tr["t"], tr["modulator"][0], color=plotting.COLOURS["fa"], linewidth=0.9)
        ax2.set_ylabel("modulator Bδ", color=plotting.COLOURS["fa"])
        raster = draw_raster(axes[1, col], tr)
        out = draw_outputs(axes[2, col], tr, legend=False)
        out.set_xlabel("time (ms = steps)")
        for a in (ax, raster, out):
            for onset in tr["image_onsets"]:
                a.axvline(onset, color="0.6", linestyle=":", linewidth=0.7)
    curve = np.array(meta.get("curve", []))
    gs = axes[0, 2].get_gridspec()
    for a in axes[:, 2]:
        a.remove()
    err = fig.add_subplot(gs[:, 2])
    if len(curve):  # the run's measurements on its held-out validation images
        per_epoch = (meta.get("split") or {}).get("train_images", 60000)
        err.plot(
            curve[:, 0] / per_epoch,
            100 * curve[:, 1],
            "o-",
            color=plotting.COLOURS["fa"],
            markersize=3,
        )
    err.set(yscale="log", xlabel="epochs", ylabel="validation error (%)", title="validation error")
    fig.suptitle(f"Fig. 4 — {spec.describe()}", fontsize=9)
    fig.tight_layout()
    plotting.tidy(fig)
    return fig


def write_traces(
    network, out, steps, neurons, first_image, device, learn, data, pre=(), progress=True
):
    """What `spikefa traces` and `Network.traces` do: record `steps` steps (0: five images) of
    `network` (a loaded checkpoint: spec, state, meta and path) on test images from `first_image`
    on, and write `traces.npz` and `traces.png` into `out` (default results/traces-<timestamp>/);
    `pre`: see `record_traces`. Returns the folder's path; `progress` prints what happens on
    stderr."""
    import sys
    import time
    from pathlib import Path

    from spikefa.results import ResultsDir
    from spikefa.spiking.spec import eta_in_force

    def say(text):
        if progress:
            print(f"spikefa: {text}", file=sys.stderr, flush=True)

    spec, meta = network.spec, network.meta
    images, labels = _test_images(network, steps or 5 * spec.steps_per_image, first_image, data)
    out = ResultsDir(out or Path("results") / f"traces-{time.strftime('%Y%m%d-%H%M%S')}")
    start = time.perf_counter()
    compiled = " (code generation and compilation come first: about a minute)"
    say(
        f"recording {len(images) * spec.steps_per_image:,} steps ({len(images)} test images) in "
        f"Brian2 on {device}" + (compiled if device.endswith("standalone") else "")
    )
    try:
        eta = eta_in_force(spec, meta)
        tr = record_traces(
            spec, network.state, images, labels, list(neurons), device, learn, eta, list(pre)
        )
    except SpikefaError:
        out.discard(keep_if_more_than=())
        raise
    say(f"recorded in {time.perf_counter() - start:.0f} s; drawing traces.png")
    out.write_npz("traces.npz", **tr)
    seen = f", after {meta['images_seen']:,} training images" if "images_seen" in meta else ""
    fig = plot_traces(tr, title=f"{Path(network.path).name}: {spec.describe()}{seen}")
    out.savefig(fig, "traces.png", folder=".")
    plotting.close(fig)
    return out.path


def _test_images(network, steps: int, first: int, data):
    """The test images (and labels) that `steps` steps show, from image `first` on."""
    from spikefa.data import load_images
    from spikefa.spiking.scoring import check_fits

    spec = network.spec
    images = load_images(network.meta.get("dataset", "mnist"), data)
    check_fits(spec, images, network.path)
    n = -(-steps // spec.steps_per_image)
    if not 0 <= first <= len(images.test_x) - n:
        raise SpikefaError(f"--first-image must be in 0..{len(images.test_x) - n}")
    return images.test_x[first : first + n].astype(spec.dtype), images.test_y[first : first + n]
