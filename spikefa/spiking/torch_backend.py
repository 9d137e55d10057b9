"""The batched engine on PyTorch: one code path for a GPU and, in tests, for the CPU.

The engine's element-wise code is printed by `codegen` from the model's equations against the
array namespace `torch_arrays` (NumPy's names, torch's functions), so nothing of the model is written
here. This module holds what a backend adds: matrix products into preallocated tensors
(`addmm_`: α and β ride on the product, no temporary), spike noise drawn on the device, and an
optional `torch.compile` of the step (with CUDA graphs on a GPU, one graph replay per step instead
of a kernel launch per statement). State and workspaces stay on the device between calls.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

from spikefa.spiking import fast, torch_arrays

NAME = "torch.Generator"  # recorded with the state: a checkpoint names its generator


class TorchNoise:
    """Uniforms in [0, 1) for stream `name` of a run's `seed`, drawn on the device: PyTorch's
    counter-based Philox generator on CUDA, its Mersenne Twister on the CPU. `state` saves and
    restores the generator, so a resumed run continues the same numbers."""

    def __init__(self, seed: int, name: str = "spikes", device=None):
        self.device = torch.device(device or torch_arrays.DEVICE)
        seq = np.random.SeedSequence(int(seed), spawn_key=(zlib.crc32(name.encode()),))
        self.generator = torch.Generator(self.device)
        self.generator.manual_seed(int(seq.generate_state(1, np.uint64)[0] >> np.uint64(1)))

    def fill(self, out: torch.Tensor) -> None:
        """Write the next `out.numel()` uniforms into `out`."""
        torch.rand(out.shape, generator=self.generator, out=out)

    @property
    def state(self) -> dict:
        raw = self.generator.get_state().numpy().tobytes()
        return {"bit_generator": f"{NAME}:{self.device.type}", "state": raw.hex()}

    @state.setter
    def state(self, saved: dict) -> None:
        raw = np.frombuffer(bytes.fromhex(saved["state"]), np.uint8).copy()
        self.generator.set_state(torch.from_numpy(raw))


class TorchOps(fast.ArrayOps):
    """Matrix products and spike noise for tensors of `torch_arrays` (the device it chose).

    `compile=True` runs each step through `torch.compile` with inductor (`mode`: by default
    "reduce-overhead" on CUDA, which replays the step as a CUDA graph); a string names another
    compiler of `torch.compile` ("aot_eager" captures the graph as inductor does, without generating
    code). Compiling takes a while and on the CPU needs a C++ compiler, so it is off by default."""

    def __init__(self, compile: bool | str = False, mode: str | None = None):
        super().__init__(torch_arrays)
        if compile:
            backend = compile if isinstance(compile, str) else "inductor"
            cuda = torch_arrays.DEVICE.type == "cuda"
            mode = mode or ("reduce-overhead" if cuda else None)
            self.step = _resident(torch.compile(fast.step, mode=mode, backend=backend), cuda)

    def gemm(self, a, b, out, alpha=1.0, beta=0.0, trans_a=False):
        """out = α·a b + β·out in place; `trans_a` uses aᵀ (a view). β = 0 ignores out's values."""
        out.addmm_(a.T if trans_a else a, b, beta=beta, alpha=alpha)

    def uniforms(self, rng, out):
        rng.fill(out)


def _resident(compiled, cuda: bool):
    """`compiled`, called with the state and workspace marked as fixed device addresses on CUDA,
    so that a CUDA graph updates them in place across replays instead of copying them in and out
    (marking is idempotent and cheap: the runner passes fresh views of the same memory)."""
    if not cuda:
        return compiled

    def step(spec, state, x, ws, *args, **kw):
        for t in [*state.values(), *ws.s, *ws.r, *ws.mod, *ws.delta, ws.y, ws.target]:
            if t is not None:
                torch._dynamo.mark_static_address(t)
        compiled(spec, state, x, ws, *args, **kw)

    return step
