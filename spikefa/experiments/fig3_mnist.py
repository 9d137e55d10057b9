"""Fig. 3a,b and Supp. Fig. 5 — MNIST with a 784-1000-10 sigmoid network.

Each algorithm trains `runs` networks online (run r uses seed + r: its own forward init, B, masks
and example order; BP and FA of one run start from the same W) with the training loop
(`spikefa.training_loop`; the network as `spikefa.rate.learner` trains it). Recorded: the
validation error every `train.eval_every` epochs (and before training), kept current in
`metrics.csv`; the angle between each hidden layer's δ and backprop's on every training example
(summarised in windows); the test error of the final network, read once; the angle between W and B
at the end, and the receptive fields of 100 hidden units of run 0. With `batch` > 1 the networks
learn in minibatches (NumPy BLAS, or CuPy with `backend = "cupy"`) and no δ angles are recorded.
Deeper and wider networks are a `sizes` away; `dataset` may also be fashion-mnist or svhn (3,072
standardised inputs).

Protocol: the last `train.validation` training images (default 10,000) are held out before anything
else (`train.images` then takes the first N of the rest). Anything chosen (learning rates, scales,
schedules, epochs) is chosen on the validation error, and the test error is what a run reports at
its end. `[per_algorithm.<name>]` tables give one algorithm its own settings (e.g. its own eta), so
that each algorithm can run at the settings chosen for it; the length of training is shared.

Network r of an algorithm saves `<algorithm>-run<r>.npz` at every evaluation and every
`checkpoint_minutes`; `--resume` continues each from it and ends with the same weights, bit for
bit, as an uninterrupted run: the example order comes from (seed, epoch) and the weights are saved
exactly. A finished network keeps its test error there and is not trained again.
"""

from __future__ import annotations

import copy
import json

import numpy as np

from spikefa import config, plotting
from spikefa.arrays import import_cupy
from spikefa.data import check_sizes, is_own_dataset, load_images, load_svhn
from spikefa.errors import SpikefaError
from spikefa.rate.learner import RateLearner, weights_digest
from spikefa.rate.network import ACTIVATIONS, ALGORITHMS, Network
from spikefa.seeds import stream
from spikefa.training_loop import Rules, Schedule, TrainingLoop

INPUTS = {"mnist": 784, "fashion-mnist": 784, "svhn": 3072}
# the settings an algorithm may have of its own ([per_algorithm.<name>]); everything else is shared
PER_ALGORITHM = (
    "eta",
    "eta_layers",
    "init_scale",
    "init_scale_layers",
    "feedback_scale",
    "feedback_scale_layers",
    "weight_decay",
    "sparsity",
    "train.eta_halving_epochs",
)
# the settings that do not change how a network learns: left out of its recipe
NOT_RECIPE = ("checkpoint_minutes", "runs", "algorithms", "per_algorithm")


def for_algorithm(cfg: dict, algo: str) -> dict:
    """The config `algo` runs with: the shared settings, with those of `[per_algorithm.<algo>]` in
    their place (each checked against the type of the shared key)."""
    own = cfg["per_algorithm"].get(algo, {})
    if not isinstance(own, dict):
        raise SpikefaError(f"per_algorithm.{algo} must be a table of settings, got {own!r}")
    flat = config.flat(own)
    if not flat:
        return cfg
    mine = copy.deepcopy(cfg)
    for key, value in flat.items():
        if key not in PER_ALGORITHM:
            raise SpikefaError(
                f"per_algorithm.{algo}.{key} is not a per-algorithm setting; those are: "
                f"{', '.join(PER_ALGORITHM)}"
            )
        config.set_checked(
            mine, key, value, like=config.dotted(cfg, key), name=f"per_algorithm.{algo}.{key}"
        )
    return mine


def layer_values(cfg: dict, key: str, n: int) -> list:
    """`<key>_layers` (n values) where given, else `key` n times."""
    return list(cfg[f"{key}_layers"]) or [cfg[key]] * n


