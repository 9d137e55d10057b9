"""`spikefa bench spiking|rate`: side-by-side speed, measured in one run.

Rate engine: FA training of the 784-1000-10 MNIST network of Fig. 3 in examples per second, online
and in minibatches of 100, beside the same network and rule in PyTorch
(`spikefa.baselines.torch_fa`).

Spiking engines: the full 784-1500-1500-1500-10 network with learning and feedback on. Brian2
figures are milliseconds per simulated step (simulation only; code generation and compilation are
reported separately as build seconds); fast-engine figures are stream-steps per second. The float32
matrix-multiply peak of this machine is measured in the same run, as the yardstick.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from spikefa.spiking.noise import CounterNoise
from spikefa.spiking.spec import SpikingSpec, initial_state

FULL = (784, 1500, 1500, 1500, 10)


def gemm_peak_gflops(n: int = 2048, repeats: int = 5, xp=np) -> float:
    a = xp.asarray(np.random.default_rng(0).random((n, n), dtype=np.float32))
    b = xp.copy(a)
    a @ b
    best = min(_timed(lambda: a @ b, xp) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(f, xp=np) -> float:
    """Seconds for f(); on a GPU, until the device has finished the work f queued."""
    sync = (
        (lambda: None)
        if xp is np
        else getattr(xp, "synchronize", None) or xp.cuda.Device().synchronize
    )
    sync()
    t = time.perf_counter()
    f()
    sync()
    return time.perf_counter() - t


def array_backend(name: str, compile: bool | str = False, steps_per_call: int | None = None):
    """(array module, fast-engine ops) of the backend `name` (numpy, cupy or torch; `compile` and
    `steps_per_call`: the torch backend's compiled call, `TorchOps`)."""
    from spikefa.spiking import fast

    if name == "numpy":
        return np, fast.CpuOps()
    if name == "torch":
        from spikefa.spiking.torch_backend import TorchOps

        ops = TorchOps(compile, steps_per_call=steps_per_call)
        return ops.xp, ops
    from spikefa.arrays import import_cupy

    cupy = import_cupy()
    return cupy, fast.ArrayOps(cupy)


def _images(spec: SpikingSpec, n: int):
    rng = np.random.default_rng(0)
    return rng.random((n, spec.sizes[0]), dtype=np.float32), rng.integers(0, spec.sizes[-1], n)


def brian2_ms_per_step(
    spec: SpikingSpec, device: str, threads: int = 1, images: int = 4, profile: bool = False
) -> dict:
    """Build, run once to warm up, run again and time it. Build seconds: code generation and
    compilation — for standalone the build step, for runtime the first run less a timed run."""
    from spikefa.spiking.brian import STANDALONE, BrianNetwork

    net = BrianNetwork(spec, images, device, threads=threads, profile=profile)
    state = initial_state(spec)
    x, y = _images(spec, images)
    first = _timed(lambda: net.run(state, x, y))
    net.run(state, x, y)
    build = net.build_seconds if device in STANDALONE else first - net.last_run_seconds
    out = {
        "ms_per_step": 1e3 * net.last_run_seconds / (images * spec.steps_per_image),
        "build_seconds": round(build, 1),
    }
    if profile:
        out["profile"] = dict(list(net.profile_fractions().items())[:8])
    return out


def fast_stream_steps_per_s(
    spec: SpikingSpec,
    batch: int,
    images_per_stream: int = 2,
    backend: str = "numpy",
    repeats: int = 1,
    compile: bool | str = False,
    steps_per_call: int | None = None,
) -> float:
    """Stream-steps per second of the batched engine, learning on; the best of `repeats` timings
    (`compile`, `steps_per_call`: the torch backend's compiled call, `TorchOps`)."""
    from spikefa.spiking import fast

    xp, ops = array_backend(backend, compile, steps_per_call)
    state = fast.batch_state(spec, initial_state(spec), batch, xp)
    x, y = _images(spec, batch * images_per_stream)
    images, labels = (
        xp.asarray(x.reshape(batch, images_per_stream, -1)),
        xp.asarray(y.reshape(batch, -1)),
    )
    rng = noise_source(backend, 0)
    fast.run(
        spec, state, images[:, :1], labels[:, :1], rng=rng, ops=ops
    )  # warm-up (and GPU kernel builds)
    seconds = min(
        _timed(lambda: fast.run(spec, state, images, labels, rng=rng, ops=ops), xp)
        for _ in range(repeats)
    )
    return batch * images_per_stream * spec.steps_per_image / seconds


def matrix_products(spec: SpikingSpec, batch: int, images_per_stream: int = 2) -> dict:
    """The batched engine's matrix products inside its own step (NumPy backend, learning on): their
    share of the step's time and their rate in GFLOP/s, each product timed where the step calls it,
    with the shapes and memory layouts the step gives it. Their rate, against the peak of one large
    square product, is the most the step could reach by removing everything else."""
    from spikefa.spiking import fast

    class TimedOps(fast.CpuOps):
        seconds, flops = 0.0, 0

        def gemm(self, a, b, out, alpha=1.0, beta=0.0, trans_a=False):
            t = time.perf_counter()
            super().gemm(a, b, out, alpha, beta, trans_a)
            self.seconds += time.perf_counter() - t
            self.flops += 2 * out.size * (a.shape[0] if trans_a else a.shape[1])

    state = fast.batch_state(spec, initial_state(spec), batch)
    x, y = _images(spec, batch * images_per_stream)
    images, labels = x.reshape(batch, images_per_stream, -1), y.reshape(batch, -1)
    rng = noise_source("numpy", 0)
    fast.run(spec, state, images[:, :1], labels[:, :1], rng=rng)  # warm-up
    ops = TimedOps()
    step_seconds = _timed(lambda: fast.run(spec, state, images, labels, rng=rng, ops=ops))
    return {
        "products_share_of_step": ops.seconds / step_seconds,
        "products_gflops": ops.flops / ops.seconds / 1e9,
    }


def device_name() -> str:
    """The name of the device the torch backend runs on."""
    import torch

    from spikefa.spiking.torch_arrays import DEVICE

    return torch.cuda.get_device_name(DEVICE) if DEVICE.type == "cuda" else "CPU"


def noise_source(backend: str, seed: int):
    """The spike-noise generator training uses on `backend`."""
    if backend == "torch":
        from spikefa.spiking.torch_backend import TorchNoise

        return TorchNoise(seed)
    return (
        CounterNoise(seed)
        if backend == "numpy"
        else array_backend(backend)[0].random.default_rng(seed)
    )


def bench_spiking(
    batch: int = 50, devices=("runtime", "cpp_standalone"), backend: str = "numpy", scaling=()
) -> dict:
    """Brian2 on `devices` (none: skip) beside the fast engine on `backend` at batch 1, at `batch`
    and at each batch size in `scaling`; the matrix-multiply peak is that of the backend's
    device."""
    spec = default_spec()
    xp, _ = array_backend(backend)
    out = {
        "network": "-".join(map(str, FULL)),
        "reading": spec.reading,
        "steps_per_image": spec.steps_per_image,
        "backend": backend,
        "gemm_peak_gflops": round(gemm_peak_gflops(4096 if xp is not np else 2048, xp=xp), 1),
    }
    if backend == "cupy":
        out["gpu"] = xp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    elif backend == "torch":
        out["device"] = device_name()
    out.update(_brian2_figures(spec, devices))
    out["fast_stream_steps_per_s_batch1"] = round(
        fast_stream_steps_per_s(spec, 1, backend=backend), 1
    )
    rate = fast_stream_steps_per_s(spec, batch, backend=backend)
    gflops = rate * stream_step_flops(spec) / 1e9
    out.update(
        fast_stream_steps_per_s_batched=round(rate, 1),
        fast_batch_size=batch,
        fast_batched_gflops=round(gflops, 1),
        fast_batched_fraction_of_gemm_peak=round(gflops / out["gemm_peak_gflops"], 3),
        fast_epoch_seconds=round(60000 * spec.steps_per_image / rate, 1),
    )  # 60,000 images, learning on
    # larger batches: how far from the peak the step is once launches and latency amortise
    for b in scaling:
        r = fast_stream_steps_per_s(spec, b, images_per_stream=1, backend=backend)
        out[f"fast_stream_steps_per_s_batch{b}"] = round(r, 1)
        out[f"fast_batch{b}_fraction_of_gemm_peak"] = round(
            r * stream_step_flops(spec) / 1e9 / out["gemm_peak_gflops"], 3
        )
    best_brian2 = min(
        (v for k, v in out.items() if k.startswith("brian2_") and k.endswith("ms_per_step")),
        default=None,
    )
    if best_brian2:
        out["fast_batched_vs_brian2_best_per_stream_step"] = round(rate * best_brian2 / 1e3, 1)
        out["fast_batch1_vs_brian2_best"] = round(
            out["fast_stream_steps_per_s_batch1"] * best_brian2 / 1e3, 2
        )
    return out


def bench_switches(batch: int = 50, search: str = "biology", sizes=FULL, rounds: int = 3) -> dict:
    """Stream-steps per second of the batched engine (on the full network), learning on, under each
    candidate of a declared search (by default the biology switches, one at a time and all
    together), against its first candidate, all timed in one run.

    Parameters
    ----------
    batch : int
        Streams.
    search : str
        A shipped search (`spikefa/configs/searches/<search>.toml`) or a path to one.
    sizes : sequence of int
        The network.
    rounds : int
        Timings of each candidate, taking turns; the fastest counts.

    Returns
    -------
    dict
        `<label>_stream_steps_per_s` (the fastest of its rounds) and `<label>_vs_<first label>`
        for every candidate.
    """
    from spikefa import config, sweeps
    from spikefa.experiments.fig4_spiking import spec_for

    specs = {
        label or f"candidate{i + 1}": dataclasses.replace(
            spec_for(config.resolve("fig4_spiking", sets), "fa"), sizes=sizes
        )
        for i, (label, sets) in enumerate(sweeps.candidates(search))
    }
    rates = dict.fromkeys(specs, 0.0)
    for _ in range(rounds):  # candidates take turns, so that a slow spell of the machine hits all
        for label, spec in specs.items():
            rates[label] = max(rates[label], fast_stream_steps_per_s(spec, batch, 1))
    first = next(iter(rates))
    out = {"network": "-".join(map(str, sizes)), "batch": batch, "rounds": rounds}
    for label, rate in rates.items():
        out[f"{label}_stream_steps_per_s"] = round(rate, 1)
        out[f"{label}_vs_{first}"] = round(rate / rates[first], 3)
    return out


def _brian2_figures(spec: SpikingSpec, devices) -> dict:
    """Milliseconds per step and build seconds of Brian2 on `devices` (standalone: 1 and 2
    threads)."""
    out = {}
    if "runtime" in devices:
        r = brian2_ms_per_step(spec, "runtime", images=1)
        out.update(
            brian2_runtime_ms_per_step=round(r["ms_per_step"], 2),
            brian2_runtime_build_seconds=r["build_seconds"],
        )
    if "cpp_standalone" in devices:
        per_thread = {}
        for threads in (1, 2):
            r = brian2_ms_per_step(spec, "cpp_standalone", threads=threads, profile=threads == 1)
            per_thread[threads] = r
            out[f"brian2_standalone_{threads}thread_ms_per_step"] = round(r["ms_per_step"], 2)
            out[f"brian2_standalone_{threads}thread_build_seconds"] = r["build_seconds"]
        out["brian2_standalone_ms_per_step"] = round(
            min(r["ms_per_step"] for r in per_thread.values()), 2
        )
        out["brian2_standalone_profile"] = per_thread[1]["profile"]
    return out


def default_spec() -> SpikingSpec:
    """The network `spikefa run fig4_spiking` trains by default: the bench shares the config's
    defaults."""
    from spikefa import config
    from spikefa.experiments.fig4_spiking import spec_for

    return dataclasses.replace(spec_for(config.resolve("fig4_spiking"), "fa"), sizes=FULL)


def forward_flops(spec: SpikingSpec) -> float:
    """Multiply-adds ×2 of one stream-step with learning off: the forward products."""
    s = spec.sizes
    return 2.0 * sum(a * b for a, b in zip(s[:-1], s[1:]))


def stream_step_flops(spec: SpikingSpec) -> float:
    """Multiply-adds ×2 of one stream-step: forward, feedback and the weight update."""
    s = spec.sizes
    feedback = sum(s[spec.feedback_source(l)] * s[l] for l in range(1, spec.n_layers))
    return 2 * forward_flops(spec) + 2.0 * feedback


def rate_example_flops(sizes=(784, 1000, 10)) -> float:
    """Multiply-adds ×2 of one dense FA example: forward, modulators and the weight update."""
    weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return 2.0 * (2 * weights + sum(sizes[1:-1]) * sizes[-1])


def _torch_baseline():
    """The PyTorch baseline module, or None without PyTorch (its figures are then reported as null;
    `pip install 'spikefa[bench]'` adds it)."""
    try:
        from spikefa.baselines import torch_fa
    except ImportError:
        return None
    return torch_fa


def bench_rate(n_online: int = 20000, n_batch: int = 60000, data_dir=None) -> dict:
    torch_fa = _torch_baseline()
    from spikefa.data import load_images
    from spikefa.rate.network import Network

    data = load_images("mnist", data_dir)
    X = data.train_x[:n_batch].astype(np.float32)
    Y = np.eye(10, dtype=np.float32)[data.train_y[:n_batch]]

    def spikefa_rate(batch, n):
        return _rate_examples_per_s(Network, X, Y, batch, n)

    def torch_rate(batch, n):  # PyTorch's best of one and two threads, each reported
        if torch_fa is None:
            return None, None
        rates = {t: torch_fa.examples_per_s(X[:n], Y[:n], batch, threads=t) for t in (1, 2)}
        return {f"{t}thread": round(r) for t, r in rates.items()}, round(max(rates.values()))

    def ratio(ours, theirs):
        return round(ours / theirs, 2) if theirs else None

    out = {
        "network": "784-1000-10",
        "algorithm": "fa",
        "dtype": "float32",
        "gemm_peak_gflops": round(gemm_peak_gflops(), 1),
    }
    out["spikefa_online_ex_per_s"] = round(spikefa_rate(1, n_online))
    out["torch_online_by_threads"], out["torch_online_ex_per_s"] = torch_rate(1, n_online // 4)
    out["spikefa_batch100_ex_per_s"] = round(spikefa_rate(100, n_batch))
    out["torch_batch100_by_threads"], out["torch_batch100_ex_per_s"] = torch_rate(100, n_batch)
    out["online_vs_torch"] = ratio(out["spikefa_online_ex_per_s"], out["torch_online_ex_per_s"])
    out["batch100_vs_torch"] = ratio(
        out["spikefa_batch100_ex_per_s"], out["torch_batch100_ex_per_s"]
    )
    flops = rate_example_flops()
    out["batch100_fraction_of_gemm_peak"] = round(
        out["spikefa_batch100_ex_per_s"] * flops / 1e9 / out["gemm_peak_gflops"], 3
    )
    # Online, an example reads the W1 rows of its lit pixels for the forward pass and reads and
    # writes them again for the update, plus all of W2 three times: that traffic bounds the rate.
    lit = float(np.mean(np.count_nonzero(X[:n_online], axis=1)))
    per_example = 4 * (3 * lit * 1000 + 3 * 1000 * 10)
    out["online_bytes_per_example"] = round(per_example)
    out["online_weight_traffic_gb_per_s"] = round(
        out["spikefa_online_ex_per_s"] * per_example / 1e9, 1
    )
    return out


def _rate_examples_per_s(Network, X, Y, batch: int, n: int) -> float:
    """Examples per second of FA on the 784-1000-10 rate network, online (batch 1) or in batches."""
    net = Network(
        (784, 1000, 10),
        "fa",
        np.random.default_rng(0),
        np.random.default_rng(1),
        etas=1e-3,
        weight_decay=1e-6,
        dtype="float32",
    )

    def train(a, b):
        return net.train(a, b) if batch == 1 else net.train_batch(a, b, batch)

    train(X[:200], Y[:200])  # compile / warm up
    return n / _timed(lambda: train(X[:n], Y[:n]))
