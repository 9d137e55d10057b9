"""`spikefa report RESULTS_DIR... --out FILE.md`: the results page, generated from results folders.

One row per claim of the paper: the paper's value, ours (mean ± SD, n), the conditions, the command
that reproduces our number, and a verdict:

- **reproduced** — the claim's rule holds and the run used the paper's conditions;
- **reproduced with deviations** — the rule holds, but under conditions the paper did not have
  (each one listed);
- **not reproduced** — the rule fails (the deviations are listed too);
- **not run** — no results folder for the claim was given.

Inputs, in any mix: a results folder of `spikefa run` (`summary.json`, `config.toml`), a sweep folder
of `spikefa sweep` (`sweep.json`, `runs/<point>/seed-*/`), a spiking checkpoint `.npz` (its `meta`
JSON: `test_error`, `config`, `selected_on`), or the JSON that `spikefa evaluate --json` prints, saved
to a file (with `checkpoint` naming the network; `test_errors` lists its spike draws). A source
belongs to a claim by its experiment and its config: the recipe it names (`recipe`), else the
shipped config closest to its resolved config.

Every claim is one entry of `CLAIMS` below: what the paper says, which runs measure it, how our
number is read from them, and the rule that decides the verdict.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from spikefa import config
from spikefa.errors import SpikefaError

VERDICTS = ("reproduced", "reproduced with deviations", "not reproduced", "not run")
NOT_SETTINGS = {"seed", "runs", "checkpoint_minutes", "backend", "threads", "device", "chunk_images",
                "keep_snapshots", "train.eval_every", "angle.window", "angle.final_examples", "test.points",
                "validation.every_images"}  # bookkeeping: they do not change what is measured


# ------------------------------------------------------------------------------------------ sources
@dataclass
class Source:
    """What one results folder (run or sweep point) or checkpoint measured."""
    path: Path
    kind: str                    # run | sweep | checkpoint
    experiment: str
    name: str                    # the shipped config (or recipe) it ran
    cfg: dict                    # its resolved config (one run's, for a sweep)
    values: dict                 # algorithm → metric → list of values (one per run)
    command: str
    figures: list = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    origins: dict = field(default_factory=dict)  # figure → the command of the run that drew it, where joined

    def get(self, algo: str, metric: str) -> list:
        return [v for v in self.values.get(algo, {}).get(metric, []) if v is not None]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SpikefaError(f"cannot read {path}: {exc}") from None


def _read_toml_text(text: str, where) -> dict:
    try:
        return tomllib.loads(text)
    except ValueError as exc:
        raise SpikefaError(f"{where}: the config it records is not valid TOML ({exc})") from None


def _values(result: dict) -> dict:
    """metric → list: the per-run list where the summary has one (`test_errors` for `test_error`)."""
    out = {}
    for k, v in result.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, type(None))):
            continue
        many = result.get(k + "s")
        out[k] = [float(x) if x is not None else None for x in many] if isinstance(many, list) else [v]
    return out


def _shipped(name: str) -> dict:
    return config.resolve(name)


def closest_config(cfg: dict) -> tuple[str, dict]:
    """The shipped config a resolved config comes from (its `recipe`, else the one of its experiment
    with the fewest differing settings) and those differences (dotted key → value)."""
    names = [n for n in config.shipped_configs() if _safe_experiment(n) == cfg.get("experiment")]
    if cfg.get("recipe") in names:
        names = [cfg["recipe"]]
    if not names:
        return cfg.get("experiment", "?"), {}
    best = None
    for n in names:
        d = differences(_shipped(n), cfg)
        if best is None or len(d) < len(best[1]):
            best = (n, d)
    return best


def _safe_experiment(name: str):
    try:
        return config.resolve(name)["experiment"]
    except SpikefaError:
        return None


def differences(base: dict, cfg: dict) -> dict:
    """The settings of `cfg` that differ from `base` (dotted keys; bookkeeping keys left out)."""
    a, b = config._flat(base), config._flat(cfg)
    return {k: v for k, v in b.items() if a.get(k) != v and k not in NOT_SETTINGS and k != "experiment"}


def _toml_value(v) -> str:
    """A value as TOML on one line (tables inline, as `--set` takes them)."""
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list) and any(isinstance(x, dict) for x in v):
        return "[" + ", ".join(map(_toml_value, v)) + "]"
    return config.to_toml({"v": v}).strip()[len("v = "):]


def _set_item(key: str, v) -> str:
    """`--set KEY=VALUE`, quoted for the shell where the value needs it."""
    item = f"{key}={_toml_value(v)}"
    return f"--set '{item}'" if re.search(r"[^\w.,=+-]", item) else f"--set {item}"


def command_for(kind: str, cfg: dict, seeds: int = 0) -> str:
    name, diff = closest_config(cfg)
    sets = " ".join(_set_item(k, v) for k, v in diff.items())
    if kind == "sweep":
        return f"spikefa sweep {name} --seeds {seeds}" + (f" {sets}" if sets else "")
    runs = cfg.get("runs")
    if runs is not None and runs != _shipped(name).get("runs"):
        sets = (sets + " " if sets else "") + f"--set runs={runs}"
    return f"spikefa run {name}" + (f" {sets}" if sets else "")


def load_source(path: str | Path) -> list[Source]:
    """The sources in a results folder, sweep folder, checkpoint or saved evaluation."""
    path = Path(path)
    if (path / "sweep.json").is_file():
        return _sweep_sources(path)
    if (path / "summary.json").is_file():
        s = _read_json(path / "summary.json")
        cfg = config.resolve(str(path / "config.toml")) if (path / "config.toml").is_file() else {}
        cfg.setdefault("experiment", s.get("experiment"))
        name, _ = closest_config(cfg)
        return [Source(path, "run", s.get("experiment", "?"), name, cfg,
                       {arm(cfg, a): _values(r) for a, r in s.get("results", {}).items()}, command_for("run", cfg),
                       sorted((path / "figures").glob("*.png")), s.get("stats", {}))]
    if path.suffix == ".npz" and path.is_file():
        return [_checkpoint_source(path)]
    if path.suffix == ".json" and path.is_file():
        e = _read_json(path)
        if "checkpoint" not in e or "test_error" not in e:
            raise SpikefaError(f"{path} is not the output of spikefa evaluate --json (no checkpoint and test_error)")
        ckpt = Path(e["checkpoint"])
        src = _checkpoint_source(ckpt if ckpt.is_absolute() or ckpt.exists() else path.parent / ckpt)
        src.values["fa"] = {"test_error": e.get("test_errors") or [e["test_error"]]}
        repeats = len(e.get("test_errors") or [0])
        src.command = (f"spikefa evaluate {e['checkpoint']} --engine {e.get('engine', 'fast')}"
                       + (f" --repeats {repeats}" if repeats > 1 else "") + f"  (trained by: {src.command})")
        src.path = path
        src.figures = src.figures or sorted((path.parent / "figures").glob("*.png"))  # saved in a results folder
        return [src]
    raise SpikefaError(f"{path} is not a results folder (summary.json), a sweep folder (sweep.json), "
                       f"a checkpoint (.npz) or a saved evaluation (.json)")


def arm(cfg: dict, algorithm: str) -> str:
    """An algorithm's name in the report: `fa_frozen12` for a run whose weight layers 1 and 2 kept
    their initial weights (`frozen_layers`), else the algorithm's own name."""
    frozen = cfg.get("frozen_layers") or []
    return f"{algorithm}_frozen{''.join(map(str, frozen))}" if frozen else algorithm


