"""The batched engine on PyTorch: one code path for a GPU and, in tests, for the CPU.

The engine's element-wise code is printed by `codegen` from the model's equations against the
array namespace `torch_arrays` (NumPy's names, torch's functions), so nothing of the model is
written here. This module holds what a backend adds: matrix products into preallocated tensors
(`addmm_`: α and β ride on the product, no temporary), spike noise drawn on the device by the
NumPy engine's counter-based generator, and `torch.compile` of either one step or the steps of a
whole image (`fast.present`): with CUDA graphs on a GPU, one graph replay per image instead of a
kernel launch per statement. State and workspaces stay on the device between calls.
"""

from __future__ import annotations

import torch

from spikefa.spiking import fast, torch_arrays
from spikefa.spiking.noise import NAME, CounterNoise

_GAMMA, _M1, _M2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def _int64(v: int) -> int:
    """An unsigned 64-bit constant as the signed int64 of the same bits."""
    return v - (1 << 64) if v >= 1 << 63 else v


def _shr(z: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 bits (torch shifts signed integers arithmetically)."""
    return (z >> s) & ((1 << (64 - s)) - 1)


class TorchNoise:
    """The spike noise of `noise.CounterNoise` (SplitMix64 of a key and a counter) in torch's
    integer arithmetic on the device, so that it can run inside a compiled call: the same numbers
    as the NumPy engine for the same seed, and the same saved state (a resumed run continues on
    either backend). Key and counter are device tensors, updated in place."""

    def __init__(self, seed: int, name: str = "spikes", device=None):
        self.device = torch.device(device or torch_arrays.DEVICE)
        ref = CounterNoise(seed, name)
        self.key = torch.tensor(_int64(ref.key), dtype=torch.int64, device=self.device)
        self.counter = torch.zeros((), dtype=torch.int64, device=self.device)

    def fill(self, out: torch.Tensor) -> None:
        """Write the next `out.numel()` uniforms into `out`, numbered in column-major order (the
        order of the NumPy engine's buffers), whatever the tensor's strides."""
        n, dims = out.numel(), tuple(reversed(range(out.ndim)))
        j = torch.arange(n, device=out.device).reshape(out.shape[::-1]).permute(dims)
        z = self.key + (self.counter + j) * _int64(_GAMMA)  # wraps modulo 2⁶⁴, as the bits do
        z = (z ^ _shr(z, 30)) * _int64(_M1)
        z = (z ^ _shr(z, 27)) * _int64(_M2)
        z = z ^ _shr(z, 31)
        out.copy_(_shr(z, 40).to(out.dtype) * 2.0**-24)  # 24 bits: exact in float32
        self.counter.add_(n)

    @property
    def state(self) -> dict:
        key = int(self.key) % (1 << 64)
        return {"bit_generator": NAME, "key": key, "counter": int(self.counter)}

    @state.setter
    def state(self, saved: dict) -> None:
        self.key.fill_(_int64(int(saved["key"])))
        self.counter.fill_(int(saved["counter"]))


class TorchOps(fast.ArrayOps):
    """Matrix products and spike noise for tensors of `torch_arrays` (the device it chose).

    `compile=True` runs the work through `torch.compile` with inductor (`mode`: by default
    "reduce-overhead" on CUDA, which replays it as a CUDA graph); a string names another compiler
    of `torch.compile` ("aot_eager" captures the graph as inductor does, without generating code).
    `steps_per_call=None` compiles one step; `steps_per_call=k` compiles k steps of an image, noise
    included, into one call (`fast.present`; an image of T steps takes ⌈T/k⌉ calls, so k ≥ T is one
    call per image, and a smaller k bounds the compile time of long presentations). Compiling takes
    a while and on the CPU needs a C++ compiler, so it is off by default."""

    def __init__(
        self,
        compile: bool | str = False,
        mode: str | None = None,
        steps_per_call: int | None = None,
    ):
        super().__init__(torch_arrays)
        if not compile:
            return
        backend = compile if isinstance(compile, str) else "inductor"
        cuda = torch_arrays.DEVICE.type == "cuda"
        mode = mode or ("reduce-overhead" if cuda else None)
        if steps_per_call is None:
            self.step = _resident(torch.compile(fast.step, mode=mode, backend=backend), cuda)
        else:
            self.steps_per_call, self.outputs, self._cuda = int(steps_per_call), {}, cuda
            # one graph per call (`fullgraph`: a break is an error, not a silent extra launch); each
            # spec, gate pattern and batch is a graph of its own, so more than dynamo's default 8
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
            self._compiled = torch.compile(fast.present, mode=mode, backend=backend, fullgraph=True)
            self.present = self._present  # `fast.run` hands each image to it

    def gemm(self, a, b, out, alpha=1.0, beta=0.0, trans_a=False):
        """out = α·a b + β·out in place; `trans_a` uses aᵀ (a view). β = 0 ignores out's values."""
        out.addmm_(a.T if trans_a else a, b, beta=beta, alpha=alpha)

    def uniforms(self, rng, out):
        rng.fill(out)

    def _present(self, spec, state, x, ws, ys, etas, rng, eta_max, model, fb, feedback) -> None:
        """`fast.present` in compiled calls of at most `steps_per_call` steps. Each call writes its
        output rates into a buffer of its own that stays at one address (a CUDA graph's output),
        copied into `ys` after the call."""
        k = self.steps_per_call
        for lo in range(0, len(etas), k):
            chunk = tuple(etas[lo : lo + k])
            key = (len(chunk), *ws.y.shape, ws.y.dtype)
            out = self.outputs.get(key)
            if out is None:
                out = self.outputs[key] = torch_arrays.zeros((len(chunk), *ws.y.shape), ws.y.dtype)
            if self._cuda:
                _mark_static(state, ws, fb, rng.key, rng.counter, out)
            self._compiled(spec, state, x, ws, out, chunk, self, rng, eta_max, model, fb, feedback)
            ys[lo : lo + len(chunk)] = out


def _mark_static(state: dict, ws: fast.Workspace, fb: dict, *more) -> None:
    """Mark the tensors a compiled call reads and writes in place as fixed device addresses, so that
    a CUDA graph updates them where they are across replays instead of copying them in and out
    (marking is idempotent and cheap: the runner passes fresh views of the same memory)."""
    tensors = [*state.values(), *ws.s, *ws.r, *ws.mod, *ws.delta, ws.y, ws.target, *more]
    for t in tensors + [m for ms in fb.values() for m in ms]:
        if t is not None:
            torch._dynamo.mark_static_address(t)


def _resident(compiled, cuda: bool):
    """`compiled` (one step), called with its state and workspace marked static on CUDA."""
    if not cuda:
        return compiled

    def step(spec, state, x, ws, *args, **kw):
        _mark_static(state, ws, {})
        compiled(spec, state, x, ws, *args, **kw)

    return step
