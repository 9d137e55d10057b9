"""`spikefa bench gpu`: the prepared run of the torch backend on a GPU (`--dry-run`: the CPU, a tiny
network, every stage once).

Stages, in order, each in a function of its own: conformance with the NumPy engine on the device;
stream-steps/s against the matrix-product peak measured in the same run; an epoch's time; training
with the time left; Brian2's own GPU device where time is left and brian2cuda imports. Everything
is written to one folder: `gpu.json` (every figure), `gpu.png` and `gpu.md` (a figure and a table
titled with the device, for the performance page) and the checkpoints of what was trained.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from pathlib import Path

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
from spikefa.errors import SpikefaError
from spikefa.spiking.spec import SpikingSpec, initial_state

GPU_STREAMS = (50, 200, 1000)
GPU_DRY = (784, 32, 32, 32, 10)  # the dry run's network: the shipped one's depth
# the most steps one compiled call unrolls (compile time grows with it): 100 steps per image take 10
# calls; a dry run compiles calls of 2 steps, the same code in a smaller graph
STEPS_PER_CALL, DRY_STEPS_PER_CALL = 10, 2
# (precision, how, streams): the eager step (launch-bound, as before) as the baseline, an image per
# compiled call at every size, and in strict float32 where the peak matters most
SETTINGS = (
    ("float32", "steps", (50,)),
    ("tf32", "image", GPU_STREAMS),
    ("float32", "image", (1000,)),
)
# the literal reading of the time constant (×0.9 per step, 100 steps per image): "fig4_decay_fa"
DECAY_LANE = (
    "fig4_paper_fa",
    ["reading=decay", "schedule=[{epochs = 100, eta = 1e-4, steps_per_image = 100}]"],
)
BRIAN2_SECONDS = 150  # kept back for the Brian2 stage where it will run


class Clock:
    """The run's budget: seconds left of `minutes` since it started."""

    def __init__(self, minutes: float):
        self.end = time.monotonic() + 60 * minutes
        self.start = time.monotonic()

    def left(self) -> float:
        return self.end - time.monotonic()

    def elapsed(self) -> float:
        return round(time.monotonic() - self.start, 1)

    @contextlib.contextmanager
    def stage(self, name: str, seconds: dict):
        """Record the wall seconds of a stage in `seconds[name]`."""
        t = time.monotonic()
        yield
        seconds[name] = round(time.monotonic() - t, 1)


def bench_gpu(
    out,
    dry_run: bool = False,
    minutes: float = 12.0,
    data_dir=None,
    resume=None,
    brian2_wheels=None,
) -> dict:
    """The prepared GPU run of the torch backend, in order: `gpu_conformance`, `gpu_rates`,
    `gpu_epoch`, `gpu_training` (for what is left of `minutes`: the literal reading DECAY_LANE from
    its start, or the lane whose checkpoint `resume` names) and `gpu_brian2` (where time is left
    and brian2cuda imports, or can be installed from the wheels in `brian2_wheels`). Writes
    `gpu.json`, `gpu.png`, `gpu.md` and the checkpoints into `out`; returns what `gpu.json` holds.
    `dry_run`: a tiny network, every stage once, on whichever device PyTorch finds (the CPU
    here)."""
    import torch

    if resume is not None and not Path(resume).is_file():
        raise SpikefaError(f"--resume {resume}: no such checkpoint")
    if brian2_wheels is not None and not Path(brian2_wheels).is_dir():
        raise SpikefaError(f"--brian2-wheels {brian2_wheels}: no such folder")
    clock, out = Clock(minutes), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec = dataclasses.replace(default_spec(), sizes=GPU_DRY if dry_run else FULL)
    result: dict = {"device": device_name(), "torch": torch.__version__, "dry_run": dry_run}
    result.update(network="-".join(map(str, spec.sizes)), steps_per_image=spec.steps_per_image)
    stages = result["stage_seconds"] = {}
    with clock.stage("conformance", stages):
        result["conformance"] = gpu_conformance(compiler(dry_run))
    with clock.stage("rates", stages):
        result.update(gpu_rates(spec, dry_run, clock))
    with clock.stage("epoch", stages):
        result["epoch"] = gpu_epoch(spec, result, dry_run, data_dir)
    brian2 = dry_run or brian2_wheels is not None or _imports("brian2cuda")
    with clock.stage("training", stages):
        seconds = clock.left() - (BRIAN2_SECONDS if brian2 and not dry_run else 0)
        result["training"] = gpu_training(out, dry_run, seconds, data_dir, resume)
    with clock.stage("brian2", stages):
        result["brian2"] = gpu_brian2(dry_run, clock.left(), brian2_wheels) if brian2 else None
    result["seconds"] = clock.elapsed()
    (out / "gpu.json").write_text(json.dumps(result, indent=1) + "\n")
    _plot_gpu(result, spec, out / "gpu.png")
    (out / "gpu.md").write_text(gpu_table(result))
    return result