def _sweep_sources(path: Path) -> list[Source]:
    s = _read_json(path / "sweep.json")
    out = []
    for p in s.get("points", []):
        done = [Path(r["folder"]) for r in p.get("runs", [])]
        done = [f if f.is_absolute() else path / "runs" / p["name"] / f.name for f in done]
        cfgs = [f / "config.toml" for f in done if (f / "config.toml").is_file()]
        cfg = config.resolve(str(cfgs[0])) if cfgs else {"experiment": s.get("experiment")}
        name, _ = closest_config(cfg)
        values = {a: {m: d["values"] for m, d in ms.items()} for a, ms in p.get("metrics", {}).items()}
        figures = sorted((path / "figures").glob("*.png"))
        if cfgs:
            figures += sorted((cfgs[0].parent / "figures").glob("*.png"))
        out.append(Source(path, "sweep", s.get("experiment", "?"), name, cfg, values,
                          command_for("sweep", cfg, s.get("seeds", len(done))), figures, p.get("tests", {})))
    return out


def _checkpoint_source(path: Path) -> Source:
    from spikefa.results import load_npz

    z = load_npz(path, "checkpoint")
    if "meta" not in z:
        raise SpikefaError(f"{path} is not a spikefa checkpoint (no meta)")
    try:
        meta = json.loads(str(z["meta"]))
    except ValueError:
        raise SpikefaError(f"{path}: its meta is not JSON") from None
    recipe = meta.get("config")
    if isinstance(recipe, dict):
        cfg = recipe
    elif isinstance(recipe, str) and "=" in recipe:
        cfg = _read_toml_text(recipe, path)
    elif isinstance(recipe, str) and recipe:
        cfg = {**_shipped(recipe), "recipe": recipe} if _safe_experiment(recipe) else {"recipe": recipe}
    else:
        cfg = {}
    cfg.setdefault("experiment", "fig4_spiking")
    # a checkpoint that records no config matches no claim (its recipe is unknown)
    name = cfg.get("recipe") or (closest_config(cfg)[0] if len(cfg) > 1 else "")
    errors = meta.get("test_errors") or ([meta["test_error"]] if meta.get("test_error") is not None else [])
    val = meta.get("validation_error", (meta.get("best") or {}).get("validation_error"))
    values = {"fa": {"test_error": errors, "validation_error": [val]},
              "_meta": {"selected_on_validation": [1.0 if meta.get("selected_on") == "validation" else 0.0],
                        "epochs_trained": [meta["epoch"]] if "epoch" in meta else []}}
    return Source(path, "checkpoint", cfg["experiment"], name, cfg, values,
                  f"spikefa run {name}" if name else "(its recipe is not recorded)",
                  sorted((path.parent / "figures").glob("*.png")))  # a checkpoint in its results folder


# ------------------------------------------------------------------------------------------- rules
@dataclass
class Outcome:
    passed: bool | None          # None: the sources lack what the rule reads
    note: str