def _validate_settings(cfg: dict, where: str) -> None:
    """The learning settings of one algorithm (`where`: "" or "per_algorithm.<name>.")."""
    for keys, allow_zero in (
        (("eta", "init_scale", "feedback_scale"), False),
        (("weight_decay", "train.eta_halving_epochs"), True),
    ):
        config.require_positive({where + k: config.dotted(cfg, k) for k in keys}, allow_zero)
    L = len(cfg["sizes"]) - 1
    for key, n in (("eta_layers", L), ("init_scale_layers", L), ("feedback_scale_layers", L - 1)):
        v = cfg[key]
        if v and (
            len(v) != n
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in v)
        ):
            raise SpikefaError(
                f"{where}{key} must be empty or {n} positive numbers (bottom layer first) for sizes "
                f"{cfg['sizes']}, got {v}"
            )
    if not 0 <= cfg["sparsity"] < 1:
        raise SpikefaError(f"{where}sparsity must be in [0, 1), got {cfg['sparsity']}")


def validate(cfg: dict) -> None:
    # node perturbation belongs to Fig. 2 only
    algos, known = cfg["algorithms"], [a for a in ALGORITHMS if a != "node_perturbation"]
    config.require_distinct("algorithms", algos, known)
    if cfg["dataset"] not in INPUTS and not is_own_dataset(cfg["dataset"]):
        raise SpikefaError(
            f"dataset must be one of {', '.join(INPUTS)} or a path to an .npz file, got {cfg['dataset']!r}"
        )
    sizes, n_in = cfg["sizes"], INPUTS.get(cfg["dataset"])  # an .npz file: checked when it is read
    if len(sizes) < 3 or min(sizes) < 1 or n_in and (sizes[0] != n_in or sizes[-1] != 10):
        raise SpikefaError(
            f"sizes must be [{n_in or 'inputs'}, hidden..., {10 if n_in else 'classes'}] for "
            f"{cfg['dataset']} with at least one hidden layer, got {sizes}"
        )
    _validate_numbers(cfg)
    if not isinstance(cfg["per_algorithm"], dict):
        raise SpikefaError("per_algorithm must be a table of tables, one per algorithm")
    for algo in cfg["per_algorithm"]:
        if algo not in known:
            raise SpikefaError(
                f"per_algorithm.{algo}: {algo!r} is not an algorithm of this experiment "
                f"({', '.join(known)})"
            )
    _validate_settings(cfg, "")
    for algo in cfg["per_algorithm"]:
        _validate_settings(for_algorithm(cfg, algo), f"per_algorithm.{algo}.")
    if (
        "sign_symmetric" in algos
        and len(set(for_algorithm(cfg, "sign_symmetric")["feedback_scale_layers"])) > 1
    ):
        raise SpikefaError(
            "sign_symmetric takes one feedback_scale: leave feedback_scale_layers empty for it"
        )
    if cfg["batch"] < 1:
        raise SpikefaError(f"batch must be at least 1, got {cfg['batch']}")
    if cfg["backend"] not in ("numpy", "cupy") or (cfg["backend"] == "cupy" and cfg["batch"] == 1):
        raise SpikefaError(
            f"backend must be numpy, or cupy with batch > 1 (online learning runs on the CPU), "
            f"got {cfg['backend']!r} with batch {cfg['batch']}"
        )


def _validate_numbers(cfg: dict) -> None:
    """The network's functions, its dtype, and the counts and lengths of training."""
    if cfg["hidden"] not in ACTIVATIONS or cfg["output"] not in ACTIVATIONS:
        raise SpikefaError(f"hidden and output must be among {', '.join(ACTIVATIONS)}")
    if cfg["output_delta"] not in ("e", "mse"):
        raise SpikefaError(f"output_delta must be e or mse, got {cfg['output_delta']!r}")
    if cfg["dtype"] not in ("float32", "float64"):
        raise SpikefaError(f"dtype must be float32 or float64, got {cfg['dtype']!r}")
    config.require_positive_keys(cfg, ("runs", "train.epochs", "train.eval_every", "angle.window"))
    config.require_positive_keys(
        cfg,
        ("train.images", "train.validation", "test.images", "checkpoint_minutes"),
        allow_zero=True,
    )


