"""How large each hidden layer's δ is under FA, BP and DFA at the initial weights of the full Fig. 4
network (rms over every step of a few training images in a few streams), and the per-layer learning
rates (`eta_scale`, bottom to top) that would give BP and DFA the update sizes FA gets — a fair start
for comparing the three at FA's η.

    python scripts/fig4_delta_scales.py [--feedback-scale 0.5] [--data DIR]
"""
import argparse

import numpy as np

from spikefa.bench import FULL
from spikefa.data.datasets import load_mnist
from spikefa.spiking import fast
from spikefa.spiking.spec import SpikingSpec, initial_state

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--feedback-scale", type=float, default=0.5)
parser.add_argument("--data", default=None)
args = parser.parse_args()

streams, per_stream = 10, 4
data = load_mnist(args.data)
images = data.train_x[:streams * per_stream].reshape(streams, per_stream, -1)  # float32 in [0, 1]
labels = data.train_y[:streams * per_stream].reshape(streams, per_stream)

rms = {}
for mode in ("fa", "bp", "dfa"):
    spec = SpikingSpec(sizes=FULL, reading="tau", steps_per_image=10, eta=0.0,
                       feedback=mode, feedback_scale=args.feedback_scale)
    state = fast.batch_state(spec, initial_state(spec), streams)
    _, records = fast.run(spec, state, images, labels, learn=False, rng=np.random.default_rng(0), record=True)
    rms[mode] = [float(np.sqrt(np.mean([r.delta[l] ** 2 for r in records]))) for l in range(1, spec.n_layers + 1)]
    print(f"{mode:3s} rms δ per layer, bottom to top: " + " ".join(f"{v:.3g}" for v in rms[mode]))
for mode in ("bp", "dfa"):
    scale = [fa / other for fa, other in zip(rms["fa"], rms[mode])]
    print(f"eta_scale giving {mode} FA's update sizes: [" + ", ".join(f"{v:.3g}" for v in scale) + "]")
