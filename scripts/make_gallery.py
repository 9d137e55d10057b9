"""Regenerate the README's figure gallery (docs/*.png) from real runs.

    python scripts/make_gallery.py                      # runs fig2_linear, fig3_deep, fig5_quadratic, …
    python scripts/make_gallery.py --fig3 results/DIR   # reuse a finished fig3_mnist run (else one run, ~15 min)

Each figure comes from a fresh `spikefa run` of the shipped config (or the run named), the Fig. 4
panel from the shipped checkpoint `models/fig4_spiking_fa.npz` recorded by the Brian2 model.
"""

import argparse
import shutil
from pathlib import Path

from spikefa import plotting, runner
from spikefa.config import MODELS_DIR
from spikefa.data import load_images
from spikefa.rate.theory import plot_flow_field
from spikefa.spiking.spec import load_checkpoint
from spikefa.spiking.traces import fig4_figure

DOCS = Path(__file__).resolve().parent.parent / "docs"


def copy(run: Path, figure: str, name: str) -> None:
    shutil.copyfile(run / "figures" / figure, DOCS / name)
    print(f"docs/{name} ← {run / 'figures' / figure}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fig3", help="a finished fig3_mnist results folder (default: run one seed now)")
    ap.add_argument("--data", help="data folder (default $SPIKEFA_DATA, else ~/.cache/spikefa)")
    ap.add_argument("--device", default="cpp_standalone", help="Brian2 device for the Fig. 4 traces")
    args = ap.parse_args()
    fig2 = runner.run("fig2_linear", data=args.data)
    copy(fig2, "nse.png", "fig2_nse.png")
    copy(fig2, "angle.png", "fig2_angle.png")
    fig3 = Path(args.fig3) if args.fig3 else runner.run("fig3_mnist", ["runs=1"], data=args.data)
    copy(fig3, "test_error.png", "fig3_mnist_error.png")
    copy(fig3, "angle.png", "fig3_mnist_angle.png")
    copy(fig3, "receptive_fields.png", "fig3_receptive_fields.png")
    copy(runner.run("fig3_deep", data=args.data), "nse.png", "fig3_deep_nse.png")
    copy(runner.run("fig5_quadratic", data=args.data), "alignment.png", "fig5_alignment.png")
    spec, state, meta = load_checkpoint(MODELS_DIR / "fig4_spiking_fa.npz")
    data = load_images("mnist", args.data)
    fig = fig4_figure(spec, state, meta, data.test_x[:4].astype(spec.dtype), data.test_y[:4], 0, args.device)
    fig.savefig(DOCS / "fig4.png", dpi=110)
    fig, ax = plotting.new_axes(figsize=(4.2, 4.0))
    plot_flow_field(ax)
    fig.tight_layout()
    fig.savefig(DOCS / "flow_field.png", dpi=130)
    print("docs/fig4.png, docs/flow_field.png")


if __name__ == "__main__":
    main()
