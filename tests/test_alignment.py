"""The angle between the feedback's modulator and backprop's: 0° under weight transport, about 90°
for random feedback at the start, signed beyond 90° when the feedback points the other way."""

import dataclasses

import numpy as np
import pytest

from spikefa.spiking.alignment import alignment
from spikefa.spiking.spec import SpikingSpec, initial_state

SPEC = SpikingSpec(
    sizes=(20, 30, 25, 20, 4), reading="tau", steps_per_image=3, dtype="float64", seed=1
)


def images(n=20):
    rng = np.random.default_rng(0)
    return rng.random((n, 20)), rng.integers(0, 4, n)


def test_backprop_modulators_agree_with_themselves_at_every_depth():
    spec = dataclasses.replace(SPEC, feedback="bp")
    a = alignment(spec, initial_state(spec), *images())
    for l in (1, 2, 3):
        assert a[f"angle_deg_mod{l}"] == pytest.approx(0, abs=1e-4)
        assert a[f"angle_deg_wb{l}"] == pytest.approx(0, abs=1e-4)


def test_random_feedback_starts_near_90_degrees_and_reversed_feedback_beyond_it():
    state = initial_state(SPEC)
    a = alignment(SPEC, state, *images())
    assert all(60 < a[f"angle_deg_mod{l}"] < 120 for l in (1, 2, 3))
    # feedback set to minus the forward weights above: the top modulator is backprop's reversed
    state["B3"] = -state["w4"].T.copy()
    assert alignment(SPEC, state, *images())["angle_deg_mod3"] == pytest.approx(180, abs=1e-4)
