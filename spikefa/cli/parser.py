"""The argument parser of the `spikefa` command: one function per command."""

from __future__ import annotations

import argparse

from spikefa import __version__
from spikefa.cli import commands
from spikefa.spiking.brian import DEVICES  # brian2 itself is imported only when a network is built


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
    _run(sub)
    _sweep(sub)
    _evaluate(sub)
    _traces(sub)
    _diagnose(sub)
    _export(sub)
    _bench(sub)
    _report(sub)
    _info(sub)
    _data(sub)
    return p


def _config_command(sub, name: str, func, helps: tuple[str, str, str, str]):
    """A command that runs a config (run, sweep): its parser with the config and its overrides,
    the results folder and the data folder; `helps`: the command's and those of --set, --out
    and --data."""
    p = sub.add_parser(name, help=helps[0])
    p.add_argument(
        "config",
        help="a TOML file or the name of a shipped config (e.g. fig2_linear; spikefa info "
        "lists them)",
    )
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=helps[1])
    p.add_argument("--out", help=helps[2])
    p.add_argument("--data", help=helps[3])
    p.set_defaults(func=func)
    return p


def _run(sub) -> None:
    r = _config_command(
        sub,
        "run",
        commands.cmd_run,
        (
            "run an experiment config",
            "override a config key (dotted for tables; value parsed as TOML)",
            "results folder (default results/<name>-<timestamp>/)",
            "data folder (default $SPIKEFA_DATA, else ~/.cache/spikefa)",
        ),
    )
    r.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its latest checkpoints, under the same config",
    )
    r.add_argument(
        "--threads", type=int, help="BLAS threads (default: every core this process is given)"
    )


def _sweep(sub) -> None:
    w = _config_command(
        sub,
        "sweep",
        commands.cmd_sweep,
        (
            "replicate runs (and grids over --set values) on Dask, with statistics",
            "override a config key; a key given several times is a grid axis",
            "sweep folder (default results/sweep-<name>-<timestamp>/); restarting reuses finished "
            "runs",
            "data folder",
        ),
    )
    w.add_argument("--seeds", type=int, required=True, help="replicate runs per grid point")
    w.add_argument(
        "--candidates",
        metavar="SEARCH",
        help="a declared search: a TOML file of [[candidate]] tables, or the name of a shipped one",
    )
    w.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="a running Dask scheduler (default: a LocalCluster here)",
    )
    w.add_argument(
        "--workers", type=int, help="LocalCluster worker processes (default: one per core)"
    )


def _evaluate(sub) -> None:
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
    e.set_defaults(func=commands.cmd_evaluate)


def _traces(sub) -> None:
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
    t.set_defaults(func=commands.cmd_traces)


def _diagnose(sub) -> None:
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
    g.set_defaults(func=commands.cmd_diagnose)


def _export(sub) -> None:
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
    x.set_defaults(func=commands.cmd_export)


def _bench(sub) -> None:
    b = sub.add_parser("bench", help="side-by-side throughput, measured in one run")
    b.add_argument("what", choices=("rate", "spiking", "switches", "gpu"))
    b.add_argument(
        "--batch",
        type=int,
        default=50,
        help="spiking, switches: streams of the batched fast engine",
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
    b.add_argument(
        "--resume",
        metavar="CHECKPOINT",
        help="gpu: train this lane's checkpoint (a run's <mode>.npz) instead of the decay reading",
    )
    b.add_argument(
        "--brian2-wheels",
        metavar="DIR",
        help="gpu: install brian2cuda from the wheels in DIR for the Brian2 stage",
    )
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=commands.cmd_bench)


def _report(sub) -> None:
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
    rp.add_argument(
        "--points",
        action="store_true",
        help="write instead the table of one sweep's points against its first point, over its seeds",
    )
    rp.set_defaults(func=commands.cmd_report)


def _info(sub) -> None:
    i = sub.add_parser("info", help="versions, Brian2 devices, shipped configs and networks")
    i.set_defaults(func=commands.cmd_info)


def _data(sub) -> None:
    d = sub.add_parser("data", help="data sets")
    dsub = d.add_subparsers(dest="data_command", required=True)
    c = dsub.add_parser("check", help="verify the SHA-256 of every present data set")
    c.add_argument("--data", help="data folder (default $SPIKEFA_DATA, else ~/.cache/spikefa)")
    c.set_defaults(func=commands.cmd_data_check)
