"""`spikefa run`: resolve a config, run its experiment, write the results folder."""

from __future__ import annotations

import platform
import time
from pathlib import Path

from spikefa import __version__, config, experiments
from spikefa.arrays import blas_threads
from spikefa.errors import DivergenceError, SpikefaError
from spikefa.results import ResultsDir, default_out
from spikefa.training_loop import check_resumable


def versions() -> dict:
    from importlib.metadata import version

    return {
        "spikefa": __version__,
        "python": platform.python_version(),
        **{name: version(name) for name in ("brian2", "numpy", "numba")},
    }


def run(
    config_name: str,
    sets: list[str] = (),
    out: str | Path | None = None,
    data: str | None = None,
    resume: bool = False,
    threads: int | None = None,
) -> Path:
    """Run a config into a results folder; `threads`: BLAS threads (default: the cores it is
    given)."""
    if resume:
        if out is None or not Path(out).is_dir():
            raise SpikefaError(
                "--resume needs --out DIR naming an earlier run's results folder (or a folder "
                "holding a checkpoint <mode>.npz to continue)"
            )
        if (
            Path(out) / "config.toml"
        ).is_file():  # the run's own config; --set may extend it (e.g. epochs)
            config_name = str(Path(out) / "config.toml")
    cfg = config.resolve(config_name, sets)
    name = cfg["experiment"]
    if name not in experiments.EXPERIMENTS:
        raise SpikefaError(
            f"experiment {name} is not implemented yet; available: "
            f"{', '.join(experiments.EXPERIMENTS)}"
        )
    experiment = experiments.get(name)
    experiment.validate(cfg)  # before anything is written
    if resume and not hasattr(experiment, "recipes"):
        raise SpikefaError(f"{name} runs are short and cannot be resumed; start a new run")
    if resume:  # a refused resume leaves the folder as it was
        check_resumable(out, experiment.recipes(cfg))
    results = ResultsDir(out or default_out(name), resume=resume)
    results.write_text("config.toml", config.to_toml(cfg))
    start = time.perf_counter()
    try:
        with blas_threads(threads):
            outcome = experiment.run(
                cfg, results, data_dir=data, **({"resume": True} if resume else {})
            )
    except SpikefaError as exc:
        if not isinstance(exc, DivergenceError):
            results.discard()  # bad input found late (e.g. no data): a folder with no results is removed
        raise
    summary = {
        "experiment": name,
        "seed": cfg["seed"],
        "wall_seconds": round(time.perf_counter() - start, 2),
        "versions": versions(),
        **outcome,
    }
    results.write_json("summary.json", summary)  # written last: its presence marks a finished run
    return results.path


def summary_table(summary: dict, folder: Path) -> str:
    """What a finished run found, for the terminal: one row per algorithm (its name first) with the
    headline metrics that it reports, then the wall time and the results folder."""

    def percent(v):
        return f"{100 * v:.2f}%"

    def angle(r):
        v = r.get(
            "angle_deg_final",
            next(
                (
                    v
                    for k, v in r.items()
                    if k.startswith("angle_deg_") and isinstance(v, (int, float))
                ),
                None,
            ),
        )
        return None if v is None else f"{v:.1f}°"

    def seconds(r):
        v = r.get("wall_seconds", r.get("train_seconds_per_run", 0) * r.get("runs", 1) or None)
        return None if v is None else _duration(v)

    columns = [
        ("validation error", lambda r: r.get("validation_error"), percent),
        ("test error", lambda r: r.get("test_error"), percent),
        ("test NSE", lambda r: r.get("test_nse"), lambda v: f"{v:.3g}"),
        ("angle", angle, str),
        ("time", seconds, str),
    ]
    results = summary["results"]
    cells = {
        a: [None if (v := get(r)) is None else fmt(v) for _, get, fmt in columns]
        for a, r in results.items()
    }
    shown = [i for i in range(len(columns)) if any(c[i] is not None for c in cells.values())]
    header = ["algorithm"] + [columns[i][0] for i in shown]
    rows = [[a] + [c[i] or "–" for i in shown] for a, c in cells.items()]
    widths = [max(len(row[j]) for row in [header, *rows]) for j in range(len(header))]

    def line(row):  # the name left-aligned, the numbers right-aligned
        return "  ".join(
            x.ljust(w) if j == 0 else x.rjust(w) for j, (x, w) in enumerate(zip(row, widths))
        )

    return "\n".join(
        [
            line(header),
            *map(line, rows),
            f"{summary['experiment']} took {_duration(summary['wall_seconds'])}; results in {folder}",
        ]
    )


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:,.0f} s"
