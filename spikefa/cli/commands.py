"""What each command of `spikefa` does, given its parsed arguments; each returns the exit code."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from spikefa.errors import SpikefaError
from spikefa.shipped import shipped_networks


def cmd_run(args) -> int:
    from spikefa import runner

    path = runner.run(
        args.config, args.set, args.out, args.data, resume=args.resume, threads=args.threads
    )
    print(runner.summary_table(json.loads((path / "summary.json").read_text()), path))
    return 0


def cmd_sweep(args) -> int:
    from spikefa.sweeps import sweep

    data = str(Path(args.data).resolve()) if args.data else None
    summary = sweep(
        args.config,
        args.seeds,
        args.set,
        args.out,
        data,
        scheduler=args.scheduler,
        workers=args.workers,
        search=args.candidates,
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


def cmd_info(args) -> int:
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


def cmd_data_check(args) -> int:
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


def cmd_evaluate(args) -> int:
    from spikefa.api import load_network
    from spikefa.spiking.scoring import describe

    net = load_network(args.checkpoint)
    result = net.evaluate(
        args.split,
        args.n_test,
        args.repeats,
        args.engine,
        args.data,
        dataset=args.dataset,
        steps_per_image=args.steps_per_image,
        batch=args.batch,
        backend=args.backend,
        device=args.device,
        threads=args.threads,
    )
    print(json.dumps(result) if args.json else describe(result, net.spec))
    return 0


def cmd_traces(args) -> int:
    from spikefa.api import load_network
    from spikefa.spiking.traces import write_traces

    net, recording = load_network(args.checkpoint), (args.steps, args.neurons, args.first_image)
    print(write_traces(net, args.out, *recording, args.device, args.learn, args.data, args.pre))
    return 0


def cmd_diagnose(args) -> int:
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


def cmd_export(args) -> int:
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


def cmd_report(args) -> int:
    from spikefa.report import report, save_records

    if args.search:
        from spikefa.report import search

        print(search.write(args.results, args.out))
        return 0
    if args.points:
        from spikefa.report import points

        if len(args.results) != 1:
            raise SpikefaError("--points takes one sweep folder (or its record)")
        print(points.write(args.results[0], args.out))
        return 0
    records = args.records
    if args.save_records:  # the page is then rebuilt from the whole store, as on a fresh clone
        for path in save_records(args.results, args.save_records):
            print(f"spikefa: recorded {path}", file=sys.stderr, flush=True)
        records, args.results = args.save_records, []
    print(report(args.results, args.out, records))
    return 0


def cmd_bench(args) -> int:
    from spikefa import bench, epoch_profile, gpu_run
    from spikefa.arrays import blas_threads

    if args.what == "gpu":
        result = gpu_run.bench_gpu(
            args.out, args.dry_run, args.minutes, args.data, args.resume, args.brian2_wheels
        )
    elif args.what == "spiking" and args.epoch:
        with blas_threads(args.threads):
            result = epoch_profile.bench_epoch(data_dir=args.data)
    elif args.what == "spiking":
        devices = () if args.no_brian2 else ("runtime", "cpp_standalone")
        result = bench.bench_spiking(
            batch=args.batch, devices=devices, backend=args.backend, scaling=args.scaling
        )
    elif args.what == "switches":
        result = bench.bench_switches(batch=args.batch)
    else:
        result = bench.bench_rate(data_dir=args.data)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:42s} {v}")
    return 0
