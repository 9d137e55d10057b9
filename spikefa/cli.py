"""The `spikefa` command-line interface. Bad input → exit 2 with one line on stderr; divergence → 3."""

from __future__ import annotations

import _thread
import argparse
import contextlib
import json
import os
import sys
import threading
from pathlib import Path

from spikefa import __version__
from spikefa.errors import SpikefaError
from spikefa.shipped import checkpoint_path, shipped_networks
from spikefa.spiking.brian import DEVICES  # brian2 itself is imported only when a network is built


def _cmd_run(args) -> int:
    from spikefa import runner

    path = runner.run(
        args.config, args.set, args.out, args.data, resume=args.resume, threads=args.threads
    )
    print(runner.summary_table(json.loads((path / "summary.json").read_text()), path))
    return 0


def _cmd_sweep(args) -> int:
    from spikefa.sweep import sweep

    data = str(Path(args.data).resolve()) if args.data else None
    summary = sweep(
        args.config,
        args.seeds,
        args.set,
        args.out,
        data,
        scheduler=args.scheduler,
        workers=args.workers,
    )
    for p in summary["points"]:
        for algo, metrics in p["metrics"].items():
            for m, d in metrics.items():
                if m in ("test_error", "test_nse"):
                    print(
                        f"{p['name']:24s} {algo:20s} {m} {d['mean']:.4g} ± {d['sd']:.2g} (SEM {d['sem']:.2g}, n={d['n']})"
                    )
    print(
        f"{summary['ran']} runs done now, {summary['reused']} reused, {summary['failed']} failed: "
        f"{Path(summary['folder']) / 'sweep.json'}"
    )
    if summary["failed"]:
        first = next(r for p in summary["points"] for r in p["runs"] if r["status"] == "failed")
        print(
            f"spikefa: error: {summary['failed']} runs failed; first: {first['folder']}: {first['error']}",
            file=sys.stderr,
        )
    return summary["exit_code"]


def _cmd_info(args) -> int:
    from spikefa import config, experiments, runner

    for k, v in runner.versions().items():
        print(f"{k:10s} {v}")
    print(f"{'devices':10s} {', '.join(_brian2_devices())}")
    print(f"{'configs':10s} {', '.join(config.shipped_configs())} (in {config.CONFIGS_DIR})")
    print(f"{'runnable':10s} {', '.join(experiments.EXPERIMENTS)}")
    networks = shipped_networks()
    print(
        f"{'networks':10s} "
        + (
            f"{', '.join(networks)} (in {config.MODELS_DIR})"
            if networks
            else "none here (the shipped networks come with a clone of the repository)"
        )
    )
    return 0


def _brian2_devices() -> list[str]:
    import importlib.util

    devices = [
        "runtime (cython)" if importlib.util.find_spec("Cython") else "runtime (numpy)",
        "cpp_standalone",
    ]
    if importlib.util.find_spec("brian2cuda"):
        devices.append("cuda_standalone")
    return devices


def _cmd_data_check(args) -> int:
    from spikefa.data import datasets

    folder = datasets.data_dir(args.data)
    bad, found = False, False
    for name in datasets.DATASETS:
        if not (folder / name).is_dir():
            continue
        found = True
        for stem, state in datasets.check(name, folder).items():
            print(f"{name}/{stem}: {state}")
            bad |= state != "ok"
    if not found:
        print(
            f"no data set found in {folder} (expected subfolders: {', '.join(datasets.DATASETS)})",
            file=sys.stderr,
        )
        return 1
    if bad:
        print(
            f"data check failed in {folder}: delete the corrupted files (they are downloaded again) "
            f"or put the originals there",
            file=sys.stderr,
        )
    return 1 if bad else 0


def _cmd_evaluate(args) -> int:
    from spikefa.spiking.scoring import describe, score
    from spikefa.spiking.spec import load_checkpoint

    spec, state, meta = load_checkpoint(args.checkpoint)
    result = score(
        spec,
        state,
        meta,
        args.checkpoint,
        split=args.split,
        n=args.n_test,
        repeats=args.repeats,
        engine=args.engine,
        data=args.data,
        dataset=args.dataset,
        steps_per_image=args.steps_per_image,
        batch=args.batch,
        backend=args.backend,
        device=args.device,
        threads=args.threads,
    )
    print(json.dumps(result) if args.json else describe(result, spec))
    return 0


