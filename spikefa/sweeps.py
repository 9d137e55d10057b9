"""`spikefa sweep`: replicate runs, and grids over `--set` values, on Dask distributed, with
statistics.

Every (grid point, seed) is one ordinary `spikefa run` into its own folder
`<out>/runs/<point>/seed-<seed>/`, executed as a task on a Dask cluster: a `LocalCluster` with one
single-threaded worker process per core by default (BLAS, OpenMP and Numba limited to one thread
each, so workers do not oversubscribe the cores), or any running scheduler given by address.
A run whose `summary.json` exists is not redone when the sweep is started again; an interrupted run
of an experiment that checkpoints continues from its checkpoint. `sweep.json` then holds, per grid
point and algorithm, n, mean, SD and SEM of every final metric, and t-tests between the algorithms
on every metric they share (Student, as the paper; Welch; paired, since the runs of one seed share
their initial weights and data).

A key given twice or more with `--set` is a grid axis (`--set eta=0.01 --set eta=0.03`). A search
that is not a product of axes (one axis at a time around a chosen point, say) is declared as a list
of candidates: a TOML file of `[[candidate]]` tables, each a set of config values (and an optional
`label` that names its folder), shipped under `configs/searches/` or given by path (`--candidates`);
`--set` values apply to every candidate.
Replicates: seed s_i = seed + i·runs, and `runs = 1` unless set, so no two runs share a network.
"""

from __future__ import annotations

import inspect
import itertools
import json
import os
import time
from pathlib import Path

import numpy as np
from scipy import stats as sps
from tqdm import tqdm

from spikefa import config, experiments, runner
from spikefa.errors import SpikefaError
from spikefa.results import ResultsDir, per_network

WORKER_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    "TQDM_DISABLE": "1",
}
TESTED = ("test_error", "test_nse")  # the main metrics (printed, plotted)


def grid(sets: list[str]) -> list[list[str]]:
    """The `--set` lists of every grid point: keys given once apply everywhere, keys given several
    times are axes (their product, in the order given)."""
    by_key: dict[str, list[str]] = {}
    for s in sets:
        key, _ = config.parse_set(s)
        by_key.setdefault(key, []).append(s)
    return [list(point) for point in itertools.product(*by_key.values())]


def candidates(name: str | Path) -> list[tuple[str | None, list[str]]]:
    """The candidates of a declared search, in order: each a folder label (its table's `label`, or
    None to name it by its values) and its `--set` list."""
    path = Path(name)
    if path.suffix != ".toml" or not path.exists():
        path = config.CONFIGS_DIR / "searches" / f"{name}.toml"
    if not path.is_file():
        shipped = sorted(p.stem for p in (config.CONFIGS_DIR / "searches").glob("*.toml"))
        raise SpikefaError(f"no search {name!r} (shipped: {', '.join(shipped)})")
    tables = config.read_toml(path).get("candidate")
    if not tables or not all(isinstance(t, dict) and set(t) - {"label"} for t in tables):
        raise SpikefaError(f"{path}: a search needs [[candidate]] tables, each with config values")
    return [
        (
            t.get("label"),
            [f"{k}={config.toml_value(v)}" for k, v in config.flat(t).items() if k != "label"],
        )
        for t in tables
    ]


def point_name(point: list[str], axes: list[str]) -> str:
    """A folder name naming the axis values of a grid point ("default" without axes)."""
    parts = [
        s.replace("=", "-").replace("/", "_").replace(" ", "")
        for s in point
        if config.parse_set(s)[0] in axes
    ]
    return "_".join(parts) or "default"


def plan(
    config_name: str,
    sets: list[str],
    seeds: int,
    out: Path,
    search: list[tuple[str | None, list[str]]] = ((None, []),),
) -> list[dict]:
    """Every run of the sweep (grid point, seed, folder, --set list), each config checked first so
    that bad input stops the sweep before anything runs. `search`: candidates, each crossed with
    the grid of `sets`."""
    if seeds < 1:
        raise SpikefaError(f"--seeds must be at least 1, got {seeds}")
    points = [(label, c, p) for label, c in search for p in grid(sets)]
    keys = [config.parse_set(s)[0] for s in sets]
    axes = sorted(
        {k for k in keys if keys.count(k) > 1}
        | {config.parse_set(s)[0] for label, c in search if not label for s in c}
    )
    runs = []
    for label, chosen, swept in points:
        point = chosen + swept
        cfg = config.resolve(config_name, point)
        replicate = "runs" in cfg and "runs" not in keys
        stride = 1 if replicate or "runs" not in cfg else cfg["runs"]
        name = point_name(point, axes)
        if label:  # the label stands for the candidate's own values
            rest = point_name(swept, axes)
            name = label if rest == "default" else f"{label}_{rest}"
        for i in range(seeds):
            seed = cfg["seed"] + i * stride
            run_sets = point + (["runs=1"] if replicate else []) + [f"seed={seed}"]
            resolved = config.resolve(config_name, run_sets)
            experiments.get(resolved["experiment"]).validate(resolved)
            runs.append(
                {
                    "point": name,
                    "sets": point,
                    "seed": seed,
                    "run_sets": run_sets,
                    "folder": out / "runs" / name / f"seed-{seed}",
                    "experiment": resolved["experiment"],
                }
            )
    return runs


