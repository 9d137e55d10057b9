"""Regenerate the README's figure gallery (docs/*.png) from real runs.

    python scripts/make_gallery.py                      # runs fig2_linear, fig3_mnist (1 seed), fig5_quadratic
    python scripts/make_gallery.py --fig3 DIR [DIR …]   # reuse finished fig3_mnist runs (else one seed, ~15 min)

Each figure comes from a fresh `spikefa run` of the shipped config (or the run named), the Fig. 4
panel from a trained spiking network (`--fig4`: a shipped network's name or a checkpoint file)
recorded by the Brian2 model.
"""

import argparse
import csv
import shutil
from pathlib import Path

from spikefa import plotting, runner
from spikefa.data import load_images
from spikefa.rate.theory import plot_flow_field
from spikefa.shipped import checkpoint_path
from spikefa.spiking.spec import load_checkpoint
from spikefa.spiking.traces import fig4_figure

DOCS = Path(__file__).resolve().parent.parent / "docs"
FIG4 = "fig4_paper_fa"  # the shipped network drawn by default


def copy(run: Path, figure: str, name: str) -> None:
    shutil.copyfile(run / "figures" / figure, DOCS / name)
    print(f"docs/{name} ← {run / 'figures' / figure}")


def mnist_curves(runs: list[Path]):
    """Mean validation error over the runs of each rule, from the metrics.csv of fig3_mnist runs."""
    fig, ax = plotting.new_axes()
    for run in runs:
        rows = list(csv.DictReader(open(run / "metrics.csv")))
        for algo in dict.fromkeys(r["algorithm"] for r in rows):
            by_epoch = {}
            for r in rows:
                if r["algorithm"] == algo:
                    by_epoch.setdefault(float(r["epoch"]), []).append(
                        100 * float(r["validation_error"])
                    )
            epochs = sorted(e for e in by_epoch if e > 0)
            plotting.plot_curve(
                ax, epochs, [sum(by_epoch[e]) / len(by_epoch[e]) for e in epochs], algo
            )
    ax.set(
        yscale="log",
        xlabel="epoch",
        ylabel="validation error (%)",
        title="MNIST, 784-1000-10 (mean of runs)",
    )
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    plotting.tidy(fig)
    return fig


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--fig3", nargs="+", help="finished fig3_mnist results folders (default: run one seed now)"
    )
    ap.add_argument("--data", help="data folder (default $SPIKEFA_DATA, else ~/.cache/spikefa)")
    ap.add_argument(
        "--fig4",
        default=FIG4,
        help=f"the network of the Fig. 4 panel: a shipped name or a checkpoint .npz (default {FIG4})",
    )
    ap.add_argument(
        "--device", default="cpp_standalone", help="Brian2 device for the Fig. 4 traces"
    )
    args = ap.parse_args()
    fig2 = runner.run("fig2_linear", data=args.data)
    copy(fig2, "nse.png", "fig2_nse.png")
    copy(fig2, "angle.png", "fig2_angle.png")
    fig3 = (
        [Path(d) for d in args.fig3]
        if args.fig3
        else [runner.run("fig3_mnist", ["runs=1"], data=args.data)]
    )
    mnist_curves(fig3).savefig(DOCS / "fig3_mnist_error.png", dpi=130)
    with_fa = next(d for d in fig3 if (d / "figures" / "angle.png").exists())
    copy(with_fa, "angle.png", "fig3_mnist_angle.png")
    copy(with_fa, "receptive_fields.png", "fig3_receptive_fields.png")
    copy(runner.run("fig5_quadratic", data=args.data), "alignment.png", "fig5_alignment.png")
    spec, state, meta = load_checkpoint(checkpoint_path(args.fig4))
    data = load_images("mnist", args.data)
    fig = fig4_figure(
        spec, state, meta, data.test_x[:4].astype(spec.dtype), data.test_y[:4], 0, args.device
    )
    fig.savefig(DOCS / "fig4.png", dpi=110)
    fig, ax = plotting.new_axes(figsize=(4.2, 4.0))
    plot_flow_field(ax)
    fig.tight_layout()
    fig.savefig(DOCS / "flow_field.png", dpi=130)
    print("docs/fig4.png, docs/flow_field.png")


if __name__ == "__main__":
    main()
