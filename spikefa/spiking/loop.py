"""The training loop of a spiking network, for either engine.

One feedback mode is trained along its declared schedule, showing the training images (reshuffled
every epoch by the "order" stream) in chunks. At each measurement (every epoch, each phase's end and
every `validation.every_images`) the validation error and the alignment angles are measured, the
`on_measure` callbacks see the curve so far, and the network with the lowest validation error is kept
as `<mode>-best.npz`. A declared stopping rule (`train.patience_epochs`) may end the recipe early.
`<mode>.npz` is the latest state (weights, PSPs, spike generator) that a resumed run continues from,
under the same recipe only. When the recipe has ended, the selected network reads the test set once.
"""

from __future__ import annotations

import time

import numpy as np
from tqdm import tqdm

from spikefa.diagnose import health
from spikefa.errors import SpikefaError, check_finite
from spikefa.seeds import stream
from spikefa.spiking.alignment import alignment
from spikefa.spiking.recipe import Phases, make_runner, recipe, spec_for
from spikefa.spiking.spec import at_rest, initial_state, load_checkpoint, save_checkpoint
from spikefa.spiking.training import evaluate
from spikefa.timing import NO_PARTS

ALIGNMENT_IMAGES = (
    100  # held-out images whose modulators are compared with backprop's per measurement
)