def run_one(config_name: str, run_sets: list[str], folder: str, data: str | None) -> dict:
    """One run, in a worker: resumed from its checkpoint when it has one and its experiment can."""
    folder = Path(folder)
    name = config.resolve(config_name, run_sets)["experiment"]
    resumable = "resume" in inspect.signature(experiments.get(name).run).parameters
    resume = resumable and folder.is_dir() and any(folder.glob("*.npz"))
    try:
        runner.run(config_name, run_sets, folder, data, resume=resume)
    except SpikefaError as exc:
        return {"status": "failed", "exit_code": exc.exit_code, "error": str(exc)}
    return {"status": "ran"}


def _distributed():
    """The `distributed` module, or a SpikefaError saying how to install it."""
    try:
        import distributed
    except ImportError:
        raise SpikefaError("spikefa sweep needs Dask: pip install 'spikefa[sweep]'") from None
    return distributed


def _import_brian2_plugin(distributed):
    """A worker plugin that imports Brian2 in the worker's main thread (it installs a signal handler
    on import, which Python allows only there; tasks run in other threads)."""

    class ImportBrian2(distributed.WorkerPlugin):
        name = "spikefa-import-brian2"

        def setup(self, worker):
            import brian2  # noqa: F401

    return ImportBrian2()


def client_for(scheduler: str | None, workers: int | None):
    """A Dask client: to the scheduler at `scheduler`, or to a new LocalCluster of `workers`
    processes (default: one per core), each running one run at a time on its share of the cores."""
    distributed = _distributed()
    if scheduler:
        try:
            return distributed.Client(scheduler, timeout="10s")
        except OSError as exc:
            raise SpikefaError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    import dask

    n = workers or len(os.sched_getaffinity(0))
    per = str(
        max(1, len(os.sched_getaffinity(0)) // n)
    )  # fewer workers than cores: each gets its share
    env = {
        **WORKER_ENV,
        **{k: per for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
    }
    # A compiled kernel holds the GIL for minutes at full size, so a worker's heartbeat can stall
    # that long; the scheduler must not take that for a dead worker and restart it mid-run.
    settings = {
        "distributed.nanny.pre-spawn-environ": env,
        "distributed.scheduler.worker-ttl": None,
    }
    with dask.config.set(settings):
        cluster = distributed.LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None
        )
    return distributed.Client(cluster)


def _outcome(future) -> dict:
    try:
        return future.result()
    except Exception as exc:  # a crash inside one run is that run's failure, not the sweep's
        return {"status": "failed", "exit_code": 1, "error": f"{type(exc).__name__}: {exc}"}


def sweep(
    config_name: str,
    seeds: int,
    sets: list[str] = (),
    out: str | Path | None = None,
    data: str | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    search: str | Path | None = None,
) -> dict:
    """Run the sweep and write `sweep.json` and `sweep.csv` into `out`; returns the summary.
    `search` names a declared list of candidates (see `candidates`)."""
    name = config.resolve(config_name)["experiment"]
    out = Path(out or Path("results") / f"sweep-{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    runs = plan(
        config_name, list(sets), seeds, out, candidates(search) if search else ((None, []),)
    )
    for r in runs:
        r["status"] = "done" if (r["folder"] / "summary.json").exists() else "todo"
    todo = [r for r in runs if r["status"] == "todo"]
    distributed = _distributed() if todo else None  # before anything is written
    folder = ResultsDir(out, resume=True)
    if todo:
        _run_on_dask(distributed, config_name, todo, data, scheduler, workers, progress, name)
    summary = {"folder": str(out), **summarise(name, runs, seeds)}
    if search:  # what reruns it: the declared search and the options given to every candidate
        summary |= {"search": str(search), "sets": list(sets)}
    folder.write_json("sweep.json", summary)
    _figure(summary, folder)
    folder.write_csv(
        "sweep.csv",
        [
            {
                "point": p["name"],
                "algorithm": a,
                "metric": m,
                **{k: v for k, v in s.items() if k != "values"},
            }
            for p in summary["points"]
            for a, ms in p["metrics"].items()
            for m, s in ms.items()
        ],
    )
    return summary


def _run_on_dask(distributed, config_name, todo, data, scheduler, workers, progress, name) -> None:
    """Run every run of `todo` on a Dask client, recording each one's outcome in it."""
    client = client_for(scheduler, workers)
    try:
        client.register_plugin(_import_brian2_plugin(distributed))
        futures = {
            client.submit(
                run_one,
                config_name,
                r["run_sets"],
                str(r["folder"].resolve()),
                data,
                key=f"spikefa-{r['point']}-seed{r['seed']}-{time.time_ns()}",
                pure=False,
            ): r
            for r in todo
        }
        done = distributed.as_completed(futures)
        for fut in tqdm(
            done, total=len(futures), desc=f"sweep {name}", unit="run", disable=not progress
        ):
            futures[fut].update(_outcome(fut))
    finally:
        cluster = client.cluster
        client.close()
        if cluster is not None and not scheduler:
            cluster.close()


def _figure(summary: dict, folder: ResultsDir) -> None:
    from spikefa import plotting

    for metric in TESTED:
        groups = {
            f"{p['name']} · {a}" if len(summary["points"]) > 1 else a: (a, ms[metric]["values"])
            for p in summary["points"]
            for a, ms in p["metrics"].items()
            if metric in ms
        }
        if groups:
            fig, ax = plotting.new_axes((max(3.0, 0.6 * len(groups) + 1.5), 3.2))
            plotting.replicate_points(
                ax, groups, metric.replace("_", " "), log=metric == "test_nse"
            )
            ax.set_title(f"{summary['experiment']}: {summary['seeds']} seeds per point", fontsize=9)
            folder.savefig(fig, f"sweep_{metric}.png")
            plotting.close(fig)


def describe(values: list[float]) -> dict:
    v = np.asarray(values, float)
    sd = float(np.sqrt(_var(v))) if len(v) > 1 else 0.0
    mean = (
        float(v[0]) if np.ptp(v) == 0 else float(v.mean())
    )  # identical values: that value, not round-off
    return {"n": len(v), "mean": mean, "sd": sd, "sem": sd / np.sqrt(len(v)), "values": v.tolist()}


def t_tests(a: list[float], b: list[float]) -> dict:
    """Two-sample Student (the paper's) and Welch t-tests, and the paired test when the runs
    line up seed by seed; p-values are two-sided, and None where a test is undefined because the
    values it compares have no spread at all (e.g. every run gave the same error)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    na, nb, va, vb = len(a), len(b), _var(a), _var(b)
    pooled = ((na - 1) * va + (nb - 1) * vb) / (na + nb - 2)
    diff = a.mean() - b.mean()
    welch_df = (va / na + vb / nb) ** 2 / (
        (va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1) or 1.0
    )
    res = {
        "mean_difference": float(diff),
        "student_p": _p_value(diff, pooled * (1 / na + 1 / nb), na + nb - 2),
        "welch_p": _p_value(diff, va / na + vb / nb, welch_df),
    }
    if na == nb:
        d = a - b
        res["paired_p"] = _p_value(d.mean(), _var(d) / na, na - 1)
    return res


def _var(v: np.ndarray) -> float:
    return (
        float(v.var(ddof=1)) if np.ptp(v) > 0 else 0.0
    )  # identical values: exactly 0, not round-off


def _p_value(difference: float, se2: float, df: float) -> float | None:
    """Two-sided p of t = difference / sqrt(se2) on df degrees of freedom; None without spread."""
    if se2 <= 0:
        return None
    return float(2 * sps.t.sf(abs(difference) / np.sqrt(se2), df))


def _final_metrics(result: dict) -> dict:
    return {
        k: float(v)
        for k, v in result.items()
        if isinstance(v, (int, float))
        and not isinstance(v, bool)
        and (k in TESTED or k == "validation_error" or k.startswith(("angle_deg", "examples_to_")))
    }


def summarise(experiment: str, runs: list[dict], seeds: int) -> dict:
    points = []
    for name in dict.fromkeys(r["point"] for r in runs):
        mine = [r for r in runs if r["point"] == name]
        per_algo: dict[str, dict[str, list]] = {}
        for r in mine:
            path = r["folder"] / "summary.json"
            if not path.exists():
                continue
            for algo, result in json.loads(path.read_text())["results"].items():
                networks = per_network(result)  # a run of several networks: each one counts
                for metric, value in _final_metrics(result).items():
                    measured = [v for v in networks[metric] if v is not None]
                    per_algo.setdefault(algo, {}).setdefault(metric, []).extend(measured or [value])
        metrics = {a: {m: describe(v) for m, v in ms.items()} for a, ms in per_algo.items()}
        tests = {}  # every metric that two algorithms share (e.g. Fig. 2's examples to NSE 1e-2)
        for metric in dict.fromkeys(m for ms in per_algo.values() for m in ms):
            have = [a for a in per_algo if len(per_algo[a].get(metric, [])) > 1]
            for a, b in itertools.combinations(have, 2):
                tests.setdefault(metric, {})[f"{a}_vs_{b}"] = t_tests(
                    per_algo[a][metric], per_algo[b][metric]
                )
        points.append(
            {
                "name": name,
                "sets": mine[0]["sets"],
                "metrics": metrics,
                "tests": tests,
                "runs": [
                    {
                        "seed": r["seed"],
                        "folder": str(r["folder"]),
                        "status": r["status"],
                        **({"error": r["error"]} if "error" in r else {}),
                    }
                    for r in mine
                ],
            }
        )
    failed = [r for r in runs if r["status"] == "failed"]
    return {
        "experiment": experiment,
        "seeds": seeds,
        "runs": len(runs),
        "ran": sum(r["status"] == "ran" for r in runs),
        "reused": sum(r["status"] == "done" for r in runs),
        "failed": len(failed),
        "exit_code": max((r["exit_code"] for r in failed), default=0),
        "points": points,
    }
