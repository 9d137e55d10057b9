"""`spikefa bench spiking|rate`: side-by-side speed, measured in one run.

Rate engine: FA training of the 784-1000-10 MNIST network of Fig. 3 in examples per second, online
and in minibatches of 100, beside the same network and rule in PyTorch (`spikefa.baselines.torch_fa`).

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


def array_backend(name: str, compile: bool | str = False):
    """(array module, fast-engine ops) of the backend `name` (numpy, cupy or torch; `compile`: the
    torch backend's compiled step)."""
    from spikefa.spiking import fast

    if name == "numpy":
        return np, fast.CpuOps()
    if name == "torch":
        from spikefa.spiking.torch_backend import TorchOps

        ops = TorchOps(compile=compile)
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
) -> float:
    """Stream-steps per second of the batched engine, learning on; the best of `repeats` timings
    (`compile`: the torch backend's compiled step, `TorchOps`)."""
    from spikefa.spiking import fast

    xp, ops = array_backend(backend, compile)
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
    and at each batch size in `scaling`; the matrix-multiply peak is that of the backend's device."""
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
    for b in (
        scaling
    ):  # larger batches: how far from the peak the step is once launches and latency amortise
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


# A training epoch as the recipes run it: 50,000 training images, validation on the 10,000 held out
# and one alignment measurement per epoch, the figures redrawn and the checkpoints written once.
EPOCH_IMAGES, EPOCH_VALIDATION = 50000, 10000
EPOCH_RECIPE = "fig4_paper_fa"


def bench_epoch(images: int = 2000, data_dir=None, recipe: str = EPOCH_RECIPE, sizes=FULL) -> dict:
    """Train the full network under `recipe`'s first phase over `images` real MNIST training
    images, measuring validation on `images` held-out images, through the training loop itself
    (`fig4_spiking.run`) with every part timed; then scale each part to a real epoch: steps, spike
    noise and the loop's own overhead by EPOCH_IMAGES / images, validation by EPOCH_VALIDATION /
    images, alignment, figures and checkpoints (the latest and the selected network) once. The
    bound is the epoch's matrix-product FLOPs at the matrix-multiply peak measured in the same run."""
    import tempfile

    from spikefa import config
    from spikefa.experiments import fig4_spiking
    from spikefa.results import ResultsDir
    from spikefa.timing import Parts

    network = [f"sizes={list(sizes)}"]
    cfg = config.resolve(recipe, network)
    phase = fig4_spiking.schedule(cfg)[0]
    one_epoch = [
        *network,
        "test.images=100",
        f"schedule=[{{epochs = 1, eta = {phase['eta']}, steps_per_image = "
        f"{phase['steps_per_image']}, plasticity_delay = {phase['plasticity_delay']}}}]",
    ]

    def train(n: int, parts) -> None:
        sets = [*one_epoch, f"train.images={n}", f"validation.images={n}"]
        with tempfile.TemporaryDirectory() as tmp:
            fig4_spiking.run(
                config.resolve(recipe, sets), ResultsDir(tmp), data_dir=data_dir, parts=parts
            )

    peak = gemm_peak_gflops()
    train(cfg["batch"] * 2, Parts())  # compiles (or loads) every kernel the loop uses
    parts = Parts()
    train(images, parts)
    spec = fig4_spiking.phase_spec(cfg, "fa", phase)
    step_rate = fast_stream_steps_per_s(spec, cfg["batch"], repeats=5)
    peak = max(peak, gemm_peak_gflops())
    per_image, per_val = EPOCH_IMAGES / images, EPOCH_VALIDATION / images
    scale = {
        "training/steps": per_image,
        "training/steps/spike noise": per_image,
        "training": per_image,
        "training/validation": per_val,
        "training/validation/spike noise": per_val,
    }
    names = {"training/steps": "steps", "training": "other", "training/validation": "validation"}
    seconds: dict = {}
    for key, s in parts.seconds.items():
        if key.startswith("training"):
            name = (
                "spike noise" if key.endswith("spike noise") else names.get(key, key.split("/")[-1])
            )
            seconds[name] = seconds.get(name, 0.0) + s * scale.get(key, 1.0)
    epoch = sum(seconds.values())
    T = spec.steps_per_image
    flops = EPOCH_IMAGES * T * stream_step_flops(spec) + EPOCH_VALIDATION * T * forward_flops(spec)
    step_gflops = step_rate * stream_step_flops(spec) / 1e9
    return {
        "network": "-".join(map(str, spec.sizes)),
        "recipe": recipe,
        "steps_per_image": T,
        "streams": cfg["batch"],
        "images_timed": images,
        "epoch_seconds": round(epoch, 1),
        "epoch_flops": flops,
        "gemm_peak_gflops": round(peak, 1),
        "epoch_over_bound": round(epoch / (flops / (peak * 1e9)), 3),
        "shares": {
            k: round(v / epoch, 4) for k, v in sorted(seconds.items(), key=lambda kv: -kv[1])
        },
        "fast_batched_gflops": round(step_gflops, 1),
        "fast_batched_fraction_of_gemm_peak": round(step_gflops / peak, 3),
        "threads": blas_threads(),
    }


