"""Why does a trained spiking network stall? Fit, saturation and alignment of a checkpoint
(see the docs, "How the shipped networks were trained").

Prints, for a checkpoint: the error on the first N training and test images (fast engine, learning
off), and the test error with each image shown 4× as long (is the read-out the limit?); for each
layer, in a mean-field forward pass over the first 2,000 test images, the fraction
of (unit, image) pairs with σ < 0.02 or σ > 0.98 (where σ' ≈ 0 stops learning); how far each
weight matrix has grown (RMS now / RMS of the initial draw); and the angle between each feedback
matrix B_l and the forward weights w_{l+1}ᵀ it stands in for.

    git show 50d876a:models/fig4_spiking_fa.npz > first.npz     # the first long run's weights
    python scripts/fig4_diagnose.py first.npz
"""

import argparse
import dataclasses

import numpy as np

from spikefa.data import load_images
from spikefa.metrics import angle_deg
from spikefa.spiking.spec import initial_state, load_checkpoint
from spikefa.spiking.training import FastRunner, evaluate


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--images", type=int, default=3000, help="training and test images for the error")
    ap.add_argument("--data", help="data folder")
    args = ap.parse_args()
    spec, state, _ = load_checkpoint(args.checkpoint)
    data = load_images("mnist", args.data)
    runner = FastRunner(spec, 1000, batch=100)
    n = args.images
    for name, X, y in (("train", data.train_x, data.train_y), ("test", data.test_x, data.test_y)):
        err = evaluate(runner, runner.prepare(state), X[:n].astype(spec.dtype), y[:n])
        print(f"{name} error on the first {n} images: {err:.2%}")
    longer = FastRunner(dataclasses.replace(spec, steps_per_image=4 * spec.steps_per_image), 1000, batch=100)
    err = evaluate(longer, longer.prepare(state), data.test_x[:n].astype(spec.dtype), data.test_y[:n])
    print(f"test error on the first {n} images, {4 * spec.steps_per_image} steps per image: {err:.2%}")
    h, start = data.test_x[:2000].astype(np.float64), initial_state(spec)
    for l in range(1, spec.n_layers + 1):
        h = 1.0 / (1.0 + np.exp(-(h @ state[f"w{l}"] + state[f"bias{l}"])))
        w, w0 = (np.sqrt(np.mean(np.square(s[f"w{l}"], dtype=np.float64))) for s in (state, start))
        line = f"layer {l}: saturated {np.mean((h < 0.02) | (h > 0.98)):.0%}; w{l} RMS {w:.3f} ({w / w0:.1f}× its start)"
        if l < spec.n_layers and spec.feedback != "dfa":
            line += f"; B{l} vs w{l + 1}ᵀ {angle_deg(state[f'B{l}'], state[f'w{l + 1}'].T, folded=False):.1f}°"
        print(line)
    print(f"mean-field test error on the first 2000 images: {np.mean(h.argmax(axis=1) != data.test_y[:2000]):.2%}")


if __name__ == "__main__":
    main()