def _mean(v: list) -> float:
    return float(np.mean(v)) if v else math.nan


def _fmt(v: float, unit: str) -> str:
    if unit == "%":
        return f"{100 * v:.2f}%"
    if unit == "°":
        return f"{v:.1f}°"
    return f"{v:.3g}"


def at_most(algo: str, metric: str, limit: float, unit: str = "%") -> Callable:
    """Mean of `algo`'s `metric` ≤ limit."""
    def rule(s: Source) -> Outcome:
        v = s.get(algo, metric)
        if not v:
            return Outcome(None, f"no {algo} {metric}")
        m = _mean(v)
        return Outcome(m <= limit, f"{algo} {_fmt(m, unit)} {'≤' if m <= limit else '>'} {_fmt(limit, unit)}")
    return rule


def below(a: str, b: str, metric: str, unit: str = "%", p: float | None = None) -> Callable:
    """Mean `metric` of `a` below that of `b` (and, with `p`, a two-sided Student t-test p < p)."""
    def rule(s: Source) -> Outcome:
        va, vb = s.get(a, metric), s.get(b, metric)
        if not va or not vb:
            return Outcome(None, f"no {a if not va else b} {metric}")
        ok, note = _mean(va) < _mean(vb), f"{a} {_fmt(_mean(va), unit)} vs {b} {_fmt(_mean(vb), unit)}"
        if len(va) > 1 and len(vb) > 1:
            from spikefa.sweep import t_tests

            pv = t_tests(va, vb)["student_p"]  # None: no spread in either group
            note += f", Student p = {pv:.2g}" if pv is not None else ", no spread (no t-test)"
            if p is not None:
                ok = ok and pv is not None and pv < p
        elif p is not None:
            ok, note = False, note + f" (one run each: no test, and the claim needs p < {p:g})"
        return Outcome(ok, note)
    return rule


def _pair(a: str, b: str, metric: str, judge: Callable[[float, float], tuple[bool, str]]) -> Callable:
    """A rule on the means of `metric` for `a` and for `b`: `judge(mean_a, mean_b)` gives (holds, text)."""
    def rule(s: Source) -> Outcome:
        va, vb = s.get(a, metric), s.get(b, metric)
        if not va or not vb:
            return Outcome(None, f"no {metric} for {a if not va else b}")
        return Outcome(*judge(_mean(va), _mean(vb)))
    return rule


def within_points(a: str, b: str, metric: str, points: float) -> Callable:
    """Mean `metric` of `a` at most `points` percentage points above that of `b`."""
    def judge(ma: float, mb: float) -> tuple[bool, str]:
        gap = 100 * (ma - mb)
        return gap <= points, f"{a} − {b} = {gap:+.2f} points ({'≤' if gap <= points else '>'} {points:g})"
    return _pair(a, b, metric, judge)


def within_factor(a: str, b: str, metric: str, factor: float) -> Callable:
    """Means of `a` and `b` within a factor `factor` of each other."""
    def judge(ma: float, mb: float) -> tuple[bool, str]:
        ok = 1 / factor <= ma / mb <= factor
        return ok, f"{a}/{b} = {ma / mb:.2f} (within ×{factor:g}: {ok})"
    return _pair(a, b, metric, judge)


def between(algo: str, metric: str, lo: float, hi: float, unit: str = "°") -> Callable:
    def rule(s: Source) -> Outcome:
        v = s.get(algo, metric)
        if not v:
            return Outcome(None, f"no {algo} {metric}")
        m = _mean(v)
        return Outcome(lo <= m <= hi, f"{algo} {metric} {_fmt(m, unit)} (rule: {_fmt(lo, unit)}–{_fmt(hi, unit)})")
    return rule


def every(*rules: Callable) -> Callable:
    def rule(s: Source) -> Outcome:
        outs = [r(s) for r in rules]
        passed = None if any(o.passed is None for o in outs) else all(o.passed for o in outs)
        return Outcome(passed, "; ".join(dict.fromkeys(o.note for o in outs)))
    return rule


def omega_rule(kind: str) -> Callable:
    """supp_init_scale: 'faster' — the smallest ω ends with a lower NSE than the largest;
    'pseudo' — for every ω ≤ 0.01, δ_FA is closer to pseudo-backprop than to backprop."""
    def rule(s: Source) -> Outcome:
        omegas = sorted((float(k[len("omega_"):]), k) for k in s.values if k.startswith("omega_"))
        if len(omegas) < 2:
            return Outcome(None, "no ω sweep")
        if kind == "faster":
            lo, hi = (s.get(omegas[i][1], "test_nse") for i in (0, -1))
            ok = _mean(lo) < _mean(hi)
            return Outcome(ok, f"final NSE ω={omegas[0][0]:g}: {_mean(lo):.2g}, ω={omegas[-1][0]:g}: {_mean(hi):.2g}")
        small = [(w, s.get(k, "angle_deg_to_pseudo_bp_final"), s.get(k, "angle_deg_to_bp_final"))
                 for w, k in omegas if w <= 0.01]
        ok = bool(small) and all(_mean(p) < _mean(b) for _, p, b in small)
        return Outcome(ok, "; ".join(f"ω={w:g}: {_mean(p):.1f}° to W⁺e vs {_mean(b):.1f}° to Wᵀe" for w, p, b in small))
    return rule