def _cmd_traces(args) -> int:
    from spikefa.spiking.spec import load_checkpoint
    from spikefa.spiking.traces import write_traces

    spec, state, meta = load_checkpoint(args.checkpoint)
    print(
        write_traces(
            spec,
            state,
            meta,
            args.checkpoint,
            args.out,
            args.steps,
            args.neurons,
            args.first_image,
            args.device,
            args.learn,
            args.data,
        )
    )
    return 0


def _cmd_diagnose(args) -> int:
    from spikefa.diagnose import diagnose, report
    from spikefa.spiking.spec import load_checkpoint

    if args.images < 1:
        raise SpikefaError(f"--images must be at least 1, got {args.images}")
    spec, state, meta = load_checkpoint(args.checkpoint)
    dataset = args.dataset or meta.get("dataset", "mnist")
    from spikefa.spiking.scoring import holdout_size

    result = diagnose(
        spec, state, dataset, args.images, args.data, holdout=holdout_size(meta) or 10000
    )
    print(
        json.dumps({"checkpoint": str(args.checkpoint), **result})
        if args.json
        else report(result, spec)
    )
    return 0


def _cmd_export(args) -> int:
    from spikefa.spiking.spec import at_rest, load_checkpoint, save_checkpoint

    spec, state, meta = load_checkpoint(args.checkpoint)
    if not args.keep_state:  # a shipped network starts from rest: one stream, zero PSPs and traces
        state = at_rest(state)
        meta = {**meta, "random_state": None}
    path = save_checkpoint(
        args.out, spec, state, meta, store_dtype="float16" if args.float16 else None
    )
    print(f"{path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


def _cmd_report(args) -> int:
    from spikefa.report import report, save_records

    if args.search:
        from spikefa.report import search

        print(search.write(args.results, args.out))
        return 0
    records = args.records
    if args.save_records:  # the page is then rebuilt from the whole store, as on a fresh clone
        for path in save_records(args.results, args.save_records):
            print(f"spikefa: recorded {path}", file=sys.stderr, flush=True)
        records, args.results = args.save_records, []
    print(report(args.results, args.out, records))
    return 0


def _cmd_bench(args) -> int:
    from spikefa import bench
    from spikefa.arrays import blas_threads

    if args.what == "gpu":
        result = bench.bench_gpu(args.out, args.dry_run, args.minutes, args.data)
    elif args.what == "spiking" and args.epoch:
        with blas_threads(args.threads):
            result = bench.bench_epoch(data_dir=args.data)
    elif args.what == "spiking":
        devices = () if args.no_brian2 else ("runtime", "cpp_standalone")
        result = bench.bench_spiking(
            batch=args.batch, devices=devices, backend=args.backend, scaling=args.scaling
        )
    else:
        result = bench.bench_rate(data_dir=args.data)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:42s} {v}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with the command line's error format: one line on stderr, exit code 2."""

    def error(self, message):
        self.exit(2, f"spikefa: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="spikefa", description="Feedback alignment experiments (Lillicrap et al. 2016)."
    )
    p.add_argument("--version", action="version", version=f"spikefa {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run an experiment config")
    r.add_argument(
        "config",
        help="a TOML file or the name of a shipped config (e.g. fig2_linear; spikefa info "
        "lists them)",
    )
    r.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (dotted for tables; value parsed as TOML)",
    )
    r.add_argument("--out", help="results folder (default results/<name>-<timestamp>/)")
    r.add_argument("--data", help="data folder (default $SPIKEFA_DATA, else ~/.cache/spikefa)")
    r.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its latest checkpoints (--set train.epochs=N extends it)",
    )
    r.add_argument(
        "--threads", type=int, help="BLAS threads (default: every core this process is given)"
    )
    r.set_defaults(func=_cmd_run)

    w = sub.add_parser(
        "sweep", help="replicate runs (and grids over --set values) on Dask, with statistics"
    )
    w.add_argument(
        "config", help="a TOML file or the name of a shipped config (spikefa info lists them)"
    )
    w.add_argument("--seeds", type=int, required=True, help="replicate runs per grid point")
    w.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key; a key given several times is a grid axis",
    )
    w.add_argument(
        "--out",
        help="sweep folder (default results/sweep-<name>-<timestamp>/); restarting reuses finished runs",
    )
    w.add_argument("--data", help="data folder")
    w.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="a running Dask scheduler (default: a LocalCluster here)",
    )
    w.add_argument(
        "--workers", type=int, help="LocalCluster worker processes (default: one per core)"
    )
    w.set_defaults(func=_cmd_sweep)

    e = sub.add_parser(
        "evaluate", help="test (or validation) error of a trained spiking network, learning off"
    )
    e.add_argument(
        "checkpoint",
        help="a checkpoint .npz, or the name of a shipped network (e.g. fig4_paper_fa)",
    )
    e.add_argument("--engine", choices=("fast", "brian2"), default="fast")
    e.add_argument(
        "--device", choices=DEVICES, default="cpp_standalone", help="Brian2 device (engine brian2)"
    )
    e.add_argument("--threads", type=int, default=1, help="OpenMP threads of cpp_standalone")
    e.add_argument("--batch", type=int, default=100, help="streams of the fast engine")
    e.add_argument(
        "--backend",
        choices=("numpy", "cupy", "torch"),
        default="numpy",
        help="arrays of the fast engine",
    )
    e.add_argument(
        "--split",
        choices=("test", "validation"),
        default="test",
        help="score the test images, or the validation images the network's run held out (to choose "
        "e.g. --steps-per-image without reading the test set)",
    )
    e.add_argument(
        "--n-test", type=int, default=0, help="use the first N images of the split (default all)"
    )
    e.add_argument(
        "--steps-per-image",
        type=int,
        help="show each test image this many steps (default: the checkpoint's)",
    )
    e.add_argument(
        "--dataset",
        help="mnist, fashion-mnist or an .npz file of one's own (default: the checkpoint's)",
    )
    e.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="fast engine: evaluate this many times with fresh spike draws; test_error is their mean",
    )
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--data", help="data folder")
    e.set_defaults(func=_cmd_evaluate)

    t = sub.add_parser("traces", help="record PSP and modulator traces in Brian2 for a checkpoint")
    t.add_argument("checkpoint", help="a checkpoint .npz, or the name of a shipped network")
    t.add_argument(
        "--out", help="folder for traces.npz and traces.png (default results/traces-<timestamp>/)"
    )
    t.add_argument("--steps", type=int, default=0, help="steps to record (default 5 images)")
    t.add_argument(
        "--neurons",
        type=int,
        nargs="+",
        default=[0, 1, 2, 3],
        help="hidden units recorded in every hidden layer",
    )
    t.add_argument("--first-image", type=int, default=0, help="index of the first test image shown")
    t.add_argument("--device", choices=DEVICES, default="cpp_standalone")
    t.add_argument(
        "--learn",
        action="store_true",
        help="keep plasticity on while recording, at the learning rate the training had reached",
    )
    t.add_argument("--data", help="data folder")
    t.set_defaults(func=_cmd_traces)

    g = sub.add_parser(
        "diagnose",
        help="why a trained spiking network stalls: fit, read-out, saturation, alignment",
    )
    g.add_argument("checkpoint", help="a checkpoint .npz, or the name of a shipped network")
    g.add_argument(
        "--images", type=int, default=3000, help="training and test images for the errors"
    )
    g.add_argument(
        "--dataset",
        help="mnist, fashion-mnist or an .npz file of one's own (default: the checkpoint's)",
    )
    g.add_argument("--json", action="store_true", help="print one JSON object")
    g.add_argument("--data", help="data folder")
    g.set_defaults(func=_cmd_diagnose)

    x = sub.add_parser(
        "export", help="write a compact copy of a checkpoint (e.g. to ship in models/)"
    )
    x.add_argument("checkpoint", help="a checkpoint .npz, or the name of a shipped network")
    x.add_argument("out")
    x.add_argument(
        "--float16",
        action="store_true",
        help="store weights as float16 (loaded back as the spec's dtype)",
    )
    x.add_argument(
        "--keep-state", action="store_true", help="keep every stream's PSPs and traces (to resume)"
    )
    x.set_defaults(func=_cmd_export)

    b = sub.add_parser("bench", help="side-by-side throughput, measured in one run")
    b.add_argument("what", choices=("rate", "spiking", "gpu"))
    b.add_argument(
        "--batch", type=int, default=50, help="spiking: streams of the batched fast engine"
    )
    b.add_argument(
        "--backend",
        choices=("numpy", "cupy", "torch"),
        default="numpy",
        help="spiking: the fast engine's arrays",
    )
    b.add_argument(
        "--scaling",
        type=int,
        nargs="+",
        default=[],
        metavar="BATCH",
        help="spiking: also time these batch sizes (one image per stream)",
    )
    b.add_argument("--no-brian2", action="store_true", help="spiking: skip the Brian2 devices")
    b.add_argument(
        "--epoch",
        action="store_true",
        help="spiking: time a training epoch part by part (2,000 MNIST images, scaled to 50,000)",
    )
    b.add_argument(
        "--threads", type=int, help="spiking --epoch: BLAS threads (default: every core given)"
    )
    b.add_argument("--data", help="MNIST's data folder (rate, gpu, and spiking --epoch)")
    b.add_argument(
        "--out", default="results/gpu", help="gpu: the folder of gpu.json, gpu.png and checkpoints"
    )
    b.add_argument(
        "--minutes",
        type=float,
        default=12.0,
        help="gpu: the whole run's budget; training takes what the measurements leave",
    )
    b.add_argument(
        "--dry-run",
        action="store_true",
        help="gpu: a tiny network, every stage once, on whichever device PyTorch finds",
    )
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=_cmd_bench)

    rp = sub.add_parser(
        "report",
        help="the results page: one row per claim of the paper, with its command and verdict",
    )
    rp.add_argument(
        "results",
        nargs="*",
        metavar="RESULTS",
        help="results folders (spikefa run), sweep folders (spikefa sweep), checkpoints (.npz) or saved "
        "evaluations (spikefa evaluate --json > FILE.json)",
    )
    rp.add_argument(
        "--out", default="docs/results.md", help="the Markdown file (its figures go beside it)"
    )
    rp.add_argument(
        "--records", metavar="DIR", help="also read every record of this store (e.g. docs/records)"
    )
    rp.add_argument(
        "--save-records",
        metavar="DIR",
        help="copy the small files of RESULTS into this store (replacing their earlier "
        "records), then write the page from the whole store",
    )
    rp.add_argument(
        "--search",
        action="store_true",
        help="write instead the table of a recipe search: every spiking run below RESULTS, ranked "
        "on validation",
    )
    rp.set_defaults(func=_cmd_report)

    i = sub.add_parser("info", help="versions, Brian2 devices, shipped configs and networks")
    i.set_defaults(func=_cmd_info)

    d = sub.add_parser("data", help="data sets")
    dsub = d.add_subparsers(dest="data_command", required=True)
    c = dsub.add_parser("check", help="verify the SHA-256 of every present data set")
    c.add_argument("--data", help="data folder (default $SPIKEFA_DATA, else ~/.cache/spikefa)")
    c.set_defaults(func=_cmd_data_check)
    return p