def make_network(cfg: dict, algorithm: str, seed: int) -> Network:
    """The network of `algorithm` at its own settings (`for_algorithm`)."""
    cfg, L = for_algorithm(cfg, algorithm), len(cfg["sizes"]) - 1
    return Network(
        cfg["sizes"],
        algorithm,
        stream(seed, "init"),
        stream(seed, "feedback"),
        stream(seed, "masks"),
        hidden=cfg["hidden"],
        output=cfg["output"],
        init_scale=layer_values(cfg, "init_scale", L),
        feedback_scale=layer_values(cfg, "feedback_scale", max(L - 1, 1)),
        sparsity=cfg["sparsity"],
        etas=layer_values(cfg, "eta", L),
        weight_decay=cfg["weight_decay"],
        output_delta=cfg["output_delta"],
        dtype=cfg["dtype"],
    )


def angle_window(cfg: dict, n_train: int) -> int:
    """Training examples per window of the δ angle: `angle.window`, or fewer where evaluations come
    sooner (a small data set), so that every run that measures angles reports them."""
    return min(cfg["angle"]["window"], max(1, round(cfg["train"]["eval_every"] * n_train)))


def run(cfg: dict, out, data_dir=None, resume: bool = False) -> dict:
    sets, data_shape = _data(cfg, data_dir)
    n_train, n_val = len(sets["train"][0]), len(sets["validation"][0])
    fields = {"initial": make_network(cfg, cfg["algorithms"][0], cfg["seed"]).W[1].copy()}
    curves, so_far = {}, {}

    def keep_current(algo, r, curve):  # metrics.csv of every network so far
        so_far[(algo, r)] = curve[:, 0], curve[:, 1]
        _write_metrics(so_far, n_train, out)

    for algo in cfg["algorithms"]:
        curves[algo] = []
        for r in range(cfg["runs"]):
            c, W1 = _train_network(cfg, algo, r, sets, out, resume, keep_current)
            if r == 0:
                fields[algo] = W1
            curves[algo].append(c)
    results = {a: summarise(cfg, cs, n_train) for a, cs in curves.items()}
    for a in results:
        results[a]["validation_images"] = n_val
    _write(curves, fields, n_train, out)
    _figures(cfg, curves, fields, n_train, out, data_shape)
    stats = {}
    if "bp" in curves and n_val:  # where BP's mean validation error is lowest
        mean_bp = np.mean([c["validation_error"] for c in curves["bp"]], axis=0)
        stats["bp_best_epoch"] = float(
            curves["bp"][0]["examples"][int(np.argmin(mean_bp))] / n_train
        )
    return {"results": results, "stats": stats}


def _data(cfg: dict, data_dir):
    """The train (images, one-hot targets), validation and test sets, and the images' shape: the
    validation images held out first, so that they never train."""
    data = (
        load_svhn(data_dir) if cfg["dataset"] == "svhn" else load_images(cfg["dataset"], data_dir)
    )
    check_sizes(data, cfg["sizes"], cfg["dataset"])
    data = data.holdout(cfg["train"]["validation"])
    n_train = cfg["train"]["images"] or len(data.train_x)
    n_test = cfg["test"]["images"] or len(data.test_x)
    dt = cfg["dtype"]
    X, labels = data.train_x[:n_train].astype(dt), data.train_y[:n_train]
    sets = {
        "train": (X, np.eye(cfg["sizes"][-1], dtype=dt)[labels]),
        "validation": (data.val_x.astype(dt), data.val_y),
        "test": (data.test_x[:n_test].astype(dt), data.test_y[:n_test]),
    }
    return sets, data.shape