# ------------------------------------------------------------------------------------------ claims
@dataclass
class Claim:
    key: str
    figure: str
    claim: str
    paper: str
    config: str                          # the shipped config (or recipe) whose runs measure it
    ours: list                           # (label, algorithm, metric, unit) shown as mean ± SD (n)
    rule: Callable | None                # None: no rule can be checked here (always "not run")
    command: str                         # what to run when no results folder is given
    paper_conditions: dict = field(default_factory=dict)  # dotted key → (paper's value, what it means)
    paper_n: int = 1
    where: Callable = lambda cfg: True   # which runs of `config` qualify
    figures: tuple = ()                  # figure files to show (from the source folders)
    arms: bool = False                   # compare runs that differ only in algorithm, η or frozen layers


def as_declared(recipe: str) -> Callable:
    """Runs of a recipe exactly as it is declared (a checkpoint of a run still under way counts)."""
    return lambda cfg: not {k for k in differences(_shipped(recipe), cfg) if k != "name"}


MNIST_1000 = lambda cfg: cfg.get("sizes") == [784, 1000, 10] and cfg.get("dataset") == "mnist"  # noqa: E731
FIG3A = {"batch": (1, "online learning"), "train.epochs": (20.0, "20 epochs"), "sizes": ([784, 1000, 10], "784-1000-10")}
SPIKING = {"plasticity_delay": (0, "plasticity at every step"), "train.eta_halving_epochs": (0.0, "constant η"),
           "feedback": ("", "the model's feedback"), "plasticity": ("", "the model's plasticity"),
           "sizes": ([784, 1500, 1500, 1500, 10], "784-1500-1500-1500-10")}

