"""Training and evaluation of the spiking network, the same loop for both engines.

A runner shows a chunk of images and returns the new state and, for every image, the read-out:
the mean output rate over the last `spec.readout_fraction` of its presentation.
- `BrianRunner`: one stream, the Brian2 network (`brian.py`), chunks of a fixed size.
- `FastRunner`: `batch` streams of the batched engine (`fast.py`); image k of a chunk of n goes to
  stream k // (n / batch), so each stream sees consecutive images.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from spikefa.arrays import import_cupy, to_numpy
from spikefa.spiking import fast
from spikefa.spiking.codegen import compile_model
from spikefa.spiking.noise import CounterNoise
from spikefa.spiking.spec import SpikingSpec, is_stream_var, with_rules
from spikefa.timing import NO_PARTS

BACKENDS = ("numpy", "cupy", "torch")  # the arrays of FastRunner


def readout(y: np.ndarray, spec: SpikingSpec) -> np.ndarray:
    """y: steps × n_out for consecutive images → n_images × n_out mean rate over each read-out
    window."""
    T = spec.steps_per_image
    window = max(1, int(round(spec.readout_fraction * T)))
    return y.reshape(-1, T, y.shape[-1])[:, T - window :].mean(axis=1)


def single_stream(state: dict) -> dict:
    """State for the one-stream Brian2 network: stream 0 of a batched state."""
    return {k: (v[0] if is_stream_var(k) and v.ndim == 2 else v).copy() for k, v in state.items()}


class BrianRunner:
    def __init__(
        self, spec: SpikingSpec, chunk: int, device: str = "cpp_standalone", threads: int = 1, **kw
    ):
        from spikefa.spiking.brian import BrianNetwork

        self.spec, self.chunk = spec, chunk
        self.net = BrianNetwork(spec, chunk, device, threads=threads, **kw)
        self.steps, self.sim_seconds = 0, 0.0

    def prepare(self, state: dict) -> dict:
        return single_stream(state)

    def export(self, state: dict) -> dict:
        return state

    def random_state(self):
        return None  # Brian2 draws its own numbers: a resumed Brian2 run is not bit-identical

    def restore_random_state(self, saved) -> None:
        pass

    def run(self, state, images, labels, learn=True, eta=None):
        state, rec = self.net.run(state, images, labels, learn, eta=eta)
        self.steps += len(images) * self.spec.steps_per_image
        self.sim_seconds += self.net.last_run_seconds
        return state, readout(rec.y, self.spec)


class FastRunner:
    """`backend="numpy"`: the CPU backend (BLAS in place); `backend="cupy"`: the same step through
    NumPy's array interface on a GPU (needs the `gpu` extra); `backend="torch"`: PyTorch on CUDA
    where it finds a GPU, else on the CPU (`torch_backend`; `compile` runs the step, or with
    `steps_per_call` that many steps of an image, through `torch.compile`). CuPy's random state is
    not saved, so a resumed CuPy run continues with fresh spike noise. `plasticity`, `feedback` and
    `plasticity_delay`, when given, replace the spec's own rules and gate (as in `BrianNetwork`); a
    rule the batched engine cannot factorise is a SpikefaError at once."""

    def __init__(
        self,
        spec: SpikingSpec,
        chunk: int,
        batch: int = 1,
        backend: str = "numpy",
        plasticity_delay: int | None = None,
        plasticity: str | None = None,
        feedback: str | None = None,
        compile: bool | str = False,
        steps_per_call: int | None = None,
    ):
        spec = with_rules(spec, plasticity, feedback, plasticity_delay)
        self.spec, self.chunk, self.batch, self.backend = spec, chunk, batch, backend
        if backend == "cupy":
            cupy = import_cupy()
            self.xp, self.ops = cupy, fast.ArrayOps(cupy)
            self.rng = cupy.random.default_rng(spec.seed)
        elif backend == "torch":
            from spikefa.spiking import torch_backend

            self.ops = torch_backend.TorchOps(compile, steps_per_call=steps_per_call)
            self.xp, self.rng = self.ops.xp, torch_backend.TorchNoise(spec.seed)
        else:
            self.xp, self.ops = np, fast.CpuOps()
            self.rng = CounterNoise(spec.seed)
        compile_model(
            spec, self.xp.__name__
        )  # refuses a rule that does not factorise, before any work
        self.ws = {}  # workspaces by number of streams
        self.steps = 0
        self.parts = NO_PARTS  # a `spikefa.timing.Parts` to time the spike noise apart

    def prepare(self, state: dict) -> dict:
        """The state for this runner's streams; a checkpoint of the same batch size keeps every
        stream."""
        same_batch = all(
            v.shape[0] == self.batch for k, v in state.items() if is_stream_var(k) and v.ndim == 2
        )
        return fast.batch_state(
            self.spec, state if same_batch else single_stream(state), self.batch, self.xp
        )

    def export(self, state: dict) -> dict:
        return {k: np.ascontiguousarray(to_numpy(v)) for k, v in state.items()}

    def random_state(self) -> dict | None:
        return getattr(self.rng, "state", None) if self.backend != "cupy" else None

    def restore_random_state(self, saved) -> None:
        # a checkpoint from another generator (NumPy's, of older runs, CuPy's, or another backend's)
        # continues with this runner's noise
        mine = self.random_state()
        if saved and mine and saved.get("bit_generator") == mine["bit_generator"]:
            self.rng.state = saved

    def run(self, state, images, labels, learn=True, eta=None):
        head = len(images) - len(images) % self.batch  # a remainder runs on the first streams alone
        parts = [
            self._run_streams(state, images[lo:hi], labels[lo:hi], learn, k, eta)
            for lo, hi, k in ((0, head, self.batch), (head, len(images), len(images) - head))
            if hi > lo
        ]
        return state, np.concatenate(parts)

    def _run_streams(self, state, images, labels, learn, k, eta=None):
        """Run the first k streams (their rows of u and p are views, updated in place)."""
        sub = {key: (v[:k] if is_stream_var(key) else v) for key, v in state.items()}
        if k not in self.ws:
            self.ws[k] = fast.Workspace.allocate(self.spec, k, self.xp)
        xp = self.xp
        y, _ = fast.run(
            self.spec,
            sub,
            xp.asarray(images.reshape(k, -1, images.shape[-1])),
            xp.asarray(labels.reshape(k, -1)),
            learn,
            rng=self.rng,
            ops=self.ops,
            ws=self.ws[k],
            eta=eta,
            parts=self.parts,
        )
        y = to_numpy(y)
        self.steps += len(images) * self.spec.steps_per_image
        # y: steps × k streams × n_out → per stream, per image; stream s holds images s·m … s·m + m
        # − 1
        return np.concatenate([readout(y[:, s], self.spec) for s in range(k)])


def error_rate(scores: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(scores, axis=1) != labels))


def evaluate(
    runner, state: dict, images: np.ndarray, labels: np.ndarray, progress: str | None = None
) -> float:
    """Error rate with learning off. `state` is a checkpoint's (`load_checkpoint`) or one that
    `runner.prepare` made; it is not changed (PSPs run on a prepared copy). `progress`: the label of
    a progress bar on stderr (none by default)."""
    state = runner.prepare(state)
    bar = tqdm(total=len(images), desc=progress, unit="img", leave=False) if progress else None
    scores = []
    for start in range(0, len(images), runner.chunk):
        stop = min(start + runner.chunk, len(images))
        state, out = runner.run(state, images[start:stop], labels[start:stop], learn=False)
        scores.append(out)
        if bar is not None:
            bar.update(stop - start)
    if bar is not None:
        bar.close()
    return error_rate(np.concatenate(scores), labels)