def blas_threads() -> int | None:
    from threadpoolctl import threadpool_info

    return max(
        (p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"), default=None
    )


def default_spec() -> SpikingSpec:
    """The network `spikefa run fig4_spiking` trains by default: the bench shares the config's defaults."""
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
        net = Network(
            (784, 1000, 10),
            "fa",
            np.random.default_rng(0),
            np.random.default_rng(1),
            etas=1e-3,
            weight_decay=1e-6,
            dtype="float32",
        )
        train = (
            (lambda a, b: net.train(a, b))
            if batch == 1
            else (lambda a, b: net.train_batch(a, b, batch))
        )
        train(X[:200], Y[:200])  # compile / warm up
        return n / _timed(lambda: train(X[:n], Y[:n]))

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


# ------------------------------------------------------------------------------------ GPU run
GPU_STREAMS = (50, 200, 1000)
GPU_SHIPPED = "fig4_paper_fa"  # the network the run's training stage continues
GPU_DRY = (784, 32, 32, 32, 10)  # the dry run's network: the shipped one's depth


def bench_gpu(out, dry_run: bool = False, minutes: float = 12.0, data_dir=None) -> dict:
    """The prepared GPU run of the torch backend, in order: (a) its conformance with the NumPy
    engine on a small network, float64 and float32, every feedback mode that can share uniforms;
    (b) stream-steps/s of the full network at GPU_STREAMS streams, plain and compiled, in float32
    and TF32, beside the matrix-product peak of each precision measured in the same run; (c) one
    epoch's time, estimated as the step rate × the steps of EPOCH_IMAGES images; (d) for what is
    left of `minutes`, training that continues the shipped network GPU_SHIPPED on MNIST, with
    float16 checkpoints (< 16 MB) written to `out`. Writes `gpu.json` and `gpu.png` (stream-steps/s
    against streams, beside the peak) into `out`. `dry_run`: a tiny network and one or two stream
    counts, every stage once, on whichever device PyTorch finds (the CPU here), in seconds."""
    import json
    from pathlib import Path

    import torch

    from spikefa.spiking import torch_arrays

    start = time.monotonic()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sizes, streams = (GPU_DRY, (4, 16)) if dry_run else (FULL, GPU_STREAMS)
    result: dict = {
        "device": device_name(),
        "torch": torch.__version__,
        "dry_run": dry_run,
        "network": "-".join(map(str, sizes)),
    }
    result["conformance"] = gpu_conformance()
    spec = dataclasses.replace(default_spec(), sizes=sizes)
    result["steps_per_image"] = spec.steps_per_image
    result["stream_step_flops"] = stream_step_flops(spec)
    rates: dict = {}
    for precision in ("float32", "tf32"):
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        n = 512 if dry_run or torch_arrays.DEVICE.type != "cuda" else 8192
        result[f"gemm_peak_gflops_{precision}"] = round(gemm_peak_gflops(n, xp=torch_arrays), 1)
        # the dry run on a CPU captures the compiled step without generating C++ (inductor: ~1 min)
        compiler = "aot_eager" if dry_run and torch_arrays.DEVICE.type == "cpu" else True
        for compiled in (False, compiler) if precision == "tf32" else (False,):
            key = f"{precision}{'_compiled' if compiled else ''}"
            rates[key] = {}
            for b in streams:
                try:
                    r = fast_stream_steps_per_s(
                        spec, b, images_per_stream=1, backend="torch", repeats=2, compile=compiled
                    )
                except Exception as exc:  # a compiler failure costs this row only
                    rates[key] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
                    break
                rates[key][b] = round(r, 1)
    result["stream_steps_per_s"] = rates
    best = max(
        ((k, b, r) for k, row in rates.items() for b, r in row.items() if b != "error"),
        key=lambda t: t[2],
    )
    peak = result[f"gemm_peak_gflops_{best[0].split('_')[0]}"]
    result["best"] = {
        "setting": best[0],
        "streams": best[1],
        "stream_steps_per_s": best[2],
        "fraction_of_gemm_peak": round(best[2] * stream_step_flops(spec) / 1e9 / peak, 3),
    }
    steps = EPOCH_IMAGES * spec.steps_per_image
    result["epoch_seconds_estimated"] = {
        "how": f"{EPOCH_IMAGES} images x {spec.steps_per_image} steps / stream-steps per second",
        **{
            f"{k}_{b}streams": round(steps / r, 1)
            for k, row in rates.items()
            for b, r in row.items()
            if b != "error"
        },
    }
    result["setup_seconds"] = round(time.monotonic() - start, 1)
    left = 60 * minutes - (time.monotonic() - start)
    result["training"] = gpu_training(out, dry_run, left, data_dir)
    result["seconds"] = round(time.monotonic() - start, 1)
    (out / "gpu.json").write_text(json.dumps(result, indent=1) + "\n")
    _plot_gpu(result, spec, out / "gpu.png")
    return result


def gpu_conformance(sizes=(20, 16, 12, 10), batch: int = 4, images: int = 6) -> dict:
    """Largest differences between the torch backend (on its device) and the NumPy engine over the
    same run on the same uniforms, per dtype and feedback mode, and whether they are within
    tolerance (float64: 1e-10 relative; float32: 1e-5 absolute)."""
    from spikefa.arrays import to_numpy
    from spikefa.spiking import fast, torch_backend
    from spikefa.spiking.spec import MODES

    out = {}
    for dtype, tol in (("float64", 1e-10), ("float32", 1e-5)):
        for mode in (m for m, v in MODES.items() if not v.redraw):
            spec = SpikingSpec(sizes=sizes, steps_per_image=5, eta=0.05, feedback=mode, dtype=dtype)
            rng = np.random.default_rng(0)
            x = rng.random((batch, images, sizes[0])).astype(dtype)
            y = rng.integers(0, sizes[-1], (batch, images))
            u = [rng.random((batch, images * 5, n)).astype(dtype) for n in sizes[:-1]]
            states = []
            for ops in (fast.CpuOps(), torch_backend.TorchOps()):
                xp = ops.xp
                state = fast.batch_state(spec, initial_state(spec), batch, xp)
                args = (xp.asarray(x), xp.asarray(y))
                fast.run(spec, state, *args, uniforms=[xp.asarray(a) for a in u], ops=ops)
                states.append({k: to_numpy(v).astype(np.float64) for k, v in state.items()})
            diff = max(
                float(
                    np.max(np.abs(states[1][k] - v) / (1 if dtype == "float32" else 1 + np.abs(v)))
                )
                for k, v in states[0].items()
            )
            out[f"{dtype}_{mode}"] = {"max_difference": diff, "ok": diff <= tol}
    out["all_ok"] = all(v["ok"] for v in out.values())
    return out


def gpu_training(out, dry_run: bool, seconds: float, data_dir=None) -> dict:
    """Continue the shipped network GPU_SHIPPED on MNIST with the torch backend for `seconds`
    (a dry run: a tiny network from its initial state, a few hundred images), scoring the first
    validation images before and after; float16 checkpoints of the state (to resume) go to `out`."""
    from pathlib import Path

    from spikefa.data import load_images
    from spikefa.shipped import checkpoint_path
    from spikefa.spiking.spec import eta_in_force, load_checkpoint, save_checkpoint
    from spikefa.spiking.training import FastRunner, evaluate

    spec, state, meta = load_checkpoint(checkpoint_path(GPU_SHIPPED))
    eta = eta_in_force(spec, meta)
    batch, n_val, chunk = (4, 40, 40) if dry_run else (meta.get("batch", 50), 2000, 5000)
    if dry_run:
        spec = dataclasses.replace(spec, sizes=GPU_DRY)
        state = initial_state(spec)
    data = load_images("mnist", data_dir).holdout(EPOCH_VALIDATION)
    runner = FastRunner(spec, chunk, batch=batch, backend="torch")
    val = (data.val_x[:n_val], data.val_y[:n_val])
    before = evaluate(runner, state, *val)
    state = runner.prepare(state)
    deadline = time.monotonic() + seconds - (5 if dry_run else 90)  # keep time to score and save
    shown, saved, last_save = 0, [], time.monotonic()
    order = np.random.default_rng(spec.seed).permutation(len(data.train_x))
    while time.monotonic() < deadline or shown == 0:
        idx = order[np.arange(shown, shown + chunk) % len(order)]
        state, _ = runner.run(state, data.train_x[idx], data.train_y[idx], eta=eta)
        shown += chunk
        if dry_run or time.monotonic() - last_save > 300 or time.monotonic() >= deadline:
            path = Path(out) / f"{GPU_SHIPPED}_continued.npz"
            meta_now = {"images_continued": shown, "random_state": runner.random_state()}
            save_checkpoint(path, spec, runner.export(state), meta_now, store_dtype="float16")
            saved.append(path.name)
            last_save = time.monotonic()
        if dry_run:
            break
    after = evaluate(runner, runner.export(state), *val)
    return {
        "continued": "tiny network (dry run)" if dry_run else GPU_SHIPPED,
        "streams": batch,
        "eta": eta,
        "images": shown,
        "validation_images": n_val,
        "validation_error_before": before,
        "validation_error_after": after,
        "checkpoint": saved[-1],
        "checkpoint_mb": round((Path(out) / saved[-1]).stat().st_size / 1e6, 1),
    }


def _plot_gpu(result: dict, spec: SpikingSpec, path) -> None:
    """Stream-steps/s against streams per setting, beside each precision's peak bound."""
    from spikefa.plotting import plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for key, row in result["stream_steps_per_s"].items():
        points = [(int(b), r) for b, r in row.items() if b != "error"]
        if points:
            ax.plot(*zip(*points), "o-", label=key)
    for precision, style in (("float32", ":"), ("tf32", "--")):
        bound = result[f"gemm_peak_gflops_{precision}"] * 1e9 / stream_step_flops(spec)
        ax.axhline(bound, color="gray", ls=style, label=f"{precision} matrix-product peak")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="streams",
        ylabel="stream-steps / s",
        title=f"{result['device']}: {result['network']}",
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