CLAIMS = [
    Claim("fig2a", "Fig. 2a", "linear 30-20-10: BP and FA reach a low NSE fast and at a similar speed, node "
          "perturbation is slower, shallow learning barely improves", "qualitative (no numbers)", "fig2_linear",
          [("FA examples to NSE 10⁻²", "fa", "examples_to_nse_0.01", ""),
           ("BP", "bp", "examples_to_nse_0.01", ""), ("NP", "node_perturbation", "examples_to_nse_0.01", ""),
           ("shallow final NSE", "shallow", "test_nse", "")],
          every(within_factor("fa", "bp", "examples_to_nse_0.01", 2.0),
                below("fa", "node_perturbation", "examples_to_nse_0.01", ""), between("shallow", "test_nse", 0.1, 10, "")),
          "spikefa sweep fig2_linear --seeds 20", paper_n=20, figures=("nse.png", "sweep_test_nse.png")),
    Claim("fig2b", "Fig. 2b", "linear: the angle between δ_FA and δ_BP starts near 90° and falls well below it",
          "from ≈90° to well below 90° (no number)", "fig2_linear",
          [("initial", "fa", "angle_deg_initial", "°"), ("final", "fa", "angle_deg_final", "°")],
          every(between("fa", "angle_deg_initial", 75, 90), between("fa", "angle_deg_final", 0.01, 60)),
          "spikefa sweep fig2_linear --seeds 20", paper_n=20, figures=("angle.png",)),
    Claim("fig3a_bp", "Fig. 3a", "MNIST 784-1000-10: backprop's test error", "2.4% (n = 20)", "fig3_mnist",
          [("BP", "bp", "test_error", "%")], at_most("bp", "test_error", 0.024 + 0.005),
          "spikefa sweep fig3_mnist --seeds 20", FIG3A, 20, MNIST_1000, ("test_error.png", "sweep_test_error.png")),
    Claim("fig3a_fa", "Fig. 3a", "MNIST 784-1000-10: feedback alignment's test error", "2.1% (n = 20)",
          "fig3_mnist", [("FA", "fa", "test_error", "%")], at_most("fa", "test_error", 0.021 + 0.005),
          "spikefa sweep fig3_mnist --seeds 20", FIG3A, 20, MNIST_1000),
    Claim("fig3a_order", "Fig. 3a", "MNIST: FA's test error is below backprop's (2.1% vs 2.4%)", "FA < BP",
          "fig3_mnist", [("FA", "fa", "test_error", "%"), ("BP", "bp", "test_error", "%")],
          below("fa", "bp", "test_error"), "spikefa sweep fig3_mnist --seeds 20", FIG3A, 20, MNIST_1000),
    Claim("fig3a_sparse", "Fig. 3a", "MNIST: sparse FA (50% of W and B removed) learns as well", "2.4% (n = 20)",
          "fig3_mnist", [("sparse FA", "sparse_fa", "test_error", "%")], at_most("sparse_fa", "test_error", 0.024 + 0.005),
          "spikefa sweep fig3_mnist --seeds 20", FIG3A, 20, MNIST_1000),
    Claim("fig3a_shallow", "Fig. 3a", "MNIST: shallow learning (hidden layer fixed) is much worse", "7.2%",
          "fig3_mnist", [("shallow", "shallow", "test_error", "%")],
          every(between("shallow", "test_error", 0.05, 0.10, "%"), below("fa", "shallow", "test_error")),
          "spikefa sweep fig3_mnist --seeds 20", FIG3A, 20, MNIST_1000),
    Claim("fig3b", "Fig. 3b", "MNIST: the angle between δ_FA and δ_BP drops from ≈90° and stays well below 90°",
          "well below 90° (no number)", "fig3_mnist", [("FA, end of training", "fa", "angle_deg_final", "°")],
          between("fa", "angle_deg_final", 0.01, 60), "spikefa sweep fig3_mnist --seeds 20", FIG3A, 20, MNIST_1000,
          ("angle.png",)),
    Claim("fig3cd_depth", "Fig. 3c,d", "nonlinear function fitting: the 4-layer student beats the 3-layer one, "
          "for FA and for BP", "FA p = 9×10⁻¹³, BP p = 3×10⁻¹² (n = 20)", "fig3_deep",
          [("FA 4-layer", "fa4", "test_nse", ""), ("FA 3-layer", "fa3", "test_nse", ""),
           ("BP 4-layer", "bp4", "test_nse", ""), ("BP 3-layer", "bp3", "test_nse", "")],
          every(below("fa4", "fa3", "test_nse", "", p=1e-3), below("bp4", "bp3", "test_nse", "", p=1e-3)),
          "spikefa sweep fig3_deep --seeds 20", paper_n=20, figures=("nse.png", "sweep_test_nse.png")),
    Claim("fig3d_fa_bp", "Fig. 3d", "nonlinear function fitting: FA is as good as BP at each depth", "FA ≈ BP",
          "fig3_deep", [("FA 4-layer", "fa4", "test_nse", ""), ("BP 4-layer", "bp4", "test_nse", "")],
          every(within_factor("fa4", "bp4", "test_nse", 1.5), within_factor("fa3", "bp3", "test_nse", 1.5)),
          "spikefa sweep fig3_deep --seeds 20", paper_n=20),
    Claim("supp_frozen", "Supp. Fig. 6", "FA uses depth: freezing the first layer of the 4-layer FA student "
          "makes it worse", "frozen W0 worse (no number)", "fig3_deep",
          [("FA 4-layer", "fa4", "test_nse", ""), ("FA 4-layer, W0 frozen", "fa4_frozen_w0", "test_nse", "")],
          below("fa4", "fa4_frozen_w0", "test_nse", "", p=1e-3), "spikefa sweep fig3_deep --seeds 20", paper_n=20),
    Claim("fig4_faithful", "Fig. 4", "spiking 784-1500-1500-1500-10 network trained by FA, paper-faithful recipe",
          "1.8%", "fig4_paper_fa", [("FA", "fa", "test_error", "%")], at_most("fa", "test_error", 0.018 + 0.002),
          "spikefa run fig4_paper_fa", SPIKING, where=as_declared("fig4_paper_fa"), figures=("validation_error.png",)),
    Claim("fig4_best", "Fig. 4", "spiking network, the best recipe found (its extra ingredients listed)", "1.8%",
          "fig4_best_fa", [("FA", "fa", "test_error", "%")], at_most("fa", "test_error", 0.018 + 0.002),
          "spikefa run fig4_best_fa", SPIKING, where=as_declared("fig4_best_fa"), figures=("validation_error.png",)),
    Claim("fig4_decay", "Fig. 4", "spiking network under the literal reading of the time constant "
          "(PSP × 0.9 per step)", "1.8%", "fig4_paper_fa", [("FA", "fa", "test_error", "%")],
          at_most("fa", "test_error", 0.018 + 0.002), "spikefa run fig4_paper_fa --set reading=decay --set "
          "'schedule=[{epochs = 100, eta = 1e-4, steps_per_image = 100}]'", SPIKING,
          where=lambda cfg: cfg.get("reading") == "decay"),
    Claim("fig4_controls", "Fig. 4 (control)", "spiking network: feedback alignment trains the hidden layers — FA "
          "beats the same recipe with the hidden layers' forward weights frozen at their initial values (all three: "
          "only the output layer learns; the lowest two), on validation and test error",
          "not measured in the paper", "fig4_paper_fa",
          [("FA validation", "fa", "validation_error", "%"), ("FA test", "fa", "test_error", "%"),
           ("layers 1–3 frozen: validation", "fa_frozen123", "validation_error", "%"),
           ("test", "fa_frozen123", "test_error", "%"),
           ("layers 1–2 frozen: validation", "fa_frozen12", "validation_error", "%"),
           ("test", "fa_frozen12", "test_error", "%")],
          every(*(below("fa", f"fa_frozen{c}", m) for c in ("123", "12") for m in ("validation_error", "test_error"))),
          "spikefa run fig4_paper_fa --set 'frozen_layers=[1,2,3]'; spikefa run fig4_paper_fa --set "
          "'frozen_layers=[1,2]'", SPIKING, arms=True, figures=("validation_error.png",)),
    Claim("fig4_algorithms", "Fig. 4 (comparison)", "spiking network: FA learns about as well as backprop (within "
          "1 point of test error) under the same recipe and training time; direct feedback alignment for comparison",
          "not measured in the paper", "fig4_paper_fa",
          [("FA", "fa", "test_error", "%"), ("BP", "bp", "test_error", "%"), ("DFA", "dfa", "test_error", "%")],
          within_points("fa", "bp", "test_error", 1.0),
          "spikefa run fig4_paper_fa --set 'algorithms=[\"bp\"]'; spikefa run fig4_paper_fa --set "
          "'algorithms=[\"dfa\"]'", SPIKING, arms=True),
    Claim("fig5", "Fig. 5a,c", "20-1000-20 tanh net, quadratic target: W comes to align with Bᵀ, and learning "
          "in the hidden layer helps", "W–Bᵀ angle falls well below 90° (no number)", "fig5_quadratic",
          [("W–Bᵀ angle, start", "fa", "angle_deg_w_vs_b_initial", "°"),
           ("W–Bᵀ angle, end", "fa", "angle_deg_w_vs_b_final", "°"), ("FA NSE", "fa", "test_nse", ""),
           ("FA, hidden frozen", "fa_frozen_w0", "test_nse", "")],
          every(between("fa", "angle_deg_w_vs_b_final", 0, 60), below("fa", "fa_frozen_w0", "test_nse", "")),
          "spikefa run fig5_quadratic", figures=("alignment.png", "nse.png")),
    Claim("supp_omega", "Supp. (arXiv Fig. 4a)", "linear FA: smaller initial weights learn faster",
          "smaller ω → lower NSE (no number)", "supp_init_scale", [], omega_rule("faster"),
          "spikefa run supp_init_scale", figures=("init_scale.png",)),
    Claim("supp_pbp", "Supp. (arXiv Fig. 4b,c)", "linear FA from small weights: δ_FA is closer to pseudo-backprop "
          "(W⁺e) than to backprop (Wᵀe)", "closer to W⁺e (no number)", "supp_init_scale", [], omega_rule("pseudo"),
          "spikefa run supp_init_scale"),
    Claim("theorem1", "Supp. (Theorem 1, flow field)", "linear FA in the batch limit: from A = W = 0 with B⁺B = I "
          "the error goes to zero and B W + Wᵀ Bᵀ − A Aᵀ stays 0; in the 1-1-1 net the path from 0 ends on the "
          "stable branch W·A = 1", "E → 0 (proof)", "supp_theorem1",
          [("final ‖E‖/‖T‖", "fa", "final_relative_error", ""), ("largest invariant entry", "fa", "invariant_max", ""),
           ("1-1-1: A·W at the end", "flow_field", "a_times_w_end", "")],
          every(at_most("fa", "final_relative_error", 1e-3, ""), at_most("fa", "invariant_max", 1e-6, ""),
                between("flow_field", "a_times_w_end", 0.999, 1.001, "")),
          "spikefa run supp_theorem1", figures=("theorem1.png",)),
    Claim("deeper", "Supp. Notes 2-9", "FA trains a deeper MNIST network (784-1000-1000-1000-10) nearly as well "
          "as backprop (each at its own validation-chosen settings)", "FA works in deeper nets (no number)",
          "fig3_mnist_deep", [("FA", "fa", "test_error", "%"), ("BP", "bp", "test_error", "%")],
          within_points("fa", "bp", "test_error", 0.5), "spikefa run fig3_mnist_deep", figures=("test_error.png",)),
    Claim("wider", "Supp. Notes 2-9", "FA trains a wider MNIST network (one hidden layer of more than 1,000 units)",
          "FA works in wider nets (no number)", "fig3_mnist",
          [("FA", "fa", "test_error", "%"), ("BP", "bp", "test_error", "%")], within_points("fa", "bp", "test_error", 0.5),
          "spikefa run fig3_mnist --set 'sizes=[784,3000,10]' --set 'algorithms=[\"bp\",\"fa\"]'",
          where=lambda cfg: len(cfg.get("sizes", [])) == 3 and cfg["sizes"][1] > 1000 and cfg.get("dataset") == "mnist"),
    Claim("svhn", "Supp. Notes 2-9", "FA learns the harder SVHN digits", "FA works on SVHN (no number)", "fig3_mnist",
          [("FA", "fa", "test_error", "%"), ("BP", "bp", "test_error", "%")],
          every(within_points("fa", "bp", "test_error", 2.0), at_most("fa", "test_error", 0.25)),
          "spikefa run fig3_mnist --set dataset=svhn --set 'sizes=[3072,1000,1000,1000,10]'",
          where=lambda cfg: cfg.get("dataset") == "svhn"),
]


