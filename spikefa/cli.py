"""The `spikefa` command (CONTRACT.md). Bad input → exit 2 with one line on stderr; divergence → 3."""

from __future__ import annotations

import argparse
import sys

from spikefa.errors import SpikefaError


def _cmd_run(args) -> int:
    from spikefa import runner

    path = runner.run(args.config, args.set, args.out, args.data)
    print(path)
    return 0


def _cmd_info(args) -> int:
    from spikefa import config, experiments, runner

    for k, v in runner.versions().items():
        print(f"{k:10s} {v}")
    print(f"{'devices':10s} {', '.join(_brian2_devices())}")
    print(f"{'configs':10s} {', '.join(config.shipped_configs())} (in {config.MODELS_DIR})")
    print(f"{'runnable':10s} {', '.join(experiments.EXPERIMENTS)}")
    return 0


def _brian2_devices() -> list[str]:
    import importlib.util

    devices = ["runtime (cython)" if importlib.util.find_spec("Cython") else "runtime (numpy)", "cpp_standalone"]
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
        print(f"no data set found in {folder} (expected subfolders: {', '.join(datasets.DATASETS)})", file=sys.stderr)
        return 1
    if bad:
        print(f"data check failed in {folder}: delete the corrupted files (they are downloaded again) "
              f"or put the originals there", file=sys.stderr)
    return 1 if bad else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spikefa", description="Feedback alignment experiments (Lillicrap et al. 2016).")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run an experiment config")
    r.add_argument("config", help="a TOML file or the name of a config in models/ (e.g. fig2_linear)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (dotted for tables; value parsed as TOML)")
    r.add_argument("--out", help="results folder (default results/<name>-<timestamp>/)")
    r.add_argument("--data", help="data folder (default $SPIKEFA_DATA, else ~/.cache/spikefa)")
    r.set_defaults(func=_cmd_run)

    i = sub.add_parser("info", help="versions and available Brian2 devices")
    i.set_defaults(func=_cmd_info)

    d = sub.add_parser("data", help="data sets")
    dsub = d.add_subparsers(dest="data_command", required=True)
    c = dsub.add_parser("check", help="verify the SHA-256 of every present data set")
    c.add_argument("--data", help="data folder (default $SPIKEFA_DATA, else ~/.cache/spikefa)")
    c.set_defaults(func=_cmd_data_check)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SpikefaError as exc:
        print(f"spikefa: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("spikefa: interrupted; files already written are complete, earlier results are untouched",
              file=sys.stderr)
        return 130
