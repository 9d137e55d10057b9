"""`spikefa run`: resolve a config, run its experiment, write the results folder."""

from __future__ import annotations

import inspect
import platform
import time
from pathlib import Path

from spikefa import __version__, config, experiments
from spikefa.errors import SpikefaError
from spikefa.results import ResultsDir, default_out


def versions() -> dict:
    from importlib.metadata import version

    return {"spikefa": __version__, "python": platform.python_version(),
            **{name: version(name) for name in ("brian2", "numpy", "numba")}}


def run(config_name: str, sets: list[str] = (), out: str | Path | None = None, data: str | None = None,
        resume: bool = False) -> Path:
    if resume:
        if out is None or not Path(out).is_dir():
            raise SpikefaError("--resume needs --out DIR naming an earlier run's results folder (or a folder "
                               "holding a checkpoint <mode>.npz to continue)")
        if (Path(out) / "config.toml").is_file():  # the run's own config; --set may extend it (e.g. epochs)
            config_name = str(Path(out) / "config.toml")
    cfg = config.resolve(config_name, sets)
    name = cfg["experiment"]
    if name not in experiments.EXPERIMENTS:
        raise SpikefaError(f"experiment {name} is not implemented yet; available: "
                           f"{', '.join(experiments.EXPERIMENTS)}")
    experiment = experiments.get(name)
    experiment.validate(cfg)  # before anything is written
    if resume and "resume" not in inspect.signature(experiment.run).parameters:
        raise SpikefaError(f"{name} runs are short and cannot be resumed; start a new run")
    results = ResultsDir(out or default_out(name), resume=resume)
    results.write_text("config.toml", config.to_toml(cfg))
    start = time.perf_counter()
    outcome = experiment.run(cfg, results, data_dir=data, **({"resume": True} if resume else {}))
    summary = {"experiment": name, "seed": cfg["seed"], "wall_seconds": round(time.perf_counter() - start, 2),
               "versions": versions(), **outcome}
    results.write_json("summary.json", summary)  # written last: its presence marks a finished run
    return results.path
