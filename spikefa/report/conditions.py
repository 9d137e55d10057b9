"""The conditions of a measurement, and every known way in which they differ from the paper's."""

from __future__ import annotations

from spikefa import config
from spikefa.report.claims import Claim
from spikefa.report.commands import toml_value
from spikefa.report.sources import Source

PAPER_TRAIN_IMAGES = 60000  # the paper trained on all of MNIST's training images


def setup(s: Source) -> list[str]:
    """What a row's measurement ran: sizes, how long, how images were shown."""
    cfg, bits = s.cfg, []
    if "sizes" in cfg:
        bits.append("-".join(map(str, cfg["sizes"])))
    flat = config.flat(cfg)
    if cfg.get("schedule"):  # a declared schedule, not train.epochs, says how long and how
        flat["train.epochs"] = round(sum(p["epochs"] for p in cfg["schedule"]), 4)
        flat["steps_per_image"] = "/".join(
            dict.fromkeys(
                str(p.get("steps_per_image", cfg.get("steps_per_image"))) for p in cfg["schedule"]
            )
        )
    for key, text in (
        ("train.epochs", "{} epochs"),
        ("train.examples", "{} examples"),
        ("reading", "reading '{}'"),
        ("steps_per_image", "{} steps per image"),
    ):
        if flat.get(key) is not None:
            bits.append(text.format(flat[key]))
    return bits


def training_images(s: Source) -> list[str]:
    """The training images of an image task against the paper's 60,000."""
    train = s.cfg.get("train") or {}
    if s.cfg.get("dataset") not in ("mnist", "fashion-mnist") or "validation" not in train:
        return []
    held, first = train["validation"], train.get("images") or 0
    used = first or PAPER_TRAIN_IMAGES - held
    if used == PAPER_TRAIN_IMAGES:
        return []
    return [
        f"{used:,} training images"
        + (f", {held:,} held out for validation" if held else "")
        + f" (paper: all {PAPER_TRAIN_IMAGES:,})"
    ]


def spiking(s: Source) -> list[str]:
    """A spiking network's differences: image streams, η, epochs trained, gates and phases."""
    cfg, out = s.cfg, []
    batch = cfg.get("batch", 1)
    out.append(
        f"{batch} image streams whose weight changes are summed (paper: one stream)"
        if batch > 1
        else "1 image stream (as in the paper)"
    )
    phases = cfg.get("schedule") or []
    etas = [toml_value(p["eta"]) for p in phases] or [toml_value(cfg.get("eta"))]
    out.append(f"η per step {' then '.join(etas)} (paper: not given)")
    if s.progress and s.progress.trained < s.progress.declared:
        out.append(f"trained {s.progress.trained:g} of the recipe's {s.progress.declared:g} epochs")
    if len(phases) > 1:
        out.append(f"a schedule of {len(phases)} phases (paper: one constant learning rate)")
    for i, phase in enumerate(phases, 1):
        if phase.get("plasticity_delay"):
            out.append(
                f"phase {i}: plasticity_delay = {phase['plasticity_delay']} "
                f"(paper: plasticity at every step)"
            )
        if phase.get("eta_halving_epochs"):
            out.append(
                f"phase {i}: η halved every {phase['eta_halving_epochs']:g} epochs "
                f"(paper: a constant η)"
            )
    return out


def differences_from_paper(claim: Claim, s: Source) -> list[str]:
    """Every known difference between a row's measurement and the paper's.

    Parameters
    ----------
    claim : Claim
        The row's claim (its paper conditions and the paper's n).
    s : Source
        What measured it.

    Returns
    -------
    list of str
        One phrase per difference, each naming the paper's value.
    """
    flat = config.flat(s.cfg)
    out = [
        f"{key} = {toml_value(flat[key])} (paper: {want['meaning']})"
        for key, want in claim.paper_conditions.items()
        if key in flat and flat[key] != want["value"]
    ]
    out += training_images(s)
    if claim.spiking and s.cfg:
        out += spiking(s)
    if s.cfg.get("per_algorithm") and any(s.cfg["per_algorithm"].values()):
        out.append(
            "each algorithm at its own settings ("
            + "; ".join(
                f"{a}: " + ", ".join(f"{k} = {toml_value(v)}" for k, v in config.flat(t).items())
                for a, t in s.cfg["per_algorithm"].items()
                if t
            )
            + ")"
        )
    n = max((len(s.get(o.algorithm, o.metric)) for o in claim.ours), default=0)
    if claim.paper_n > 1 and n < claim.paper_n:
        out.append(f"n = {n} (paper: {claim.paper_n})")
    if s.kind == "network" and s.selected_on != "validation":
        out.append("not selected on validation")
    return out