# ------------------------------------------------------------------------------------------ verdicts
def _matches(claim: Claim, s: Source) -> bool:
    if s.name != claim.config:
        return False
    try:
        return bool(claim.where(s.cfg))
    except (KeyError, TypeError, IndexError):
        return False


def deviations(claim: Claim, s: Source) -> list[str]:
    flat = config._flat(s.cfg)
    out = []
    for key, (paper, meaning) in claim.paper_conditions.items():
        if key in flat and flat[key] != paper:
            out.append(f"{key} = {_toml_value(flat[key])} (paper: {meaning})")
    schedule = s.cfg.get("schedule")
    if claim.paper_conditions is SPIKING and isinstance(schedule, list):
        if len(schedule) > 1:
            out.append(f"a schedule of {len(schedule)} phases (paper: one constant learning rate)")
        for i, phase in enumerate(schedule, 1):
            if phase.get("plasticity_delay"):
                out.append(f"phase {i}: plasticity_delay = {phase['plasticity_delay']} (paper: plasticity at every step)")
            if phase.get("eta_halving_epochs"):
                out.append(f"phase {i}: η halved every {phase['eta_halving_epochs']:g} epochs (paper: constant η)")
    if s.cfg.get("per_algorithm") and any(s.cfg["per_algorithm"].values()):
        out.append("each algorithm at its own settings (" + "; ".join(
            f"{a}: " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in config._flat(t).items())
            for a, t in s.cfg["per_algorithm"].items() if t) + ")")
    n = max((len(s.get(a, m)) for _, a, m, _ in claim.ours), default=0)
    if claim.paper_n > 1 and n < claim.paper_n:
        out.append(f"n = {n} (paper: {claim.paper_n})")
    if s.kind == "checkpoint" and s.values.get("_meta", {}).get("selected_on_validation") == [0.0]:
        out.append("not selected on validation")
    trained, declared = s.get("_meta", "epochs_trained"), sum(p["epochs"] for p in schedule or [])
    if trained and trained[0] < declared:
        out.append(f"trained {trained[0]:g} of the recipe's {declared:g} epochs (a run under way)")
    return out


