"""Figure helpers in the paper's colours. Functions take an `ax` and return it."""

from __future__ import annotations

import sys

import matplotlib

if "matplotlib.pyplot" not in sys.modules:
    # no screen needed; a notebook (or script) that has chosen its backend keeps it, even when
    # spikefa draws its first figure after `%matplotlib inline`
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import ticker  # noqa: E402

COLOURS = {
    "shallow": "#b3b3b3",  # light grey
    "node_perturbation": "#555555",  # dark grey ("RL")
    "bp": "#000000",
    "fa": "#2ca02c",  # green
    "sparse_fa": "#98df8a",
    "bp4": "#d62cd6",  # magenta (4-layer BP, Fig. 3d)
    "fa4": "#1f5fd6",  # blue (4-layer FA, Fig. 3d)
}
LABELS = {
    "shallow": "shallow",
    "node_perturbation": "reinforcement (node pert.)",
    "bp": "backprop",
    "fa": "feedback alignment",
    "sparse_fa": "sparse FA",
}


def new_axes(figsize=(4.5, 3.2)):
    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def plot_curve(ax, x, y, algorithm: str, **kw):
    ax.plot(x, y, color=COLOURS.get(algorithm), label=LABELS.get(algorithm, algorithm), **kw)
    return ax


def nse_axes(ax, title: str, ylabel: str = "test NSE") -> None:
    """Log-log axes of a test error (NSE) over training examples, with a legend."""
    ax.set(xscale="log", yscale="log", xlabel="training examples", ylabel=ylabel, title=title)
    ax.legend(frameon=False, fontsize=8)


def plot_angle_band(ax, x, mean, sd, algorithm: str = "fa", n_sd: float = 2.0, label=None):
    """Window mean ± n_sd·SD of an angle (degrees), on the paper's 0–90° axis."""
    colour = COLOURS.get(algorithm)
    ax.fill_between(
        x,
        np.clip(mean - n_sd * sd, 0, 90),
        np.clip(mean + n_sd * sd, 0, 90),
        color=colour,
        alpha=0.25,
        linewidth=0,
    )
    ax.plot(x, mean, color=colour, label=label)
    ax.axhline(90, color="0.5", linestyle="--", linewidth=0.8)
    ax.set_ylim(0, 95)
    ax.set_yticks([0, 30, 60, 90])
    ax.set_ylabel("angle δ_FA vs δ_BP (°)")
    return ax


def replicate_points(ax, groups: dict, ylabel: str, log: bool = False):
    """Every replicate's final value (dots) and mean ± SD (bar; on a log axis cut at 10% of the
    mean) per group, coloured by algorithm;
    `groups` maps "point · algorithm" labels to (algorithm, values)."""
    for i, (_label, (algo, values)) in enumerate(groups.items()):
        v = np.asarray(values, float)
        jitter = np.linspace(-0.15, 0.15, len(v)) if len(v) > 1 else np.zeros(1)
        ax.plot(i + jitter, v, "o", color=COLOURS.get(algo, "C0"), alpha=0.5, markersize=3)
        sd = v.std(ddof=1) if len(v) > 1 else 0.0
        low = min(sd, 0.9 * v.mean()) if log else sd  # a log axis has no room below zero
        ax.errorbar(i + 0.3, v.mean(), yerr=[[low], [sd]], fmt="_", color="k", capsize=3)
    ax.set_xticks(range(len(groups)), list(groups), rotation=30, ha="right", fontsize=7)
    ax.set(ylabel=ylabel, yscale="log" if log else "linear")
    return ax


def receptive_fields(panels: dict, shape=(28, 28)):
    """One panel per entry: the input weights of up to 100 units (columns of a pre × post matrix)
    as image tiles on a 10×10 grid, grey scale per tile (white = strongly positive; Supp. Fig. 5);
    colour inputs (shape h × w × 3) are shown as the mean over channels."""
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9), squeeze=False)
    for ax, (title, W) in zip(axes[0], panels.items()):
        n = min(100, W.shape[1])
        tiles = np.ones((10 * (shape[0] + 1), 10 * (shape[1] + 1)))  # one blank line between tiles
        for k in range(n):
            w = W[:, k].reshape(shape)
            w = w.mean(axis=2) if w.ndim == 3 else w
            w = (w - w.min()) / (np.ptp(w) or 1.0)
            r, c = divmod(k, 10)
            tiles[
                r * (shape[0] + 1) : r * (shape[0] + 1) + shape[0],
                c * (shape[1] + 1) : c * (shape[1] + 1) + shape[1],
            ] = w
        ax.imshow(tiles, cmap="gray", interpolation="nearest")
        ax.set_title(LABELS.get(title, title), fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return fig


class PlainLogFormatter(ticker.LogFormatterSciNotation):
    """Log-axis labels as plain numbers (0.5, 2, 20) where they are short; powers of ten (10⁻⁶)
    beyond. Which ticks carry a label is matplotlib's choice, as with its own formatter."""

    def __call__(self, x, pos=None):
        label = super().__call__(x, pos)
        return f"{x:g}" if label and 1e-3 <= abs(x) < 1e5 else label


def _thousands(x, pos=None) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,g}"


def tidy(fig) -> None:
    """Ready a figure for print: plain tick labels on log axes (never 6×10⁰), thousands separators
    on linear axes that count (1,000 and up), and no clipped lines at a frame set by hand. Axes
    given their own tick formatter keep it."""
    for ax in fig.axes:
        for axis, limits in ((ax.xaxis, ax.get_xlim), (ax.yaxis, ax.get_ylim)):
            if (
                axis.get_scale() == "log"
                and type(axis.get_major_formatter()) is ticker.LogFormatterSciNotation
            ):
                axis.set_major_formatter(PlainLogFormatter())
                axis.set_minor_formatter(
                    PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5))
                )
            elif (
                axis.get_scale() == "linear"
                and type(axis.get_major_formatter()) is ticker.ScalarFormatter
                and max(abs(v) for v in limits()) >= 1000
            ):
                axis.set_major_formatter(ticker.FuncFormatter(_thousands))
                if (
                    axis is ax.xaxis and max(abs(v) for v in limits()) >= 100_000
                ):  # long labels: fewer ticks
                    axis.set_major_locator(ticker.MaxNLocator(nbins=4))


def close(fig) -> None:
    plt.close(fig)
