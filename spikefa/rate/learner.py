"""A rate network as the training loop (`spikefa.training_loop`) trains it.

It learns online (recording, where its δ is not backprop's own, the angle of every hidden layer's δ
to backprop's in windows of `window` examples) or in minibatches of `batch`, on the array module its
weights live on. Its checkpoint holds the weights, the biases and the angle windows so far; the
feedback weights and masks are drawn again from the seed.
"""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np

from spikefa.arrays import to_numpy
from spikefa.errors import SpikefaError, check_finite, layers
from spikefa.rate.network import Network
from spikefa.results import atomic_write_bytes, load_npz


def error_rate(net: Network, X: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of misclassified images (NaN for none: no validation set)."""
    return float(np.mean(np.argmax(net.predict(X), axis=1) != labels)) if len(X) else float("nan")


def weights_digest(net: Network) -> str:
    """SHA-256 of a network's weights and biases: equal digests, bit-identical networks."""
    h = hashlib.sha256()
    for a in net.W[1:] + net.b[1:]:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


class RateLearner:
    """The network `make()` draws, with learning rates `etas` (one per weight layer) scaled by
    `eta_factor(images seen)`; `xp`: the array module it learns on (minibatches only)."""

    def __init__(self, make, etas, eta_factor, batch: int, window: int, xp=np):
        self.make, self.etas, self.eta_factor = make, np.asarray(etas, float), eta_factor
        self.batch, self.window, self.xp = batch, window, xp

    def fresh(self) -> None:
        self.net = self.make().to(self.xp)
        # bp's and shallow learning's δ is backprop's own
        self.with_angles = (
            self.batch == 1 and self.net.L > 1 and self.net.algorithm not in ("bp", "shallow")
        )
        self.windows = []

    def load(self, path) -> dict:
        z = load_npz(path, "rate network checkpoint")
        self.fresh()
        try:
            meta = json.loads(str(z.pop("meta")))
            for l in range(1, self.net.L + 1):
                self.net.W[l][...] = self.xp.asarray(z[f"W{l}"])
                self.net.b[l][...] = self.xp.asarray(z[f"b{l}"])
            self.windows = [z["angles"]] if len(z["angles"]) else []
        except (KeyError, TypeError, ValueError) as exc:
            raise SpikefaError(
                f"{path} is not a rate network checkpoint or is corrupted ({exc!r})"
            ) from None
        return meta

    def begin(self, seen: int, meta: dict) -> None:
        pass

    def learn(self, seen: int, images, targets) -> None:
        net = self.net
        net.etas[1:] = self.etas * self.eta_factor(seen)  # the schedule × each layer's η
        if self.batch > 1:
            net.train_batch(images, targets, self.batch)
            return
        _, angles = net.train(images, targets, angles=self.with_angles)
        if self.with_angles:  # whole windows within the chunk
            k = len(angles) // self.window * self.window
            self.windows.append(angles[:k].reshape(-1, self.window, angles.shape[1]))

    def check(self, first: int, last: int, kept: str) -> None:
        when = f"between examples {first} and {last}"
        check_finite(layers(self.net.W), self.net.algorithm, when, kept)

    def error(self, images, labels) -> float:
        return error_rate(self.net, images, labels)

    def measures(self, images, labels) -> dict:
        return {}

    def meta(self) -> dict:
        return {}

    def save(self, path, meta: dict, kind: str) -> None:
        net = self.net
        arrays = {f"W{l}": to_numpy(net.W[l]) for l in range(1, net.L + 1)}
        arrays.update({f"b{l}": to_numpy(net.b[l]) for l in range(1, net.L + 1)})
        buf = io.BytesIO()
        np.savez(buf, meta=json.dumps(meta), angles=self.angle_windows(), **arrays)
        atomic_write_bytes(path, buf.getvalue())

    def read(self, path) -> dict:
        return self.load(path)

    def score(self, images, labels, progress: str) -> float:
        return self.error(images, labels)

    def summary(self, selected, validation: tuple) -> dict:
        return {}

    def angle_windows(self) -> np.ndarray:
        """The δ angles so far: windows × examples × hidden layers (bottom first)."""
        if self.windows:
            return np.concatenate(self.windows)
        return np.zeros((0, self.window, max(self.net.L - 1, 1)))