def ours(claim: Claim, s: Source) -> str:
    parts = []
    for label, algo, metric, unit in claim.ours:
        v = s.get(algo, metric)
        if not v:
            continue
        sd = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
        scale = 100 if unit == "%" else 1
        if unit in ("%", "°"):
            text = f"{scale * np.mean(v):.2f}" + (f" ± {scale * sd:.2f}" if len(v) > 1 else "") + unit
        else:
            text = f"{np.mean(v):.3g}" + (f" ± {sd:.2g}" if len(v) > 1 else "")
        parts.append(f"{label} {text} (n = {len(v)})")
    return "; ".join(parts)


def conditions(claim: Claim, s: Source) -> str:
    cfg, bits = s.cfg, []
    if "sizes" in cfg:
        bits.append("-".join(map(str, cfg["sizes"])))
    flat = config._flat(cfg)
    if cfg.get("schedule"):  # a declared schedule, not train.epochs and steps_per_image, says how long
        flat["train.epochs"] = round(sum(p["epochs"] for p in cfg["schedule"]), 4)
        flat["steps_per_image"] = "/".join(dict.fromkeys(str(p.get("steps_per_image", cfg.get("steps_per_image")))
                                                         for p in cfg["schedule"]))
    for key, fmt in (("batch", "batch {}"), ("train.epochs", "{} epochs"), ("train.examples", "{} examples"),
                     ("reading", "reading '{}'"), ("steps_per_image", "{} steps per image"),
                     ("train.validation", "{} validation images")):
        v = flat.get(key)
        if v is not None:
            bits.append(fmt.format(v))
    return ", ".join(bits)


@dataclass
class Row:
    claim: Claim
    verdict: str
    source: Source | None
    note: str
    deviations: list


def _comparison(s: Source) -> str:
    """What the arms of one comparison share: the config without its algorithms, frozen layers and
    learning rates (so every arm is trained for as long, on the same data, from the same seed)."""
    cfg = {k: v for k, v in s.cfg.items() if k not in ("algorithms", "frozen_layers", "eta", "per_algorithm")}
    cfg["schedule"] = [{k: v for k, v in p.items() if k != "eta"} for p in cfg.get("schedule") or []]
    return config.to_toml(cfg)


def join_arms(sources: list[Source]) -> list[Source]:
    """The runs of each comparison (see `_comparison`) joined into one source, one command per arm."""
    groups: dict[str, list[Source]] = {}
    for s in sources:
        if s.kind == "run":
            groups.setdefault(_comparison(s), []).append(s)
    return [Source(Path(" + ".join(str(s.path) for s in g)), "run", g[0].experiment, g[0].name, g[0].cfg,
                   {a: v for s in g for a, v in s.values.items()}, "; ".join(dict.fromkeys(s.command for s in g)),
                   [f for s in g for f in s.figures], origins={f: s.command for s in g for f in s.figures})
            for g in groups.values()]


