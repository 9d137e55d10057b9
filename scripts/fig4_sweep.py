"""Short training runs of the full spiking network for choosing its settings (see the docs, "How the shipped networks were trained").

Each setting trains 784-1500-1500-1500-10 (reading "tau", 10 steps per image unless given) on the
first `--images` of one fixed shuffle of the 60,000 training images with the fast engine, and
prints the test error on the first 2,000 test images after every `--every` images. A setting is a
JSON object of SpikingSpec fields.

    python scripts/fig4_sweep.py --images 60000 '{"eta": 1e-3, "feedback_scale": 1.0}' ...
    python scripts/fig4_sweep.py --mean-field '{"eta": 1e-3}'   # spikes replaced by their probabilities

`--mean-field` is a diagnostic, not a model: every spike is replaced by its probability (input:
the pixel, hidden: σ(u)), which tells learning limits from spike noise.
"""

import argparse
import json
import time

import numpy as np

from spikefa.data import load_images
from spikefa.spiking import fast
from spikefa.spiking.spec import SpikingSpec, initial_state
from spikefa.spiking.training import FastRunner, evaluate


def use_mean_field():
    """Make the CPU backend pass probabilities instead of spikes (the trace follows the rate)."""
    def spike_input(x, r, p, s, d):
        s[...] = x
        p *= d
        p += (1.0 - d) * x

    fast._spike_input = spike_input


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("settings", nargs="+", help="JSON objects of SpikingSpec fields")
    ap.add_argument("--images", type=int, default=20000, help="training images per setting")
    ap.add_argument("--every", type=int, default=10000, help="test every N training images")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--mean-field", action="store_true")
    ap.add_argument("--data", help="data folder")
    args = ap.parse_args()
    if args.mean_field:
        use_mean_field()
    data = load_images("mnist", args.data)
    order = np.random.default_rng(0).permutation(len(data.train_x))[:args.images]
    for setting in args.settings:
        spec = SpikingSpec(**{"reading": "tau", "steps_per_image": 10, **json.loads(setting)})
        runner = FastRunner(spec, 1000, batch=args.batch)
        state, curve, start = runner.prepare(initial_state(spec)), [], time.perf_counter()
        for lo in range(0, args.images, args.every):
            for c in range(lo, min(lo + args.every, args.images), 1000):
                idx = order[c:c + 1000]
                state, _ = runner.run(state, data.train_x[idx], data.train_y[idx], learn=True)
            if not all(np.isfinite(v).all() for v in state.values()):
                curve.append("diverged")
                break
            curve.append(round(evaluate(runner, state, data.test_x[:2000], data.test_y[:2000]), 4))
        print(f"{setting} batch {args.batch}{' mean-field' if args.mean_field else ''}: test error "
              f"{curve} after every {args.every} images, {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