class TrainingLoop:
    """Train feedback mode `mode` of config `cfg` on `sets` (train, validation and test pairs of
    images and labels) into the results folder `out`; `parts` times each part of the loop."""

    def __init__(self, cfg, mode, sets, chunk, out, parts=NO_PARTS, on_measure=()):
        self.cfg, self.mode, self.sets, self.chunk, self.parts = cfg, mode, sets, chunk, parts
        self.on_measure, self.n = list(on_measure), len(sets["train"][0])
        self.plan, self.recipe = Phases(cfg, mode, self.n, chunk, parts), recipe(cfg, mode)
        self.path, self.best_path = out.path / f"{mode}.npz", out.path / f"{mode}-best.npz"
        self.out, self.declared = out, self.plan.total / self.n
        self.patience = cfg["train"]["patience_epochs"] * self.n
        n_val, n_test = len(sets["validation"][0]), len(sets["test"][0])
        held = cfg["train"]["validation"]  # validation_images: the measured subset of the hold-out
        self.split = {
            "train_images": self.n,
            "validation_images": n_val,
            "test_images": n_test,
            "holdout_images": held,
            "validation": f"the last {held} of the training images" if n_val else "none",
        }

    # ------------------------------------------------------------------ state
    def start(self, resume: bool) -> None:
        """The network drawn from the seed, or the one `<mode>.npz` holds, trained under this recipe."""
        state = initial_state(spec_for(self.cfg, self.mode))
        meta = {"images_seen": 0, "curve": [], "wall_seconds": 0.0, "train_steps": 0, "best": None}
        if resume and self.path.exists():
            _, state, meta = load_checkpoint(self.path)
            if meta.get("recipe") != self.recipe:
                raise SpikefaError(
                    f"{self.path} was trained under another recipe than this config; a resumed "
                    f"run continues its declared schedule: a new schedule is a new recipe (a new run)"
                )
        self.seen, self.steps = meta["images_seen"], meta["train_steps"]
        self.stopped, self.wall_before = bool(meta.get("finished")), meta["wall_seconds"]
        self.curve, self.angle_names = (
            [tuple(c) for c in meta["curve"]],
            meta.get("angle_names", []),
        )
        # a checkpoint carried to another folder without its selected network starts the selection afresh
        self.best = meta["best"] if self.best_path.exists() else None
        self.runner, self.state = self.plan.enter(self.plan.at(self.seen), state)
        if resume:
            self.runner.restore_random_state(meta.get("random_state"))

    def meta(self, k: int) -> dict:
        """What a checkpoint records of the run at this point (phase k)."""
        cfg, seen = self.cfg, self.seen
        return {
            "images_seen": seen,
            "epoch": seen / self.n,
            "phase": k + 1,
            "train_steps": self.steps,
            "curve": self.curve,
            "angle_names": self.angle_names,
            "best": self.best,
            "dataset": cfg["dataset"],
            "engine": cfg["engine"],
            "recipe": self.recipe,
            "config": {"name": cfg["recipe"] or None, **cfg},
            "split": self.split,
            "wall_seconds": self.wall_before + time.perf_counter() - self.t0,
            "epochs_trained": seen / self.n,
            "epochs_declared": self.declared,
            "finished": seen >= self.plan.total or self.stopped,
        }

    # ------------------------------------------------------------------ the loop
    def run(self) -> dict:
        """Train to the end of the recipe (or continue a resumed one); the summary entry of the mode."""
        self.t0, last_save = time.perf_counter(), time.monotonic()
        bar = tqdm(
            total=self.plan.total,
            initial=self.seen,
            desc=f"{self.mode} ({self.cfg['engine']})",
            unit="img",
            mininterval=5,
        )
        every = self.cfg["validation"]["every_images"]
        with self.parts("training"):  # the loop's own time is what its named parts leave over
            while self.seen < self.plan.total and not self.stopped:
                k, shown = self._train_chunk()
                bar.update(shown)
                measure = (
                    self.seen % self.n == 0
                    or self.seen == self.plan.ends[k]
                    or (every and self.seen % every < shown)
                )
                meta = self.meta(k)
                if measure and len(self.sets["validation"][0]):
                    meta = self._measure(k)
                    bar.set_postfix(validation_error=f"{self.curve[-1][1]:.4f}")
                if measure or time.monotonic() - last_save >= 60 * self.cfg["checkpoint_minutes"]:
                    self._save_latest(meta, measure)
                    last_save = time.monotonic()
        bar.close()
        self.wall = self.wall_before + time.perf_counter() - self.t0
        return self._finish()

    def _train_chunk(self) -> tuple[int, int]:
        """Show the next chunk of training images (within one phase); (phase, images shown)."""
        k = self.plan.at(self.seen)
        self.runner, self.state = self.plan.enter(k, self.state)
        epoch, lo = divmod(self.seen, self.n)
        # the order of an epoch follows from the seed: the same after a resume
        perm = stream(self.cfg["seed"], "order", epoch).permutation(self.n)
        idx = perm[lo : lo + min(self.chunk, self.plan.ends[k] - self.seen)]
        X, Y = self.sets["train"]
        with self.parts("steps"):
            self.state, _ = self.runner.run(
                self.state, X[idx], Y[idx], learn=True, eta=self.plan.eta(self.seen)
            )
        self.seen += len(idx)
        self.steps += len(idx) * self.runner.spec.steps_per_image
        kept = f"the last good checkpoint {self.path} is kept" if self.path.exists() else ""
        check_finite(
            self.state, self.mode, f"by step {self.steps} (after {self.seen} training images)", kept
        )
        return k, len(idx)

    def _measure(self, k: int) -> dict:
        """Validation error and alignment; the callbacks; the stopping rule; the selected network."""
        Xv, Yv = self.sets["validation"]
        # Judged by held-out images only: while an image is shown, learning pulls the output towards
        # its label, so errors scored during training are far too optimistic.
        with self.parts("validation"):
            val = evaluate(self.runner, self.state, Xv, Yv)
        with self.parts("alignment"):
            angles = alignment(
                self.runner.spec,
                self.runner.export(self.state),
                Xv[:ALIGNMENT_IMAGES],
                Yv[:ALIGNMENT_IMAGES],
            )
        self.curve.append((self.seen, val, *(round(a, 2) for a in angles.values())))
        self.angle_names = list(angles)
        with self.parts("figures"):
            for callback in self.on_measure:
                callback(self.mode, np.array(self.curve), self.angle_names)
        # the declared stopping rule: no new best for `patience_epochs` epochs ends the recipe
        best = self.best
        self.stopped = (
            bool(self.patience)
            and best is not None
            and val >= best["validation_error"]
            and self.seen - best["images_seen"] >= self.patience
        )
        meta = self.meta(k)
        if best is None or val < best["validation_error"]:
            self.best = {
                "images_seen": self.seen,
                "epoch": self.seen / self.n,
                "validation_error": val,
            }
            # the latest state is the selected network too, until a later measurement does better
            meta.update(best=self.best, selected_on="validation", validation_error=val)
            with self.parts("checkpoint"):
                save_checkpoint(
                    self.best_path,
                    self.runner.spec,
                    at_rest(self.runner.export(self.state)),
                    {**meta, "random_state": None},
                    compress=False,
                )
        return meta

    def _save_latest(self, meta: dict, measure: bool) -> None:
        latest = {**meta, "random_state": self.runner.random_state()}
        spec, state = self.runner.spec, self.runner.export(self.state)
        with self.parts("checkpoint"):
            save_checkpoint(self.path, spec, state, latest, compress=False)
            if measure and self.cfg["keep_snapshots"]:  # each one can be resumed, like the latest
                (self.out.path / "snapshots").mkdir(exist_ok=True)
                name = f"{self.mode}-{self.seen:08d}.npz"
                save_checkpoint(
                    self.out.path / "snapshots" / name, spec, state, latest, compress=False
                )

    # ------------------------------------------------------------------ the end
    def _finish(self) -> dict:
        """The summary entry: the test error of the selected network (read once), or for a search
        candidate its validation alone; how far the recipe went; the health of the selected network."""
        selected = self.best_path if self.best else self.path
        if self.cfg["test"]["read"]:
            res = self._test_once(selected)
        else:  # a candidate of a search: judged on validation alone
            b = self.best or {}
            res = {
                "validation_error": b.get("validation_error"),
                "selected_on": "validation" if b else "last",
                "selected_epoch": round(b["epoch"], 4) if b else None,
                "steps_per_image": load_checkpoint(selected)[0].steps_per_image,
            }
        spec = self.runner.spec
        res.update(
            epochs_trained=round(self.seen / self.n, 4),
            epochs_declared=self.declared,
            finished=self.seen >= self.plan.total or self.stopped,
            reading=spec.reading,
            decay_per_step=spec.decay,
            tau_steps=spec.tau_steps,
            images_seen=self.seen,
            epochs=self.seen / self.n,
            engine=self.cfg["engine"],
            train_steps=self.steps,
            wall_seconds=round(self.wall, 1),
            phases=len(self.plan.phases),
            **self.split,
        )
        if len(
            self.sets["validation"][0]
        ):  # saturation and weight growth of the network that ships
            spec_state = load_checkpoint(selected)[:2]
            res["health"] = health(*spec_state, *self.sets["validation"])["layers"]
        if self.curve:
            res.update(
                {
                    f"{name}_final": round(v, 2)
                    for name, v in zip(self.angle_names, self.curve[-1][2:])
                }
            )
        if self.cfg["engine"] == "brian2":
            if self.runner.steps:
                res.update(
                    device=self.cfg["device"],
                    ms_per_step=1e3 * self.runner.sim_seconds / self.runner.steps,
                    compile_seconds=round(self.runner.net.build_seconds, 1),
                )
        else:
            res.update(batch=self.cfg["batch"], backend=self.cfg["backend"])
        return res

    def _test_once(self, path) -> dict:
        """The test error of the checkpoint at `path` (the one selected on validation, or the last
        one where there is no validation set), read once and recorded in that checkpoint."""
        spec, state, meta = load_checkpoint(path)
        err = meta.get("test_error")
        if err is None:  # a finished run resumed again reads nothing twice
            err = evaluate(
                make_runner(self.cfg, spec, self.chunk),
                state,
                *self.sets["test"],
                progress=f"{self.mode}: test",
            )
        if meta.get("selected_on") == "validation":
            save_checkpoint(
                path,
                spec,
                state,
                {**meta, "test_error": err, "test_read_at_epoch": meta["epoch"], "finished": True},
            )
        best = meta.get("best") or {}
        return {
            "test_error": err,
            "validation_error": best.get("validation_error"),
            "selected_on": meta.get("selected_on", "last"),
            "selected_images": meta["images_seen"],
            "selected_epoch": round(meta["epoch"], 4),
            "steps_per_image": spec.steps_per_image,
        }