def recipes(cfg: dict) -> dict[str, dict]:
    """The recipe of each checkpoint a run of `cfg` writes, by its name: what a resume must
    share."""
    return {
        _name(algo, r): recipe(cfg, algo, cfg["seed"] + r)
        for algo in cfg["algorithms"]
        for r in range(cfg["runs"])
    }


def _name(algo: str, r: int) -> str:
    return f"{algo}-run{r}"


def recipe(cfg: dict, algo: str, seed: int) -> dict:
    """Everything that defines how network `seed` of `algo` is trained; a resumed run must have
    the same."""
    own = for_algorithm(cfg, algo)
    kept = {k: v for k, v in own.items() if k not in NOT_RECIPE}
    return json.loads(json.dumps({**kept, "algorithm": algo, "seed": seed}))


def _train_network(cfg: dict, algo: str, r: int, sets: dict, out, resume: bool, on_curve):
    """Network r of rule `algo`, trained (online, or in minibatches of `batch`) over
    `train.epochs` reshuffled epochs with the validation error measured every `train.eval_every`
    epochs (`on_curve(algo, r, curve)` sees it) and the test error read at the end: its curves
    and its first weight layer."""
    own, seed, n = for_algorithm(cfg, algo), cfg["seed"] + r, len(sets["train"][0])
    chunk = max(1, int(round(own["train"]["eval_every"] * n)))
    learner = RateLearner(
        lambda: make_network(cfg, algo, seed),
        layer_values(own, "eta", len(cfg["sizes"]) - 1),
        lambda seen: config.eta_at(own, seen / n) / own["eta"],
        own["batch"],
        angle_window(own, n),
        import_cupy() if own["backend"] == "cupy" else np,
    )
    loop = TrainingLoop(
        learner,
        Schedule(n, [int(round(own["train"]["epochs"] * n))]),
        sets,
        out.path,
        _name(algo, r),
        recipe=recipe(cfg, algo, seed),
        seed=seed,
        chunk=chunk,
        rules=Rules(
            every=chunk,
            checkpoint_minutes=own["checkpoint_minutes"],
            select=False,
            measure_first=True,
        ),
        label=f"{algo} run {r}",
        on_measure=[lambda _, curve, __: on_curve(algo, r, curve)],
    )
    loop.start(resume)
    test_error = loop.run()["test_error"]
    net, aw = learner.net.to(np), learner.angle_windows()
    curve = np.array(loop.curve).reshape(-1, 2)
    c = {
        "examples": curve[:, 0].astype(int),
        "test_error": test_error,  # read once, when training has ended
        "validation_error": curve[:, 1],
        "seconds": loop.wall,
        "angle_mean": np.nanmean(aw, axis=1) if len(aw) else aw[:, 0],
        "angle_sd": np.nanstd(aw, axis=1) if len(aw) else aw[:, 0],
        "weight_feedback_angles": np.array(net.weight_feedback_angles()),
        "weights_sha256": np.array(weights_digest(net)),
    }
    return c, net.W[1].copy()


def _write_metrics(curves: dict, n_train: int, out) -> None:
    """metrics.csv: the validation curve of every network, `curves` {(algo, run): (examples,
    validation errors)}."""
    rows = [
        {
            "algorithm": a,
            "run": r,
            "epoch": k / n_train,
            "examples": int(k),
            "validation_error": float(v),
        }
        for (a, r), (examples, errors) in curves.items()
        for k, v in zip(examples, errors)
    ]
    out.write_csv("metrics.csv", rows)


def _write(curves: dict, fields: dict, n_train: int, out) -> None:
    """metrics.csv and curves.npz (everything measured)."""
    every = {
        (a, r): (c["examples"], c["validation_error"])
        for a, cs in curves.items()
        for r, c in enumerate(cs)
    }
    _write_metrics(every, n_train, out)
    out.write_npz(
        "curves.npz",
        **{
            f"{a}_run{r}_{k}": np.asarray(v)
            for a, cs in curves.items()
            for r, c in enumerate(cs)
            for k, v in c.items()
            if k not in ("seconds", "weights_sha256")
        },
        **{f"fields_{k}": v for k, v in fields.items()},
    )


