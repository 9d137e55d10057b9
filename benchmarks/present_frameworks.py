"""One image presentation (k steps) of the spiking network as one compiled call: torch.compile
against jax.jit + lax.scan, beside spikefa's own engines, in one process.

Both framework versions run the same functional step, written once below over a small adapter of
each array library: the 11 matrix products of a step of the 784-1500-1500-1500-10 network (4
forward, 3 feedback, 4 rank-`streams` weight updates), σ, stochastic spikes, traces, δ and the bias
update, with the spike noise of `spikefa.spiking.noise` (SplitMix64 of a key and a counter, int64
arithmetic) drawn inside the call. torch.compile unrolls the k steps into one graph ("reduce-overhead"
on CUDA: a CUDA graph); JAX scans them (`lax.scan`, the state donated, so updated in place). Before
timing, one step of both on a small network in float64 must agree, so that they compute the same.
Beside them: the NumPy engine and spikefa's torch backend (an image per compiled call, the model's
generated code), the same network and streams.

    python benchmarks/present_frameworks.py [--streams 50] [--steps 10] [--repeats 3] [--json]

Reports per version the compile seconds (first call less a steady one) and the steady-state
microseconds per stream-step: the best of `repeats` calls, the versions taking turns, so that a
busy machine slows each alike. Runs on a GPU where both frameworks find one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np

FULL = (784, 1500, 1500, 1500, 10)
DECAY = float(np.exp(-1 / 0.9))  # the "tau" reading: τ of 0.9 steps
GAMMA, M1, M2 = (
    v - (1 << 64) for v in (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB)
)


class Torch:
    def __init__(self):
        import torch

        self.xp, self.dev = torch, torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.name = f"torch {torch.__version__} ({self.dev.type})"

    def arange(self, n):
        return self.xp.arange(n, dtype=self.xp.int64, device=self.dev)

    def cast(self, a, dtype):
        return a.to(dtype)

    def asarray(self, a):
        return self.xp.as_tensor(a, device=self.dev)


class Jax:
    def __init__(self):
        import jax

        jax.config.update("jax_enable_x64", True)  # int64 noise arithmetic (floats stay float32)
        self.xp, self.jax = jax.numpy, jax
        self.name = f"jax {jax.__version__} ({jax.default_backend()})"

    def arange(self, n):
        return self.xp.arange(n, dtype=self.xp.int64)

    def cast(self, a, dtype):
        return a.astype(dtype)

    def asarray(self, a):
        return self.xp.asarray(a)


def uniforms(F, key, counter, shape, dtype):
    """noise.CounterNoise's numbers for a batch × n buffer (column-major numbering)."""
    j = F.arange(shape[0] * shape[1]).reshape(shape[1], shape[0]).T

    def shr(z, s):
        return (z >> s) & ((1 << (64 - s)) - 1)

    z = key + (counter + j) * GAMMA
    z = (z ^ shr(z, 30)) * M1
    z = (z ^ shr(z, 27)) * M2
    z = z ^ shr(z, 31)
    return F.cast(shr(z, 40), dtype) * 2.0**-24


def step(F, state, x, target, eta):
    """One step of every stream, functional: (new state, output rates)."""
    w, B, bias, u, p, key, counter = state
    dt, a = x.dtype, 1.0 - DECAY
    batch = x.shape[0]
    s = F.cast(uniforms(F, key, counter, x.shape, dt) < x, dt)
    counter = counter + batch * x.shape[1]
    new_p, new_u, sig = [DECAY * p[0] + a * s], [], []
    for l in range(len(w)):
        ul = DECAY * u[l] + a * bias[l] + a * (s @ w[l])  # the PSP's decay, its drive, the spikes
        sg = 1.0 / (1.0 + F.xp.exp(-ul))
        new_u.append(ul)
        sig.append(sg)
        if l + 1 < len(w):
            s = F.cast(uniforms(F, key, counter, sg.shape, dt) < sg, dt)
            counter = counter + batch * sg.shape[1]
            new_p.append(DECAY * p[l + 1] + a * s)
    delta = [target - sig[-1]]
    for l in reversed(range(len(w) - 1)):  # feedback from the layer above, through fixed B
        delta.insert(0, sig[l] * (1.0 - sig[l]) * (delta[0] @ B[l]))
    new_w = [wl + eta * (pl.T @ dl) for wl, pl, dl in zip(w, new_p, delta)]
    new_bias = [bl + eta * dl.sum(0) for bl, dl in zip(bias, delta)]
    return (new_w, B, new_bias, new_u, new_p, key, counter), sig[-1]


def initial(F, sizes, streams, dtype, seed=0):
    """(state, image, one-hot target) of `streams` streams, as arrays of F."""
    rng = np.random.default_rng(seed)
    L = len(sizes) - 1

    def arr(*shape, scale=1.0):
        return F.asarray((scale * rng.uniform(-1, 1, shape)).astype(dtype))

    w = [arr(sizes[l], sizes[l + 1], scale=4 / np.sqrt(sizes[l])) for l in range(L)]
    B = [arr(sizes[l + 2], sizes[l + 1], scale=0.5) for l in range(L - 1)]
    u = [F.asarray(np.zeros((streams, n), dtype)) for n in sizes[1:]]
    p = [F.asarray(np.zeros((streams, n), dtype)) for n in sizes[:-1]]
    bias = [F.asarray(np.zeros(n, dtype)) for n in sizes[1:]]
    key, counter = F.asarray(np.int64(1234567)), F.asarray(np.int64(0))
    x = F.asarray(rng.random((streams, sizes[0])).astype(dtype))
    target = F.asarray(np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], streams)])
    return (w, B, bias, u, p, key, counter), x, target


