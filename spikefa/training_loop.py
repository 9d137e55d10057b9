"""The training loop of every image experiment, whatever network it trains.

A learner (one network: how it learns, is scored and is saved, `Learner`) is trained along a
`Schedule` of phases, the training images reshuffled every epoch by the "order" stream of the
network's seed and shown in chunks that end at every epoch's and every phase's end. At each
measurement (every epoch, each phase's end and every `Rules.every` images) the validation error and
the learner's own measurements join the curve and the `on_measure` callbacks see it; a selecting
loop keeps the network with the lowest validation error as `<name>-best.npz`, and a declared
stopping rule (`Rules.patience` images without a new best) may end the recipe early.
`<name>.npz` is the latest state, saved at each measurement and every `Rules.checkpoint_minutes`;
a resumed run continues it under the same recipe only. When the recipe has ended, the selected
network (the final one, where the loop does not select) reads the test set once.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm import tqdm

from spikefa.errors import SpikefaError
from spikefa.results import load_npz
from spikefa.seeds import stream
from spikefa.timing import NO_PARTS


def check_resumable(folder: Path, recipes: dict[str, dict]) -> None:
    """Refuse to resume a folder whose checkpoints were trained under other recipes.

    A run checks this before it writes anything, so that a refused resume leaves the folder as it
    was.

    Parameters
    ----------
    folder : Path
        The results folder of the run to resume.
    recipes : dict
        The recipe of each checkpoint the run would continue, by its name (``<name>.npz``).

    Raises
    ------
    SpikefaError
        When a checkpoint there is unreadable or holds another recipe.
    """
    for name, recipe in recipes.items():
        path = Path(folder) / f"{name}.npz"
        if path.exists():
            try:
                meta = json.loads(str(load_npz(path, "checkpoint").get("meta", "{}")))
            except ValueError:  # not JSON: no recipe
                meta = {}
            _same_recipe(path, meta if isinstance(meta, dict) else {}, recipe)


def _same_recipe(path: Path, meta: dict, recipe: dict) -> None:
    if meta.get("recipe") != recipe:
        raise SpikefaError(
            f"{path} was trained under another recipe than this config's: a resumed run continues "
            f"its declared schedule and settings (another config is a new run, in another folder)"
        )


class Schedule:
    """Where a position (training images seen) falls among phases that end at `ends` (positions,
    ascending), for `n` training images an epoch."""

    def __init__(self, n: int, ends: list[int]):
        self.n, self.ends = n, ends

    @property
    def total(self) -> int:
        return self.ends[-1]

    def at(self, seen: int) -> int:
        """The phase that the next image after `seen` falls in (the last one once all have
        ended)."""
        return (
            next(k for k, end in enumerate(self.ends) if seen < end)
            if seen < self.total
            else len(self.ends) - 1
        )

    def start(self, k: int) -> int:
        return self.ends[k - 1] if k else 0


@dataclasses.dataclass(frozen=True)
class Rules:
    """How a loop measures, selects, stops and saves.

    every: images between measurements besides each epoch's and phase's end (0: none);
    patience: images without a new best that end the recipe (0: never); checkpoint_minutes: the
    longest time between two saves of the latest state; snapshots: keep each measured state in
    `snapshots/`; select: keep the network with the lowest validation error and test it (else the
    final network is tested); read_test: read the test set at the end (a search candidate does not);
    measure_first: measure the network before it learns.
    """

    every: int = 0
    patience: int = 0
    checkpoint_minutes: float = 0.0
    snapshots: bool = False
    select: bool = True
    read_test: bool = True
    measure_first: bool = False


class Learner(Protocol):
    """One network as the loop trains it."""

    def fresh(self) -> None:
        """The network drawn from its seed."""

    def load(self, path: Path) -> dict:
        """The network of the latest checkpoint at `path`; its meta."""

    def begin(self, seen: int, meta: dict) -> None:
        """Ready to go on from `seen` training images (`meta`: the checkpoint's, or {})."""

    def learn(self, seen: int, images, labels) -> None:
        """Show a chunk of training images, the first at position `seen` of the schedule."""

    def check(self, first: int, last: int, kept: str) -> None:
        """A DivergenceError if the network holds NaN or inf after images `first` … `last`."""

    def error(self, images, labels) -> float:
        """The error rate of the network in training, learning off."""

    def measures(self, images, labels) -> dict:
        """Named measurements of the network in training beside its error (rounded)."""

    def meta(self) -> dict:
        """What a checkpoint records of the learner itself."""

    def save(self, path: Path, meta: dict, kind: str) -> None:
        """Write a checkpoint: "latest" (to resume), "best" (selected) or "tested" (as `read`)."""

    def read(self, path: Path) -> dict:
        """The network of the checkpoint at `path`, to be scored; its meta."""

    def score(self, images, labels, progress: str) -> float:
        """The error rate of the network `read` found."""

    def summary(self, selected: Path, validation: tuple) -> dict:
        """The learner's own entries of the summary, given the selected checkpoint."""


class TrainingLoop:
    """Train `learner` along `schedule` on `sets` (train, validation and test pairs of images and
    labels), its checkpoints named `name` in `folder`; `recipe` is the identity a resumed run must
    share, `seed` orders the epochs, `chunk` is the most images shown at once and `parts` times
    each part of the loop. The callbacks `on_measure(name, curve, names)` see the curve (rows of
    images seen, validation error and the learner's measurements) at every measurement."""

    def __init__(
        self,
        learner: Learner,
        schedule: Schedule,
        sets: dict,
        folder: Path,
        name: str,
        *,
        recipe: dict,
        seed: int,
        chunk: int,
        rules: Rules = Rules(),
        label: str | None = None,
        parts=NO_PARTS,
        on_measure=(),
    ):
        self.learner, self.schedule, self.sets, self.recipe = learner, schedule, sets, recipe
        self.name, self.seed, self.chunk, self.rules, self.parts = name, seed, chunk, rules, parts
        self.label, self.on_measure, self.n = label or name, list(on_measure), schedule.n
        self.folder, self.path = Path(folder), Path(folder) / f"{name}.npz"
        self.best_path, self.declared = self.folder / f"{name}-best.npz", schedule.total / self.n

    # ------------------------------------------------------------------ state
    def start(self, resume: bool) -> None:
        """The network drawn from the seed, or the one `<name>.npz` holds, trained under this
        recipe."""
        meta = {}
        if resume and self.path.exists():
            meta = self.learner.load(self.path)
            _same_recipe(self.path, meta, self.recipe)
        else:
            self.learner.fresh()
        self.seen, self.wall_before = meta.get("images_seen", 0), meta.get("wall_seconds", 0.0)
        self.stopped = bool(meta.get("finished"))
        self.curve = [tuple(c) for c in meta.get("curve", [])]
        self.names = meta.get("angle_names", [])
        # a checkpoint carried to another folder without its selected network starts the selection
        # afresh
        self.best = meta.get("best") if self.best_path.exists() else None
        self.learner.begin(self.seen, meta)

    def meta(self) -> dict:
        """What a checkpoint records of the run at this point."""
        seen = self.seen
        return {
            "images_seen": seen,
            "epoch": seen / self.n,
            **self.learner.meta(),
            "curve": self.curve,
            "angle_names": self.names,
            "best": self.best,
            "recipe": self.recipe,
            "wall_seconds": self.wall_before + time.perf_counter() - self.t0,
            "epochs_trained": seen / self.n,
            "epochs_declared": self.declared,
            "finished": seen >= self.schedule.total or self.stopped,
        }

    # ------------------------------------------------------------------ the loop
    def run(self) -> dict:
        """Train to the end of the recipe (or continue a resumed one); the summary entry."""
        self.t0, last_save = time.perf_counter(), time.monotonic()
        bar = tqdm(
            total=self.schedule.total, initial=self.seen, desc=self.label, unit="img", mininterval=5
        )
        validating = len(self.sets["validation"][0]) > 0
        if self.rules.measure_first and validating and not self.seen and not self.curve:
            self._measure()
        with self.parts("training"):  # the loop's own time is what its named parts leave over
            while self.seen < self.schedule.total and not self.stopped:
                k, shown = self._train_chunk()
                bar.update(shown)
                measure = self._measurement_due(k, shown)
                meta = self.meta()
                if measure and validating:
                    meta = self._measure()
                    bar.set_postfix(validation_error=f"{self.curve[-1][1]:.4f}")
                if measure or time.monotonic() - last_save >= 60 * self.rules.checkpoint_minutes:
                    self._save_latest(meta, measure)
                    last_save = time.monotonic()
        bar.close()
        self.wall = self.wall_before + time.perf_counter() - self.t0
        return self._finish()

    def _train_chunk(self) -> tuple[int, int]:
        """Show the next chunk of training images (within one epoch and one phase); (phase, images
        shown)."""
        k = self.schedule.at(self.seen)
        epoch, lo = divmod(self.seen, self.n)
        # the order of an epoch follows from the seed: the same after a resume
        perm = stream(self.seed, "order", epoch).permutation(self.n)
        idx = perm[lo : lo + min(self.chunk, self.schedule.ends[k] - self.seen)]
        X, Y = self.sets["train"]
        with self.parts("steps"):
            self.learner.learn(self.seen, X[idx], Y[idx])
        self.seen += len(idx)
        kept = f"the last good checkpoint {self.path} is kept" if self.path.exists() else ""
        self.learner.check(self.seen - len(idx), self.seen, kept)
        return k, len(idx)

    def _measurement_due(self, k: int, shown: int) -> bool:
        """After a chunk that ended an epoch or phase k, or passed a multiple of `Rules.every`."""
        every = self.rules.every
        return (
            self.seen % self.n == 0
            or self.seen == self.schedule.ends[k]
            or bool(every and self.seen % every < shown)
        )

    def _measure(self) -> dict:
        """Validation error and the learner's measurements; the callbacks; the stopping rule; the
        selected network. The meta of a checkpoint at this point."""
        Xv, Yv = self.sets["validation"]
        # Judged by held-out images only: while an image is shown, learning pulls the output towards
        # its label, so errors scored during training are far too optimistic.
        with self.parts("validation"):
            val = self.learner.error(Xv, Yv)
        measured = self.learner.measures(Xv, Yv)
        self.curve.append((self.seen, val, *measured.values()))
        self.names = list(measured)
        with self.parts("figures"):
            for callback in self.on_measure:
                callback(self.name, np.array(self.curve), self.names)
        best = self.best
        self.stopped = (
            bool(self.rules.patience)
            and best is not None
            and val >= best["validation_error"]
            and self.seen - best["images_seen"] >= self.rules.patience
        )
        meta = self.meta()
        if self.rules.select and (best is None or val < best["validation_error"]):
            self.best = {
                "images_seen": self.seen,
                "epoch": self.seen / self.n,
                "validation_error": val,
            }
            # the latest state is the selected network too, until a later measurement does better
            meta.update(best=self.best, selected_on="validation", validation_error=val)
            with self.parts("checkpoint"):
                self.learner.save(self.best_path, meta, "best")
        return meta

    def _save_latest(self, meta: dict, measure: bool) -> None:
        with self.parts("checkpoint"):
            self.learner.save(self.path, meta, "latest")
            if measure and self.rules.snapshots:  # each one can be resumed, like the latest
                (self.folder / "snapshots").mkdir(exist_ok=True)
                name = f"{self.name}-{self.seen:08d}.npz"
                self.learner.save(self.folder / "snapshots" / name, meta, "latest")

    # ------------------------------------------------------------------ the end
    def _finish(self) -> dict:
        """The summary entry: the test error of the selected network (read once), or for a search
        candidate its validation alone; how far the recipe went; the learner's own entries."""
        selected = self.best_path if self.best else self.path
        if self.rules.read_test:
            res = self._test_once(selected)
        else:  # a candidate of a search: judged on validation alone
            b = self.best or {}
            res = {
                "validation_error": b.get("validation_error"),
                "selected_on": "validation" if b else "last",
                "selected_epoch": round(b["epoch"], 4) if b else None,
            }
        res.update(
            epochs_trained=round(self.seen / self.n, 4),
            epochs_declared=self.declared,
            finished=self.seen >= self.schedule.total or self.stopped,
            images_seen=self.seen,
            epochs=self.seen / self.n,
            wall_seconds=round(self.wall, 1),
            **self.learner.summary(selected, self.sets["validation"]),
        )
        if self.curve:
            res.update({f"{n}_final": v for n, v in zip(self.names, self.curve[-1][2:])})
        return res

    def _test_once(self, path: Path) -> dict:
        """The test error of the checkpoint at `path` (the one selected on validation, or else the
        last one), read once and recorded in the checkpoint that was selected."""
        meta = self.learner.read(path)
        err = meta.get("test_error")
        if err is None:  # a finished run resumed again reads nothing twice
            err = self.learner.score(*self.sets["test"], progress=f"{self.name}: test")
        if meta.get("selected_on") == "validation" or not self.rules.select:
            tested = {
                **meta,
                "test_error": err,
                "test_read_at_epoch": meta["epoch"],
                "finished": True,
            }
            self.learner.save(path, tested, "tested")
        best = meta.get("best") or {}
        return {
            "test_error": err,
            "validation_error": best.get("validation_error"),
            "selected_on": meta.get("selected_on", "last"),
            "selected_images": meta["images_seen"],
            "selected_epoch": round(meta["epoch"], 4),
        }
