"""`spikefa diagnose CHECKPOINT`: why a trained spiking network stops improving.

It never reads the test set: every measurement uses the training images and the images the run held
out for validation (the last `holdout` training images). For a checkpoint it measures (batched
engine, learning off): the error on the first N training and N held-out images — a large gap is
overfitting, two high errors a network that does not fit — and the held-out error with each image
shown four times as long (is the read-out window the limit?). Then, in a mean-field forward pass
(every spike replaced by its probability) over the first 2,000 held-out images, per layer: the
fraction of (unit, image) pairs with σ < 0.02 or σ > 0.98, where σ' ≈ 0 stops learning; how far the
weights have grown (RMS now / RMS of the seed's initial draw); and the signed angle between each
feedback matrix B_l and the forward weights w_{l+1}ᵀ it stands in for (below 90°: the forward
weights have come to agree with the feedback).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from spikefa.data import load_images
from spikefa.metrics import angle_deg
from spikefa.spiking.spec import SpikingSpec, initial_state
from spikefa.spiking.training import FastRunner, evaluate

MEAN_FIELD_IMAGES = 2000


def diagnose(
    spec: SpikingSpec,
    state: dict,
    dataset: str = "mnist",
    images: int = 3000,
    data_dir=None,
    holdout: int = 10000,
) -> dict:
    data = load_images(dataset, data_dir).holdout(holdout)
    n = min(images, len(data.train_x), len(data.val_x))
    out = {"images": n, "holdout_images": len(data.val_x)}
    runner = FastRunner(spec, min(n, 1000), batch=100)
    for name, X, y in (
        ("train", data.train_x, data.train_y),
        ("validation", data.val_x, data.val_y),
    ):
        out[f"{name}_error"] = evaluate(runner, state, X[:n].astype(spec.dtype), y[:n])
    longer = dataclasses.replace(spec, steps_per_image=4 * spec.steps_per_image)
    runner = FastRunner(longer, min(n, 1000), batch=100)
    out["validation_error_4x_longer"] = evaluate(
        runner, state, data.val_x[:n].astype(spec.dtype), data.val_y[:n]
    )
    return out | health(spec, state, data.val_x, data.val_y)


def health(spec: SpikingSpec, state: dict, images: np.ndarray, labels: np.ndarray) -> dict:
    """The mean-field measurements of `diagnose` on the first 2,000 of `images` (held-out ones): per
    layer the saturated fraction, the weights' RMS and its growth, the signed B–wᵀ angle; and the
    mean-field error."""
    m = min(MEAN_FIELD_IMAGES, len(images))
    h, start, layers = images[:m].astype(np.float64), initial_state(spec), []
    for l in range(1, spec.n_layers + 1):
        h = 1.0 / (1.0 + np.exp(-(h @ state[f"w{l}"] + state[f"bias{l}"])))
        rms, rms0 = (
            float(np.sqrt(np.mean(np.square(s[f"w{l}"], dtype=np.float64)))) for s in (state, start)
        )
        layer = {
            "layer": l,
            "saturated": float(np.mean((h < 0.02) | (h > 0.98))),
            "w_rms": rms,
            "w_rms_growth": rms / rms0,
        }
        if l < spec.n_layers and spec.feedback_source(l) == l + 1:
            layer["angle_deg_B_vs_wT"] = angle_deg(
                state[f"B{l}"], state[f"w{l + 1}"].T, folded=False
            )
        layers.append(layer)
    return {
        "layers": layers,
        "mean_field_images": m,
        "mean_field_validation_error": float(np.mean(h.argmax(axis=1) != labels[:m])),
    }


def report(d: dict, spec: SpikingSpec) -> str:
    n = d["images"]
    lines = [
        f"train error on the first {n:,} images: {d['train_error']:.2%}",
        f"validation error on the first {n:,} held-out images: {d['validation_error']:.2%}",
        f"validation error with {4 * spec.steps_per_image} steps per image (4× as long): "
        f"{d['validation_error_4x_longer']:.2%}",
    ]
    for layer in d["layers"]:
        line = (
            f"layer {layer['layer']}: saturated {layer['saturated']:.0%}; w{layer['layer']} RMS {layer['w_rms']:.3f} "
            f"({layer['w_rms_growth']:.1f}× its start)"
        )
        if "angle_deg_B_vs_wT" in layer:
            line += (
                f"; B{layer['layer']} vs w{layer['layer'] + 1}ᵀ {layer['angle_deg_B_vs_wT']:.1f}°"
            )
        lines.append(line)
    lines.append(
        f"mean-field validation error on the first {d['mean_field_images']:,} held-out images: "
        f"{d['mean_field_validation_error']:.2%}"
    )
    return "\n".join(lines)