def torch_present(F, k: int, eta: float):
    """k steps unrolled in one torch.compile'd call, the state updated in place."""
    torch = F.xp
    cuda = F.dev.type == "cuda"

    def present(state, x, target):
        new, ys = state, []
        for _ in range(k):
            new, y = step(F, new, x, target, eta)
            ys.append(y)
        for old_t, new_t in zip(_leaves(state), _leaves(new)):
            if old_t is not new_t:
                old_t.copy_(new_t)
        return torch.stack(ys)

    compiled = torch.compile(present, mode="reduce-overhead" if cuda else None, fullgraph=True)

    def call(state, x, target):
        if cuda:
            for t in _leaves(state):
                torch._dynamo.mark_static_address(t)
        return compiled(state, x, target), state

    return call


def jax_present(F, k: int, eta: float):
    """k steps as lax.scan inside one jax.jit call, the state donated."""
    jax = F.jax

    def present(state, x, target):
        def body(s, _):
            return step(F, s, x, target, eta)

        state, ys = jax.lax.scan(body, state, None, length=k)
        return ys, state

    return jax.jit(present, donate_argnums=0)


def _leaves(state):
    w, B, bias, u, p, key, counter = state
    return [*w, *B, *bias, *u, *p, key, counter]


def check_same(frameworks) -> float:
    """Largest difference of one float64 step of a small network between the frameworks."""
    outs = []
    for F in frameworks:
        state, x, target = initial(F, (30, 20, 20, 5), 4, "float64")
        new, y = step(F, state, x, target, 0.01)
        outs.append([np.asarray(t.cpu() if hasattr(t, "cpu") else t) for t in [y, *new[0]]])
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(*outs))
    if diff > 1e-12:
        raise AssertionError(f"the torch and JAX steps differ by {diff}: not the same arithmetic")
    return diff


def framework_call(F, make, streams: int, k: int):
    """A call of one framework's presentation on the full network: () → seconds."""
    state, x, target = initial(F, FULL, streams, "float32")
    call, box = make(F, k, 1e-3), [state]

    def once() -> float:
        t = time.perf_counter()
        ys, box[0] = call(box[0], x, target)
        float(ys[-1].sum())  # waits for the device
        return time.perf_counter() - t

    return once


def spikefa_call(backend: str, streams: int, k: int, **torch_options):
    """A call of one spikefa engine showing one image (k steps) to each of `streams` streams."""
    from spikefa import bench
    from spikefa.spiking import fast
    from spikefa.spiking.spec import initial_state

    spec = dataclasses.replace(bench.default_spec(), sizes=FULL, steps_per_image=k)
    xp, ops = bench.array_backend(backend, **torch_options)
    state = fast.batch_state(spec, initial_state(spec), streams, xp)
    rng, draw = bench.noise_source(backend, 0), np.random.default_rng(0)
    images = xp.asarray(draw.random((streams, 1, FULL[0]), dtype=np.float32))
    labels = xp.asarray(draw.integers(0, FULL[-1], (streams, 1)))

    def once() -> float:
        t = time.perf_counter()
        ys, _ = fast.run(spec, state, images, labels, rng=rng, ops=ops)
        float(ys[-1].sum())
        return time.perf_counter() - t

    return once


def contenders(streams: int, k: int, spikefa: bool) -> dict:
    """name → call, the framework versions first."""
    out = {}
    for F, make in ((Torch(), torch_present), (Jax(), jax_present)):
        out[f"{F.name}: proxy, {'torch.compile' if make is torch_present else 'jit + scan'}"] = (
            framework_call(F, make, streams, k)
        )
    if spikefa:
        out["spikefa numpy engine"] = spikefa_call("numpy", streams, k)
        out["spikefa torch backend, eager steps"] = spikefa_call("torch", streams, k)
        out["spikefa torch backend, an image per call"] = spikefa_call(
            "torch", streams, k, compile=True, steps_per_call=k
        )
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--streams", type=int, default=50)
    p.add_argument("--steps", type=int, default=10, help="steps per image: k of the call")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-spikefa", action="store_true", help="the two frameworks only")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    result = {"same_arithmetic_max_difference": check_same([Torch(), Jax()]), "network": FULL}
    result.update(streams=args.streams, steps_per_call=args.steps)
    calls = contenders(args.streams, args.steps, not args.no_spikefa)
    first = {name: once() for name, once in calls.items()}  # compiles
    times = {name: [] for name in calls}
    for _ in range(args.repeats):  # interleaved, so that a busy machine slows each alike
        for name, once in calls.items():
            times[name].append(once())
    for name, ts in times.items():
        result[name] = {
            "compile_seconds": round(first[name] - min(ts), 1),
            "us_per_stream_step": round(1e6 * min(ts) / (args.streams * args.steps), 1),
        }
    print(json.dumps(result, indent=None if args.json else 1))
    return result


if __name__ == "__main__":
    main()
