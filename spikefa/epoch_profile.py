"""`spikefa bench spiking --epoch`: a training epoch of the spiking network, part by part.

The training loop itself runs a slice of real MNIST with every part timed (`spikefa.timing`), and
each part is scaled to a real epoch; the epoch is set against its arithmetic bound, the
matrix-product FLOPs at the matrix-multiply peak measured in the same run.
"""

from __future__ import annotations

from spikefa.bench import (
    FULL,
    fast_stream_steps_per_s,
    forward_flops,
    gemm_peak_gflops,
    matrix_products,
    stream_step_flops,
)

# A training epoch as the recipes run it: 50,000 training images, validation on the 10,000 held out
# and one alignment measurement per epoch, the figures redrawn and the checkpoints written once.
EPOCH_IMAGES, EPOCH_VALIDATION = 50000, 10000
EPOCH_RECIPE = "fig4_paper_fa"


def bench_epoch(
    images: int = 2000, data_dir=None, recipe: str = EPOCH_RECIPE, sizes=FULL, steps_per_image=10
) -> dict:
    """Train the full network under `recipe`'s first phase (at `steps_per_image`, so that profiles
    of recipes that differ in it compare) over `images` real MNIST training
    images, measuring validation on `images` held-out images, through the training loop itself
    (`fig4_spiking.run`) with every part timed; then scale each part to a real epoch: steps, spike
    noise and the loop's own overhead by EPOCH_IMAGES / images, validation by EPOCH_VALIDATION /
    images, alignment, figures and checkpoints (the latest and the selected network) once. The
    bound is the epoch's matrix-product FLOPs at the matrix-multiply peak measured in the same
    run."""
    import tempfile

    from spikefa import config
    from spikefa.experiments import fig4_spiking
    from spikefa.results import ResultsDir
    from spikefa.timing import Parts

    cfg = config.resolve(recipe, [f"sizes={list(sizes)}"])
    phase = {**fig4_spiking.schedule(cfg)[0], "steps_per_image": steps_per_image}
    one_epoch = _first_phase_for_one_epoch(sizes, phase)

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
    products = matrix_products(spec, cfg["batch"])
    peak = max(peak, gemm_peak_gflops())
    seconds = epoch_parts(parts.seconds, images)
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
        # the step's own matrix products (their shapes: 50 rows, or rank-50 updates) against the
        # peak
        "step_products_fraction_of_gemm_peak": round(products["products_gflops"] / peak, 3),
        "step_products_share_of_step": round(products["products_share_of_step"], 3),
        "threads": blas_threads(),
    }


def _first_phase_for_one_epoch(sizes, phase: dict) -> list[str]:
    """The `--set` list of a one-epoch run of the network `sizes` under a recipe's first phase."""
    return [
        f"sizes={list(sizes)}",
        "test.images=100",
        f"schedule=[{{epochs = 1, eta = {phase['eta']}, steps_per_image = "
        f"{phase['steps_per_image']}, plasticity_delay = {phase['plasticity_delay']}}}]",
    ]


def epoch_parts(measured: dict, images: int) -> dict:
    """Seconds of each part of a real epoch from those measured over `images` training images:
    steps, their spike noise and the loop's own time ("other") scale with the training images,
    validation with the held-out images; alignment, figures and checkpoints happen once."""
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
    for key, s in measured.items():
        if key.startswith("training"):
            name = (
                "spike noise" if key.endswith("spike noise") else names.get(key, key.split("/")[-1])
            )
            seconds[name] = seconds.get(name, 0.0) + s * scale.get(key, 1.0)
    return seconds


def blas_threads() -> int | None:
    from threadpoolctl import threadpool_info

    return max(
        (p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"), default=None
    )