def summarise(cfg: dict, cs: list, n_train: int) -> dict:
    final = np.array([float(np.ravel(c["test_error"])[-1]) for c in cs])  # older runs kept a curve
    # NaN (null): no validation set
    val = np.array([c["validation_error"][-1] if len(c["examples"]) else np.nan for c in cs])
    seconds = np.array([c["seconds"] for c in cs])
    out = {
        "test_error": float(final.mean()),
        "test_error_sd": float(final.std(ddof=1)) if len(cs) > 1 else 0.0,
        "test_errors": final.tolist(),
        "validation_error": float(val.mean()),
        "validation_error_sd": float(val.std(ddof=1)) if len(cs) > 1 else 0.0,
        "validation_errors": val.tolist(),
        "runs": len(cs),
        "epochs": cfg["train"]["epochs"],
        "train_seconds_per_run": float(seconds.mean()),
        "examples_per_s": float(cfg["train"]["epochs"] * n_train / seconds.mean()),
    }
    tail = [
        c["angle_mean"][-max(1, len(c["angle_mean"]) // 10) :] for c in cs if len(c["angle_mean"])
    ]
    if tail:  # mean over the last tenth of training, per hidden layer (bottom first)
        per_layer = np.nanmean(np.concatenate(tail), axis=0)
        out["angle_deg_final"] = float(per_layer[-1])
        out["angle_deg_final_per_layer"] = per_layer.tolist()
    if len(cs[0]["weight_feedback_angles"]):
        out["angle_deg_w_vs_b_final"] = float(
            np.mean([c["weight_feedback_angles"][-1] for c in cs])
        )
    out["weights_sha256"] = [str(c["weights_sha256"]) for c in cs]
    return out


def _figures(cfg: dict, curves: dict, fields: dict, n_train: int, out, shape: tuple) -> None:
    if all(len(cs[0]["examples"]) for cs in curves.values()):
        # the error over training, on held-out images: the test set is read once, at the end
        fig, ax = plotting.new_axes()
        for a, cs in curves.items():
            x = cs[0]["examples"] / n_train
            plotting.plot_curve(
                ax, x, 100 * np.mean([c["validation_error"] for c in cs], axis=0), a
            )
        ax.axhline(100 * (1 - 1 / cfg["sizes"][-1]), color="0.5", linestyle="--", linewidth=0.8)
        ax.set(
            yscale="log",
            xlabel="epochs",
            ylabel="validation error (%)",
            title=f"Fig. 3a — {'-'.join(map(str, cfg['sizes']))}",
        )
        ax.legend(frameon=False, fontsize=8)
        out.savefig(fig, "validation_error.png")
        plotting.close(fig)

    banded = [a for a, cs in curves.items() if len(cs[0]["angle_mean"])]
    if banded:
        fig, ax = plotting.new_axes()
        w = angle_window(cfg, n_train)
        for a in banded:
            c = curves[a][0]
            x = (np.arange(len(c["angle_mean"])) + 1) * w / n_train
            plotting.plot_angle_band(
                ax,
                x,
                c["angle_mean"][:, -1],
                c["angle_sd"][:, -1],
                a,
                n_sd=1.0,
                label=f"{a} (windows of {w}, ±1 SD)",
            )
        ax.set(xlabel="epochs", title="Fig. 3b — top hidden layer")
        ax.legend(frameon=False, fontsize=8)
        out.savefig(fig, "angle.png")
        plotting.close(fig)

    units = stream(cfg["seed"], "figures").choice(
        cfg["sizes"][1], size=min(100, cfg["sizes"][1]), replace=False
    )
    fig = plotting.receptive_fields({k: v[:, units] for k, v in fields.items()}, shape)
    out.savefig(fig, "receptive_fields.png")
    plotting.close(fig)
