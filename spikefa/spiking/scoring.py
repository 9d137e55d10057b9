"""Scoring a trained spiking network, learning off: what `spikefa evaluate` and `Network.evaluate`
do."""

from __future__ import annotations

import dataclasses
import statistics

from spikefa.errors import SpikefaError
from spikefa.spiking.spec import SpikingSpec


def check_fits(spec: SpikingSpec, data, path) -> None:
    """Raise SpikefaError unless the network at `path` has the inputs and outputs of `data`."""
    if spec.sizes[0] != data.n_inputs or spec.sizes[-1] != data.n_classes:
        raise SpikefaError(
            f"checkpoint {path} is a {'-'.join(map(str, spec.sizes))} network; these images need "
            f"{data.n_inputs} inputs and {data.n_classes} outputs"
        )


def score(
    network,
    split: str,
    n: int | None,
    repeats: int,
    engine: str,
    data,
    progress: bool,
    dataset=None,
    steps_per_image: int | None = None,
    batch: int = 100,
    backend: str = "numpy",
    device: str = "cpp_standalone",
    threads: int = 1,
) -> dict:
    """What `spikefa evaluate --json` and `Network.evaluate` (which documents the arguments) give:
    the error of `network` (a loaded checkpoint: spec, state, meta and path) on the first `n`
    images (None or 0: all) of `split`."""
    from spikefa.spiking.training import BrianRunner, FastRunner, evaluate

    _check_request(split, engine, repeats, n)
    spec = network.spec
    if steps_per_image is not None:  # the spec checks the value
        spec = dataclasses.replace(spec, steps_per_image=steps_per_image)
    x, y = _images(spec, network.meta, network.path, split, dataset, data)
    n = min(n or len(x), len(x))
    x, y = x[:n].astype(spec.dtype), y[:n]
    if engine == "brian2":  # standalone runs have a fixed length: a chunk that divides n
        chunk = max(d for d in range(1, min(n, 1000) + 1) if n % d == 0)
        runner = BrianRunner(spec, chunk, device, threads=threads)
    else:
        runner = FastRunner(spec, min(n, 1000), batch=batch, backend=backend)

    def label(i):
        return progress and f"{split} ({engine})" + (
            f", draw {i + 1} of {repeats}" if repeats > 1 else ""
        )

    # each repeat draws fresh spike noise (the runner's generator runs on): the network is
    # stochastic
    errors = [evaluate(runner, network.state, x, y, progress=label(i)) for i in range(repeats)]
    result = _result(errors, split, n, engine, spec, network.path)
    if engine == "brian2":
        result["device"] = device
    return result


def _result(errors: list, split: str, n: int, engine: str, spec: SpikingSpec, checkpoint) -> dict:
    """The JSON object of `spikefa evaluate --json`: the mean of the draws' errors, and what
    was scored how."""
    err, key = sum(errors) / len(errors), f"{split}_error"
    result = {
        key: err,
        f"n_{split}": n,
        "split": split,
        "engine": engine,
        "reading": spec.reading,
        "steps_per_image": spec.steps_per_image,
        "feedback": spec.feedback,
        "checkpoint": str(checkpoint),
    }
    if len(errors) > 1:
        result.update({f"{key}s": errors, f"{key}_sd": statistics.stdev(errors)})
    return result


def _check_request(split: str, engine: str, repeats: int, n: int | None) -> None:
    if split not in ("test", "validation"):
        raise SpikefaError(f"split must be test or validation, got {split!r}")
    if engine not in ("fast", "brian2"):
        raise SpikefaError(f"engine must be fast or brian2, got {engine!r}")
    if repeats < 1 or (repeats > 1 and engine != "fast"):
        raise SpikefaError(
            f"--repeats must be at least 1, and above 1 only with --engine fast, got {repeats}"
        )
    if n is not None and n < 0:
        raise SpikefaError(f"the number of images must be at least 0 (0: all), got {n}")


def _images(spec: SpikingSpec, meta: dict, checkpoint, split: str, dataset, data):
    """The images and labels of `split`: the test set, or the images the run held out."""
    from spikefa.data import load_images

    images = load_images(str(dataset) if dataset else meta.get("dataset", "mnist"), data)
    check_fits(spec, images, checkpoint)
    if split == "test":
        return images.test_x, images.test_y
    held = holdout_size(meta)
    if not held:
        raise SpikefaError(
            f"{checkpoint} records no validation images held out of its training set"
        )
    images = images.holdout(held)
    return images.val_x, images.val_y


def describe(result: dict, spec: SpikingSpec) -> str:
    """`score`'s result as the line `spikefa evaluate` prints."""
    split, n = result["split"], result[f"n_{result['split']}"]
    err, errors = result[f"{split}_error"], result.get(f"{split}_errors", [])
    spread = (
        f" (mean of {len(errors)} spike draws, sd {100 * result[f'{split}_error_sd']:.2f}: "
        f"{', '.join(f'{100 * e:.2f}' for e in errors)})"
        if errors
        else ""
    )
    spec = dataclasses.replace(spec, steps_per_image=result["steps_per_image"])
    return f"{split} error {100 * err:.2f}%{spread} on {n} images ({spec.describe()}, engine {result['engine']})"


def holdout_size(meta: dict) -> int | None:
    """How many training images a checkpoint's run held out for validation.

    Parameters
    ----------
    meta : dict
        The checkpoint's meta.

    Returns
    -------
    int or None
        `split.holdout_images`; for older checkpoints, which record only the measured subset
        (`split.validation_images`), their config's `train.validation`; where no config is
        recorded either, the subset (the hold-out when all of it was measured); None when nothing
        is recorded.
    """
    import tomllib

    from spikefa import config

    split, cfg = meta.get("split") or {}, meta.get("config")
    if "holdout_images" in split:
        return split["holdout_images"]
    if isinstance(cfg, str) and cfg:  # TOML text, or the name of a shipped recipe
        cfg = tomllib.loads(cfg) if "=" in cfg else config.resolve(cfg)
    held = (cfg.get("train") or {}).get("validation") if isinstance(cfg, dict) else None
    return held if held is not None else split.get("validation_images")
