"""The training loop shared by the image experiments: its schedule, measurements, selection, test
read and resume, with a toy learner (its learners: tests/test_fig3_mnist.py and
the tests/test_fig4_*.py files)."""

import json

import numpy as np
import pytest

from spikefa.errors import SpikefaError
from spikefa.training_loop import Rules, Schedule, TrainingLoop


class Toy:
    """A learner whose state depends on every image shown and on their order."""

    def __init__(self):
        self.chunks, self.tests = [], 0

    def fresh(self):
        self.w = np.zeros(2)

    def load(self, path):
        with np.load(path) as z:
            self.w = z["w"].copy()
            return json.loads(str(z["meta"]))

    def begin(self, seen, meta):
        pass

    def learn(self, seen, images, labels):
        self.chunks.append((seen, len(images)))
        for x in images:
            self.w = 0.5 * self.w + x

    def check(self, first, last, kept):
        pass

    def error(self, images, labels):
        return float(np.mean(np.abs(images @ self.w - labels)))

    def measures(self, images, labels):
        return {"norm": round(float(np.linalg.norm(self.w)), 2)}

    def meta(self):
        return {}

    def save(self, path, meta, kind):
        np.savez(path, w=self.w, meta=json.dumps(meta))

    def read(self, path):
        return self.load(path)

    def score(self, images, labels, progress):
        self.tests += 1
        return self.error(images, labels)

    def summary(self, selected, validation):
        return {}


def _sets(n=10):
    rng = np.random.default_rng(0)
    return {k: (rng.random((n, 2)), rng.random(n)) for k in ("train", "validation", "test")}


def _loop(folder, learner, rules=None, recipe=None, ends=(15, 30)):
    folder.mkdir(parents=True, exist_ok=True)
    return TrainingLoop(
        learner,
        Schedule(10, list(ends)),
        _sets(),
        folder,
        "toy",
        recipe=recipe or {"eta": 1},
        seed=3,
        chunk=4,
        rules=rules or Rules(every=6),
    )


def test_chunks_end_with_epochs_and_phases_and_measurements_follow_the_rules(tmp_path):
    toy = Toy()
    loop = _loop(tmp_path, toy, Rules(every=6, measure_first=True))
    loop.start(resume=False)
    res = loop.run()
    # 10 images an epoch, phases ending at 15 and 30, at most 4 images at once
    assert [n for _, n in toy.chunks] == [4, 4, 2, 4, 1, 4, 1, 4, 4, 2]
    # every epoch's and phase's end, every chunk that passes a multiple of 6, and the start
    assert [c[0] for c in loop.curve] == [0, 8, 10, 14, 15, 19, 20, 24, 30]
    assert res["finished"] and res["images_seen"] == 30 and res["epochs_declared"] == 3.0
    assert res["norm_final"] == round(float(np.linalg.norm(toy.w)), 2)


def test_each_epoch_shows_every_image_once_in_an_order_of_the_seed(tmp_path):
    shown = []
    toy = Toy()
    toy.learn = lambda seen, images, labels: shown.extend(map(tuple, images))
    loop = _loop(tmp_path, toy, ends=(20,))
    loop.start(resume=False)
    loop.run()
    train = {tuple(x) for x in _sets()["train"][0]}
    assert set(shown[:10]) == set(shown[10:]) == train and shown[:10] != shown[10:]


def test_a_resumed_run_ends_as_an_uninterrupted_one(tmp_path):
    whole = _loop(tmp_path / "whole", Toy(), Rules(every=6, snapshots=True))
    whole.start(resume=False)
    whole.run()
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "toy.npz").write_bytes(
        (tmp_path / "whole" / "snapshots" / "toy-00000014.npz").read_bytes()
    )
    toy = Toy()
    cut = _loop(tmp_path / "cut", toy)
    cut.start(resume=True)
    cut.run()
    assert toy.chunks[0] == (14, 1)  # it went on where the snapshot stopped
    np.testing.assert_array_equal(toy.w, whole.learner.w)
    assert cut.curve == whole.curve


def test_resume_refuses_another_recipe(tmp_path):
    loop = _loop(tmp_path, Toy())
    loop.start(resume=False)
    loop.run()
    with pytest.raises(SpikefaError, match="another recipe"):
        _loop(tmp_path, Toy(), recipe={"eta": 2}).start(resume=True)


@pytest.mark.parametrize("select", [True, False])
def test_the_selected_network_reads_the_test_set_once(tmp_path, select):
    toy = Toy()
    loop = _loop(tmp_path, toy, Rules(every=6, select=select))
    loop.start(resume=False)
    res = loop.run()
    assert toy.tests == 1
    best = min(loop.curve, key=lambda c: c[1])
    selected = tmp_path / ("toy-best.npz" if select else "toy.npz")
    assert (tmp_path / "toy-best.npz").exists() == select
    meta = Toy().load(selected)
    assert meta["test_error"] == res["test_error"] and meta["finished"]
    assert res["selected_images"] == (best[0] if select else 30)
    again = _loop(tmp_path, Toy(), Rules(every=6, select=select))
    again.start(resume=True)
    assert again.run()["test_error"] == res["test_error"] and again.learner.tests == 0


def test_patience_ends_the_recipe_after_no_new_best(tmp_path):
    toy = Toy()
    toy.error = lambda images, labels: 0.5  # never better than the first measurement
    loop = _loop(tmp_path, toy, Rules(every=0, patience=10), ends=(100,))
    loop.start(resume=False)
    res = loop.run()
    assert res["finished"] and res["images_seen"] == 20 and [c[0] for c in loop.curve] == [10, 20]
