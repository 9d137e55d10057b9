"""`spikefa diagnose CHECKPOINT`: why a trained spiking network stops improving.

For a checkpoint it measures (batched engine, learning off): the error on the first N training and
test images — a large gap is overfitting, two high errors a network that does not fit — and the
test error with each image shown four times as long (is the read-out window the limit?). Then, in a
mean-field forward pass (every spike replaced by its probability) over the first 2,000 test images,
per layer: the fraction of (unit, image) pairs with σ < 0.02 or σ > 0.98, where σ' ≈ 0 stops
learning; how far the weights have grown (RMS now / RMS of the seed's initial draw); and the angle
between each feedback matrix B_l and the forward weights w_{l+1}ᵀ it stands in for (below 90°:
the forward weights have come to agree with the feedback).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from spikefa.data import load_images
from spikefa.metrics import angle_deg
from spikefa.spiking.spec import SpikingSpec, initial_state
from spikefa.spiking.training import FastRunner, evaluate

MEAN_FIELD_IMAGES = 2000


def diagnose(spec: SpikingSpec, state: dict, dataset: str = "mnist", images: int = 3000, data_dir=None) -> dict:
    data = load_images(dataset, data_dir)
    n = min(images, len(data.train_x), len(data.test_x))
    out = {"images": n}
    runner = FastRunner(spec, min(n, 1000), batch=100)
    for name, X, y in (("train", data.train_x, data.train_y), ("test", data.test_x, data.test_y)):
        out[f"{name}_error"] = evaluate(runner, state, X[:n].astype(spec.dtype), y[:n])
    longer = dataclasses.replace(spec, steps_per_image=4 * spec.steps_per_image)
    runner = FastRunner(longer, min(n, 1000), batch=100)
    out["test_error_4x_longer"] = evaluate(runner, state, data.test_x[:n].astype(spec.dtype), data.test_y[:n])
    m = min(MEAN_FIELD_IMAGES, len(data.test_x))
    h, start, layers = data.test_x[:m].astype(np.float64), initial_state(spec), []
    for l in range(1, spec.n_layers + 1):
        h = 1.0 / (1.0 + np.exp(-(h @ state[f"w{l}"] + state[f"bias{l}"])))
        rms, rms0 = (float(np.sqrt(np.mean(np.square(s[f"w{l}"], dtype=np.float64)))) for s in (state, start))
        layer = {"layer": l, "saturated": float(np.mean((h < 0.02) | (h > 0.98))), "w_rms": rms, "w_rms_growth": rms / rms0}
        if l < spec.n_layers and spec.feedback_source(l) == l + 1:
            layer["angle_deg_B_vs_wT"] = angle_deg(state[f"B{l}"], state[f"w{l + 1}"].T, folded=False)
        layers.append(layer)
    out["layers"] = layers
    out["mean_field_images"] = m
    out["mean_field_test_error"] = float(np.mean(h.argmax(axis=1) != data.test_y[:m]))
    return out


def report(d: dict, spec: SpikingSpec) -> str:
    n = d["images"]
    lines = [f"train error on the first {n:,} images: {d['train_error']:.2%}",
             f"test error on the first {n:,} images: {d['test_error']:.2%}",
             f"test error with {4 * spec.steps_per_image} steps per image (4× as long): {d['test_error_4x_longer']:.2%}"]
    for layer in d["layers"]:
        line = (f"layer {layer['layer']}: saturated {layer['saturated']:.0%}; w{layer['layer']} RMS {layer['w_rms']:.3f} "
                f"({layer['w_rms_growth']:.1f}× its start)")
        if "angle_deg_B_vs_wT" in layer:
            line += f"; B{layer['layer']} vs w{layer['layer'] + 1}ᵀ {layer['angle_deg_B_vs_wT']:.1f}°"
        lines.append(line)
    lines.append(f"mean-field test error on the first {d['mean_field_images']:,} images: {d['mean_field_test_error']:.2%}")
    return "\n".join(lines)
