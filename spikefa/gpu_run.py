"""`spikefa bench gpu`: the prepared run of the torch backend on a GPU (`--dry-run`: the CPU, a tiny
network, every stage once)."""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from spikefa.bench import (
    FULL,
    default_spec,
    device_name,
    fast_stream_steps_per_s,
    gemm_peak_gflops,
    stream_step_flops,
)
from spikefa.epoch_profile import EPOCH_IMAGES, EPOCH_VALIDATION
from spikefa.spiking.spec import SpikingSpec, initial_state

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