def judge(claim: Claim, sources: list[Source]) -> Row:
    mine = [s for s in sources if _matches(claim, s)]
    if claim.arms:  # the runs of the arms this claim reads
        mine = join_arms([s for s in mine if set(s.values) & {a for _, a, _, _ in claim.ours}])
    if claim.rule is None or not mine:
        return Row(claim, "not run", None, "", [])
    # a source the rule can read, then the one with the most runs (e.g. a sweep rather than a single
    # run), then the last given
    outs = [(s, claim.rule(s)) for s in mine]
    s, out = max(reversed(outs), key=lambda so: (so[1].passed is not None,
                                                 max((len(so[0].get(a, m)) for _, a, m, _ in claim.ours), default=1)))
    dev = deviations(claim, s)
    if out.passed is None:  # the folder lacks what the claim reads (e.g. an algorithm it did not run)
        return Row(claim, "not run", s, out.note, [])
    verdict = ("reproduced with deviations" if dev else "reproduced") if out.passed else "not reproduced"
    return Row(claim, verdict, s, out.note, dev)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def render(rows: list[Row], out: Path, title: str = "Results: the paper's claims, reproduced here") -> str:
    figdir = out.parent / f"{out.stem}_figures"
    lines = [f"# {title}", "",
             "Generated by `spikefa report` from results folders; do not edit by hand. Each row is one claim of "
             "Lillicrap et al. (2016). Verdicts: **reproduced** (the rule holds under the paper's conditions), "
             "**reproduced with deviations** (the rule holds; the conditions that differ from the paper's are "
             "listed), **not reproduced** (the rule fails), **not run** (no results given). Everything chosen "
             "(learning rates, scales, schedules, checkpoints) was chosen on validation error: image tasks hold out "
             "the last 10,000 training images (the paper trained on all 60,000; the conditions column gives the "
             "number held out), and test errors are read at the end.", "",
             "| Claim | Paper | Ours (mean ± SD, n) | Conditions | Command | Verdict |",
             "|---|---|---|---|---|---|"]
    figures = []
    for r in rows:
        c = r.claim
        verdict = f"**{r.verdict}**"
        if r.note:
            verdict += f" — {r.note}"
        if r.deviations:
            verdict += "; deviations: " + "; ".join(r.deviations)
        measured = r.source if r.verdict != "not run" else None  # a folder that lacks what the claim reads
        cmd = measured.command if measured else c.command
        cmd_cell = f"`{cmd}`" if cmd.startswith("spikefa ") else cmd
        lines.append("| " + " | ".join(_cell(x) for x in (
            f"{c.figure}: {c.claim}", c.paper, ours(c, measured) if measured else "—",
            conditions(c, measured) if measured else "—", cmd_cell, verdict)) + " |")
        if measured:
            for f in r.source.figures:
                if f.name in c.figures:
                    figures.append((c, r.source, f))
    if figures:
        figdir.mkdir(parents=True, exist_ok=True)
        lines += ["", "## Figures", ""]
        names = set()
        for c, s, f in figures:
            name = f"{c.key}_{f.name}"
            if name in names:  # the same figure of another folder (e.g. runs joined by algorithm)
                name = f"{c.key}_{f.parent.parent.name}_{f.name}"
            names.add(name)
            shutil.copyfile(f, figdir / name)
            lines += [f"**{c.figure}** ({c.key}): `{f.name}` from `{s.origins.get(f, s.command)}`", "",
                      f"![{c.figure} {f.stem}]({figdir.name}/{name})", ""]
    lines += ["", "## Sources", ""]
    for r in rows:
        if r.source and r.verdict != "not run":
            lines.append(f"- {r.claim.key}: `{_display(r.source.path)}` ({r.source.kind}, config {r.source.name})")
    return "\n".join(lines) + "\n"


def _display(path: Path) -> str:
    parts = []
    for p in str(path).split(" + "):
        try:
            parts.append(str(Path(p).resolve().relative_to(Path.cwd().resolve())))
        except ValueError:
            parts.append(Path(p).name)
    return " + ".join(parts)


def merge_algorithms(sources: list[Source]) -> list[Source]:
    """Runs, or sweeps seed by seed, of one config split by algorithm (`--set algorithms=[...]`, e.g. to
    run them side by side) joined into one source, as the run with all of them would have measured:
    every algorithm's network depends only on the seed and its own settings, not on which other
    algorithms run."""
    groups: dict[tuple, list[Source]] = {}
    for s in sources:
        if s.kind in ("run", "sweep") and isinstance(s.cfg.get("algorithms"), list):
            groups.setdefault((s.kind, _n(s), config.to_toml(_shared(s.cfg))), []).append(s)
    merged = []
    for (kind, n, _), group in groups.items():
        algos = [a for s in group for a in s.cfg["algorithms"]]
        if len(group) < 2 or len(set(algos)) != len(algos):
            continue
        order = _shipped(closest_config(group[0].cfg)[0]).get("algorithms") or []
        algos.sort(key=lambda a: order.index(a) if a in order else len(order))  # as the shipped config lists them
        cfg = {**group[0].cfg, "algorithms": algos}
        if isinstance(cfg.get("per_algorithm"), dict):  # each algorithm's own settings, from its own run
            cfg["per_algorithm"] = {**cfg["per_algorithm"],
                                    **{a: s.cfg["per_algorithm"][a] for s in group for a in s.cfg["algorithms"]
                                       if a in s.cfg["per_algorithm"]}}
        path = Path(" + ".join(str(s.path) for s in group))
        merged.append(Source(path, kind, group[0].experiment, closest_config(cfg)[0], cfg,
                             {a: v for s in group for a, v in s.values.items()}, command_for(kind, cfg, n),
                             [f for s in group for f in s.figures], origins={f: s.command for s in group for f in s.figures}))
    return sources + merged


def _n(s: Source) -> int:
    """How many networks per algorithm a source measured (runs, or a sweep's seeds)."""
    return max((len(v) for ms in s.values.values() for v in ms.values()), default=0)


def _shared(cfg: dict) -> dict:
    """A config without its algorithm list and without the own settings of algorithms it did not run."""
    return {k: v for k, v in cfg.items() if k not in ("algorithms", "per_algorithm")}  # each run keeps its own


def report(paths: list[str], out: str | Path) -> Path:
    sources = merge_algorithms([s for p in paths for s in load_source(p)])
    rows = [judge(c, sources) for c in CLAIMS]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from spikefa.results import atomic_write_bytes

    atomic_write_bytes(out, render(rows, out).encode())
    return out