@contextlib.contextmanager
def resending_lost_interrupts():
    """Ctrl-C that arrives while Python code runs as a callback of compiled code (numba's hooks into
    LLVM while it compiles) is reported as "Exception ignored" and lost, and the run would go on.
    Inside this block such an interrupt is sent again, until it lands where it stops the run."""
    previous = sys.unraisablehook

    def hook(unraisable):
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            # from another thread, a moment later: sent from here, it would be raised inside this hook
            resend = threading.Timer(0.01, _thread.interrupt_main)
            resend.daemon = True
            resend.start()
        else:
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if hasattr(args, "set"):  # argparse reads `--set=--` as an empty list
        args.set = [s if isinstance(s, str) else "--" for s in args.set]
    try:
        if hasattr(args, "checkpoint"):
            args.checkpoint = checkpoint_path(args.checkpoint)
        with resending_lost_interrupts():
            return args.func(args)
    except SpikefaError as exc:
        print(f"spikefa: error: {' '.join(str(exc).split())}", file=sys.stderr)  # always one line
        return exc.exit_code
    except KeyboardInterrupt:
        print(
            "spikefa: interrupted; files already written are complete, earlier results are untouched",
            file=sys.stderr,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        # Exit at once: a second interrupt pending in a library's shutdown code would otherwise turn
        # the exit into a kill by SIGINT. Every file is written atomically, so nothing is left half-done.
        os._exit(130)
