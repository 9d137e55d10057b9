"""Fig. 4 from a trained checkpoint (`spikefa.spiking.traces.fig4_figure`): a hidden neuron's PSP
and modulator evolving together early in training (the seed's initial weights) and late (the
checkpoint), spike rasters, and the test-error curve stored in the checkpoint. The traces are
recorded by the Brian2 model with plasticity on.

    python scripts/fig4_figure.py CHECKPOINT docs/fig4.png [--device cpp_standalone]   # a .npz or a shipped network's name
"""

import argparse

from spikefa.data import load_images
from spikefa.shipped import checkpoint_path
from spikefa.spiking.spec import load_checkpoint
from spikefa.spiking.traces import fig4_figure


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", help="a checkpoint .npz, or the name of a shipped network")
    ap.add_argument("out")
    ap.add_argument("--device", default="cpp_standalone")
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--neuron", type=int, default=0, help="hidden unit shown (in layer 1)")
    ap.add_argument("--data")
    args = ap.parse_args()
    spec, trained, meta = load_checkpoint(checkpoint_path(args.checkpoint))
    data = load_images(meta.get("dataset", "mnist"), args.data)
    images, labels = data.test_x[: args.images].astype(spec.dtype), data.test_y[: args.images]
    fig = fig4_figure(spec, trained, meta, images, labels, args.neuron, args.device)
    fig.savefig(args.out, dpi=110)
    print(args.out)


if __name__ == "__main__":
    main()