def compiler(dry_run: bool):
    """torch.compile's compiler: inductor, except in a dry run on a CPU, where "aot_eager" captures
    the same graph without generating C++ (a minute or more there)."""
    from spikefa.spiking import torch_arrays

    return "aot_eager" if dry_run and torch_arrays.DEVICE.type == "cpu" else True


def steps_per_call(spec: SpikingSpec, dry_run: bool) -> int:
    """Steps per compiled call: an image, up to STEPS_PER_CALL (a dry run: DRY_STEPS_PER_CALL)."""
    return min(spec.steps_per_image, DRY_STEPS_PER_CALL if dry_run else STEPS_PER_CALL)


def _imports(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


# ------------------------------------------------------------------------------- conformance
def gpu_conformance(compile=True, sizes=(20, 16, 12, 10), batch: int = 4, images: int = 6) -> dict:
    """Largest differences between the torch backend (on its device) and the NumPy engine over the
    same run, spike noise from the generator both share: per dtype, every feedback mode step by
    step, and fa with each image as one compiled call (`compile`: torch.compile's compiler). Within
    tolerance: float64 1e-10 relative, float32 1e-5 absolute."""
    from spikefa.spiking import fast, torch_backend
    from spikefa.spiking.noise import CounterNoise
    from spikefa.spiking.spec import MODES

    out = {}
    for dtype, tol in (("float64", 1e-10), ("float32", 1e-5)):
        cases = [(m, torch_backend.TorchOps()) for m in MODES]
        cases.append(("fa_image_call", torch_backend.TorchOps(compile, steps_per_call=5)))
        for name, ops in cases:
            mode = name.removesuffix("_image_call")
            spec = SpikingSpec(sizes=sizes, steps_per_image=5, eta=0.05, feedback=mode, dtype=dtype)
            rng = np.random.default_rng(0)
            x = rng.random((batch, images, sizes[0])).astype(dtype)
            y = rng.integers(0, sizes[-1], (batch, images))
            ref = _run_states(spec, fast.CpuOps(), CounterNoise(1), x, y)
            got = _run_states(spec, ops, torch_backend.TorchNoise(1), x, y)
            diff = max(
                float(np.max(np.abs(got[k] - v) / (1 + np.abs(v) if dtype == "float64" else 1)))
                for k, v in ref.items()
            )
            out[f"{dtype}_{name}"] = {"max_difference": diff, "ok": diff <= tol}
    out["all_ok"] = all(v["ok"] for v in out.values())
    return out


def _run_states(spec: SpikingSpec, ops, rng, x, y) -> dict:
    """The state (float64 on the host) after a run of `ops` from the spec's initial state."""
    from spikefa.arrays import to_numpy
    from spikefa.spiking import fast

    xp = ops.xp
    state = fast.batch_state(spec, initial_state(spec), x.shape[0], xp)
    fast.run(spec, state, xp.asarray(x), xp.asarray(y), rng=rng, ops=ops)
    return {k: to_numpy(v).astype(np.float64) for k, v in state.items()}


# ------------------------------------------------------------------------------- speed
def gpu_rates(spec: SpikingSpec, dry_run: bool, clock: Clock) -> dict:
    """The float32 and TF32 matrix-product peaks, then stream-steps/s of `spec` per SETTINGS row
    (a dry run: 4 streams), each with the seconds it took (a compiled row's first size
    includes compiling), skipped where less than a minute is left; the best row against its peak."""
    import torch

    from spikefa.spiking import torch_arrays

    cuda = torch_arrays.DEVICE.type == "cuda"
    result: dict = {"stream_step_flops": stream_step_flops(spec)}
    for precision in ("float32", "tf32"):
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        n = 8192 if cuda and not dry_run else 512
        result[f"gemm_peak_gflops_{precision}"] = round(gemm_peak_gflops(n, xp=torch_arrays), 1)
    rates, seconds = {}, {}
    for precision, how, streams in SETTINGS:
        key = f"{precision}_{how}"
        rates[key], seconds[key] = {}, {}
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        if cuda:
            torch._dynamo.reset()  # a CUDA graph keeps the products of the precision it recorded
        image = {"compile": compiler(dry_run), "steps_per_call": steps_per_call(spec, dry_run)}
        for b in (4,) if dry_run else streams:
            if clock.left() < 60 and not dry_run:
                rates[key]["skipped"] = "less than a minute left"
                break
            t = time.monotonic()
            try:
                kw = image if how == "image" else {}
                r = fast_stream_steps_per_s(spec, b, 2, "torch", repeats=3, **kw)
            except Exception as exc:  # a compiler failure costs this row only
                rates[key]["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
                break
            rates[key][b], seconds[key][b] = round(r, 1), round(time.monotonic() - t, 1)
    torch.backends.cuda.matmul.allow_tf32 = False
    result.update(stream_steps_per_s=rates, seconds_per_measurement=seconds)
    result["best"] = _best(rates, result, spec)
    return result


def _best(rates: dict, result: dict, spec: SpikingSpec) -> dict:
    """The fastest measured row and size, as a fraction of its precision's matrix-product peak."""
    found = [(k, b, r) for k, row in rates.items() for b, r in row.items() if isinstance(b, int)]
    if not found:
        return {}
    key, streams, rate = max(found, key=lambda t: t[2])
    peak = result[f"gemm_peak_gflops_{key.split('_')[0]}"]
    return {
        "setting": key,
        "streams": streams,
        "stream_steps_per_s": rate,
        "fraction_of_gemm_peak": round(rate * stream_step_flops(spec) / 1e9 / peak, 3),
    }


def _rate_at_50(result: dict) -> float | None:
    """The measured stream-steps/s of an image per call at the fewest streams."""
    row = result["stream_steps_per_s"].get("tf32_image", {})
    sizes = sorted(b for b in row if isinstance(b, int))
    return row[sizes[0]] if sizes else None


def gpu_epoch(spec: SpikingSpec, result: dict, dry_run: bool, data_dir=None) -> dict:
    """Training on MNIST with 50 streams (a dry run: 4), each image one compiled call, timed over
    all EPOCH_IMAGES training images where the measured rate says they take under a minute, else
    over the share that does, and scaled to an epoch."""
    from spikefa.data import load_images
    from spikefa.spiking.training import FastRunner

    batch = 4 if dry_run else 50
    rate = _rate_at_50(result) or 1.0
    per_minute = int(60 * rate / spec.steps_per_image)
    n = 4 * batch if dry_run else min(EPOCH_IMAGES, max(batch, per_minute - per_minute % batch))
    data = load_images("mnist", data_dir).holdout(EPOCH_VALIDATION)
    x, y = data.train_x[:n].astype(spec.dtype), data.train_y[:n]
    steps = steps_per_call(spec, dry_run)
    runner = FastRunner(spec, n, batch, "torch", compile=compiler(dry_run), steps_per_call=steps)
    state = runner.prepare(initial_state(spec))
    state, _ = runner.run(state, x[:batch], y[:batch])  # compiles (or finds) the call
    t = time.perf_counter()
    runner.run(state, x, y)  # returns the read-outs on the host: the device has finished
    seconds = time.perf_counter() - t
    return {
        "images": n,
        "streams": batch,
        "seconds": round(seconds, 2),
        "epoch_seconds": round(seconds * EPOCH_IMAGES / n, 1),
        "how": f"{n} of {EPOCH_IMAGES} training images timed, scaled to {EPOCH_IMAGES}",
    }


# ------------------------------------------------------------------------------- training
def gpu_training(out, dry_run: bool, seconds: float, data_dir=None, resume=None) -> dict:
    """Train for `seconds` with 50 streams, each image in compiled calls of STEPS_PER_CALL steps:
    the lane whose checkpoint `resume` names, continued at its learning rate in force and its own
    image order, or else DECAY_LANE from its start (a dry run: a tiny network, a few images). The
    first validation images are scored before and after; float16 checkpoints (< 16 MB) that
    `spikefa run --resume` or this stage continue are written to `out` every five minutes."""
    from spikefa.data import load_images
    from spikefa.spiking.training import FastRunner, evaluate

    name, spec, state, meta = _lane(dry_run, resume)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    chunk = 40 if dry_run else 5000
    data = load_images("mnist", data_dir).holdout(meta["config"]["train"]["validation"])
    steps = steps_per_call(spec, dry_run)
    batch = 4 if dry_run else meta["config"]["batch"]
    runner = FastRunner(
        spec, chunk, batch, "torch", compile=compiler(dry_run), steps_per_call=steps
    )
    runner.restore_random_state(meta.get("random_state"))
    n_val = 40 if dry_run else 2000
    val = (data.val_x[:n_val].astype(spec.dtype), data.val_y[:n_val])
    before = evaluate(runner, state, *val)
    state, seen0 = runner.prepare(state), meta["images_seen"]
    deadline = time.monotonic() + seconds - (5 if dry_run else 60)  # time to score and save
    last_save = time.monotonic()
    while time.monotonic() < deadline or meta["images_seen"] == seen0:
        idx = _next_images(meta, len(data.train_x), chunk)
        state, _ = runner.run(state, data.train_x[idx].astype(spec.dtype), data.train_y[idx])
        meta["images_seen"] += len(idx)
        meta["train_steps"] += len(idx) * spec.steps_per_image
        if time.monotonic() - last_save > 300:
            _save_lane(out / name, spec, runner, state, meta, len(data.train_x))
            last_save = time.monotonic()
        if dry_run:
            break
    path = _save_lane(out / name, spec, runner, state, meta, len(data.train_x))
    return {
        "lane": name,
        "steps_per_image": spec.steps_per_image,
        "streams": batch,
        "images": meta["images_seen"] - seen0,
        "epochs_trained": round(meta["images_seen"] / len(data.train_x), 3),
        "validation_images": len(val[0]),
        "validation_error_before": before,
        "validation_error_after": evaluate(runner, runner.export(state), *val),
        "checkpoint": path.name,
        "checkpoint_mb": round(path.stat().st_size / 1e6, 1),
    }


def _lane(dry_run: bool, resume=None):
    """(file name, spec, state, meta) of the lane to train: a checkpoint's, or DECAY_LANE's
    start."""
    from spikefa import config
    from spikefa.spiking.recipe import phase_spec, recipe, schedule
    from spikefa.spiking.spec import load_checkpoint

    if resume is not None:
        spec, state, meta = load_checkpoint(resume)
        if "config" not in meta or "images_seen" not in meta:
            raise SpikefaError(f"--resume {resume}: not the checkpoint of a training run's lane")
        meta.setdefault("train_steps", 0)
        return Path(resume).name, spec, state, meta
    name, overrides = DECAY_LANE
    cfg = config.resolve(name, overrides + (["sizes=[784, 32, 32, 32, 10]"] if dry_run else []))
    mode = cfg["algorithms"][0]
    spec = phase_spec(cfg, mode, schedule(cfg)[0])
    meta = {"images_seen": 0, "train_steps": 0, "curve": [], "best": None, "wall_seconds": 0.0}
    meta.update(recipe=recipe(cfg, mode), config={"name": "fig4_decay_fa", **cfg}, phase=1)
    return f"fig4_decay_{mode}.npz", spec, initial_state(spec), meta


def _next_images(meta: dict, n_train: int, chunk: int) -> np.ndarray:
    """The next training images of a lane, in the training loop's order (an epoch's permutation
    from the seed), up to the end of the epoch."""
    from spikefa.seeds import stream

    epoch, lo = divmod(meta["images_seen"], n_train)
    perm = stream(meta["config"]["seed"], "order", epoch).permutation(n_train)
    return perm[lo : lo + chunk]


def _save_lane(path: Path, spec, runner, state, meta: dict, n_train: int) -> Path:
    """The lane's checkpoint, its weights in float16 (< 16 MB for the full network)."""
    from spikefa.spiking.spec import save_checkpoint

    meta.update(epoch=meta["images_seen"] / n_train, random_state=runner.random_state())
    meta.update(engine="fast", finished=False, epochs_trained=meta["epoch"])
    save_checkpoint(path, spec, runner.export(state), meta, store_dtype="float16")
    return path


# ------------------------------------------------------------------------------- Brian2
def gpu_brian2(dry_run: bool, seconds: float, wheels=None) -> dict:
    """Brian2's own GPU device, cuda_standalone through brian2cuda, on the full network: ms per
    step and its build time. brian2cuda is installed first from the wheels in `wheels` where given
    (`pip install --no-index`; nvcc builds the network). A dry run takes the same path with
    cpp_standalone on the tiny network, and only asks pip what it would install."""
    import subprocess
    import sys

    from spikefa.bench import brian2_ms_per_step

    if seconds < (0 if dry_run else BRIAN2_SECONDS - 30):
        return {"skipped": f"{seconds:.0f} s left"}
    out: dict = {"device": "cpp_standalone" if dry_run else "cuda_standalone"}
    if wheels is not None:
        pip = [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(wheels)]
        done = subprocess.run(
            pip + (["--dry-run"] if dry_run else []) + ["brian2cuda"],
            capture_output=True,
            text=True,
        )
        out["install"] = (done.stdout + done.stderr).strip().splitlines()[-1:]
    if not dry_run and not _imports("brian2cuda"):
        return {**out, "skipped": "brian2cuda does not import"}
    sizes = GPU_DRY if dry_run else FULL
    spec = dataclasses.replace(default_spec(), sizes=sizes)
    try:
        out.update(brian2_ms_per_step(spec, out["device"], images=2))
    except Exception as exc:  # a failed build costs this stage only
        return {**out, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    out["stream_steps_per_s"] = round(1e3 / out["ms_per_step"], 1)
    return out


# ------------------------------------------------------------------------------- figures
def gpu_table(result: dict) -> str:
    """A Markdown section of the run, titled with the device, for the performance page."""
    rows = result["stream_steps_per_s"]
    sizes = sorted({b for row in rows.values() for b in row if isinstance(b, int)})
    peak = {p: result[f"gemm_peak_gflops_{p}"] for p in ("float32", "tf32")}
    flops = result["stream_step_flops"]
    lines = [
        f"### {result['device']}: the {result['network']} network, stream-steps/s",
        "",
        "| setting | " + " | ".join(f"{b} streams" for b in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for key, row in rows.items():
        cells = [
            f"{row[b]:,.0f} ({row[b] * flops / 1e9 / peak[key.split('_')[0]]:.0%} of peak)"
            if b in row
            else "—"
            for b in sizes
        ]
        lines.append(f"| {key.replace('_', ', ')} | " + " | ".join(cells) + " |")
    e, t = result["epoch"], result["training"]
    lines += [
        "",
        f"Matrix-product peak: float32 {peak['float32']:,.0f} GFLOP/s, TF32 {peak['tf32']:,.0f} "
        f"GFLOP/s. An epoch ({EPOCH_IMAGES:,} images, {result['steps_per_image']} steps each, "
        f"{e['streams']} streams): {e['epoch_seconds']} s. Trained: {t['lane']}, {t['images']:,} "
        f"images at {t['steps_per_image']} steps per image; validation error "
        f"{t['validation_error_before']:.2%} → {t['validation_error_after']:.2%} "
        f"(first {t['validation_images']:,} validation images).",
        "",
    ]
    return "\n".join(lines)


def _plot_gpu(result: dict, spec: SpikingSpec, path) -> None:
    """Stream-steps/s against streams per setting, beside each precision's peak bound."""
    from spikefa.plotting import plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for key, row in result["stream_steps_per_s"].items():
        points = [(b, r) for b, r in row.items() if isinstance(b, int)]
        if points:
            ax.plot(*zip(*points), "o-", label=key.replace("_", ", "))
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
