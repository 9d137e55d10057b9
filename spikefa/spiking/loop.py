"""The spiking network as the training loop (`spikefa.training_loop`) trains it, with either engine.

One feedback mode is trained along its declared schedule (`recipe.Phases`), a runner per phase
carrying the state and the spike generator over. Each measurement adds the alignment angles on the
first `ALIGNMENT_IMAGES` validation images. `<mode>.npz` is the latest state (weights, PSPs, spike
generator), `<mode>-best.npz` the selected network at rest.
"""

from __future__ import annotations

from spikefa.diagnose import health
from spikefa.errors import check_finite
from spikefa.spiking.alignment import alignment
from spikefa.spiking.recipe import Phases, make_runner, recipe, spec_for
from spikefa.spiking.spec import at_rest, initial_state, load_checkpoint, save_checkpoint
from spikefa.spiking.training import evaluate
from spikefa.timing import NO_PARTS
from spikefa.training_loop import Rules, TrainingLoop

ALIGNMENT_IMAGES = (
    100  # held-out images whose modulators are compared with backprop's per measurement
)


def training_loop(cfg, mode, sets, chunk, out, parts=NO_PARTS, on_measure=()) -> TrainingLoop:
    """The loop that trains feedback mode `mode` of config `cfg` on `sets` (train, validation and
    test pairs of images and labels) into the results folder `out`; `parts` times each part."""
    n = len(sets["train"][0])
    plan = Phases(cfg, mode, n, chunk, parts)
    rules = Rules(
        every=cfg["validation"]["every_images"],
        patience=cfg["train"]["patience_epochs"] * n,
        checkpoint_minutes=cfg["checkpoint_minutes"],
        snapshots=cfg["keep_snapshots"],
        read_test=cfg["test"]["read"],
    )
    learner = SpikingLearner(cfg, mode, plan, chunk, split(cfg, sets), parts)
    return TrainingLoop(
        learner,
        plan,
        sets,
        out.path,
        mode,
        recipe=recipe(cfg, mode),
        seed=cfg["seed"],
        chunk=chunk,
        rules=rules,
        label=f"{mode} ({cfg['engine']})",
        parts=parts,
        on_measure=on_measure,
    )


def split(cfg: dict, sets: dict) -> dict:
    """How the images were divided, as a checkpoint records it."""
    n_val, held = len(sets["validation"][0]), cfg["train"]["validation"]
    return {
        "train_images": len(sets["train"][0]),
        "validation_images": n_val,
        "test_images": len(sets["test"][0]),
        "holdout_images": held,  # validation_images: the measured subset of the hold-out
        "validation": f"the last {held} of the training images" if n_val else "none",
    }


class SpikingLearner:
    """Feedback mode `mode` of config `cfg`, trained along `plan` in chunks of `chunk` images."""

    def __init__(self, cfg, mode, plan, chunk, split, parts=NO_PARTS):
        self.cfg, self.mode, self.plan, self.chunk, self.split = cfg, mode, plan, chunk, split
        self.parts = parts

    def fresh(self) -> None:
        self.state = initial_state(spec_for(self.cfg, self.mode))

    def load(self, path) -> dict:
        _, self.state, meta = load_checkpoint(path)
        return meta

    def begin(self, seen: int, meta: dict) -> None:
        self.steps = meta.get("train_steps", 0)
        self.runner, self.state = self.plan.enter(self.plan.at(seen), self.state)
        self.runner.restore_random_state(meta.get("random_state"))

    def learn(self, seen: int, images, labels) -> None:
        self.runner, self.state = self.plan.enter(self.plan.at(seen), self.state)
        eta = self.plan.eta(seen)
        self.state, _ = self.runner.run(self.state, images, labels, learn=True, eta=eta)
        self.steps += len(images) * self.runner.spec.steps_per_image

    def check(self, first: int, last: int, kept: str) -> None:
        when = f"by step {self.steps} (after {last} training images)"
        check_finite(self.state, self.mode, when, kept)

    def error(self, images, labels) -> float:
        return evaluate(self.runner, self.state, images, labels)

    def measures(self, images, labels) -> dict:
        with self.parts("alignment"):
            angles = alignment(
                self.runner.spec,
                self.runner.export(self.state),
                images[:ALIGNMENT_IMAGES],
                labels[:ALIGNMENT_IMAGES],
            )
        return {name: round(a, 2) for name, a in angles.items()}

    def meta(self) -> dict:
        cfg = self.cfg
        return {
            "phase": self.plan.index + 1,
            "train_steps": self.steps,
            "dataset": cfg["dataset"],
            "engine": cfg["engine"],
            "config": {"name": cfg["recipe"] or None, **cfg},
            "split": self.split,
        }

    def save(self, path, meta: dict, kind: str) -> None:
        if kind == "tested":
            save_checkpoint(path, *self.tested, meta)
            return
        state = self.runner.export(self.state)
        if kind == "best":
            state, random_state = at_rest(state), None
        else:
            random_state = self.runner.random_state()
        meta = {**meta, "random_state": random_state}
        save_checkpoint(path, self.runner.spec, state, meta, compress=False)

    def read(self, path) -> dict:
        spec, state, meta = load_checkpoint(path)
        self.tested = spec, state
        return meta

    def score(self, images, labels, progress: str) -> float:
        spec, state = self.tested
        runner = make_runner(self.cfg, spec, self.chunk)
        return evaluate(runner, state, images, labels, progress=progress)

    def summary(self, selected, validation: tuple) -> dict:
        spec, cfg = self.runner.spec, self.cfg
        chosen, state, _ = load_checkpoint(selected)
        res = {
            "steps_per_image": chosen.steps_per_image,
            "reading": spec.reading,
            "decay_per_step": spec.decay,
            "tau_steps": spec.tau_steps,
            "engine": cfg["engine"],
            "train_steps": self.steps,
            "phases": len(self.plan.phases),
            **self.split,
        }
        if len(validation[0]):  # saturation and weight growth of the network that ships
            res["health"] = health(chosen, state, *validation)["layers"]
        if cfg["engine"] != "brian2":
            res.update(batch=cfg["batch"], backend=cfg["backend"])
        elif self.runner.steps:
            res.update(
                device=cfg["device"],
                ms_per_step=1e3 * self.runner.sim_seconds / self.runner.steps,
                compile_seconds=round(self.runner.net.build_seconds, 1),
            )
        return res
