"""What makes training fast, checked for what it must not change: counter-based spike noise, the
flush of subnormal values, compact checkpoints, BLAS threads, and the epoch profile."""

import dataclasses
import json

import numpy as np
import pytest

from spikefa.arrays import blas_threads
from spikefa.errors import SpikefaError
from spikefa.spiking import fast
from spikefa.spiking.noise import CounterNoise
from spikefa.spiking.spec import SpikingSpec, initial_state, load_checkpoint, save_checkpoint

SIZES = (12, 9, 7, 3)


def test_counter_noise_is_uniform_and_continues_exactly_after_a_restore():
    a = np.empty(200_000, np.float32)
    noise = CounterNoise(3)
    noise.fill(a)
    assert 0 <= a.min() and a.max() < 1
    counts = np.histogram(a, 20, range=(0, 1))[0]
    assert np.all(
        np.abs(counts - len(a) / 20) < 5 * np.sqrt(len(a) / 20)
    )  # χ²-sized deviations only
    assert abs(np.corrcoef(a[:-1], a[1:])[0, 1]) < 0.01
    later = np.empty((40, 30), np.float32, order="F")
    noise.fill(later)
    again = CounterNoise(0)
    again.state = json.loads(
        json.dumps({**noise.state, "counter": noise.state["counter"] - later.size})
    )
    other = np.empty((40, 30), np.float32, order="F")
    again.fill(other)
    np.testing.assert_array_equal(other, later)
    assert not np.array_equal(
        a[:1000], _filled(CounterNoise(4), 1000)
    )  # another seed, other numbers


def _filled(noise, n):
    out = np.empty(n, np.float32)
    noise.fill(out)
    return out


def test_counter_noise_gives_the_same_numbers_in_any_chunking():
    whole = _filled(CounterNoise(1), 1000)
    parts = CounterNoise(1)
    np.testing.assert_array_equal(np.concatenate([_filled(parts, 300), _filled(parts, 700)]), whole)


def test_a_decaying_trace_is_flushed_to_zero_instead_of_turning_subnormal():
    spec = SpikingSpec(sizes=SIZES, reading="tau", steps_per_image=4, eta=0.05, dtype="float32")
    state = fast.batch_state(spec, initial_state(spec), 2)
    tiny = np.finfo(np.float32).tiny
    state["p1"][...] = 2 * tiny  # one decay step takes it below the smallest normal float32
    ws = fast.Workspace.allocate(spec, 2)
    ws.r[1][...] = 1.0  # no hidden spike this step: p1 only decays
    x = np.zeros((2, SIZES[0]), np.float32, order="F")
    fast.step(spec, state, x, ws, 0.0, fast.CpuOps())
    assert not state["p1"].any()


@pytest.mark.parametrize("mode", ["fa", "sparse_fa", "dfa", "bp"])
def test_a_checkpoint_leaves_out_the_feedback_weights_it_can_draw_again(mode, tmp_path):
    spec = SpikingSpec(sizes=(30, 20, 15, 10, 4), feedback=mode, seed=5)
    state = initial_state(spec)
    state["w3"] += 0.01  # trained weights (bp's B follows them)
    if mode == "bp":
        state["B2"] = state["w3"].T.copy()
    path = save_checkpoint(tmp_path / "c.npz", spec, state, {"k": 1})
    with np.load(path) as z:
        assert not any(k.startswith("B") for k in z.files)
    _, loaded, meta = load_checkpoint(path)
    assert meta == {"k": 1} and set(loaded) == set(state)
    for k in state:
        np.testing.assert_array_equal(loaded[k], state[k])


def test_feedback_weights_changed_by_hand_are_kept_and_a_wrong_draw_is_refused(tmp_path):
    spec = SpikingSpec(sizes=(30, 20, 15, 4), seed=5)
    state = initial_state(spec)
    state["B1"] = state["B1"] * 2
    _, kept, _ = load_checkpoint(save_checkpoint(tmp_path / "own.npz", spec, state))
    np.testing.assert_array_equal(kept["B1"], state["B1"])
    # a file whose recorded B digest does not match what the seed draws cannot be restored
    save_checkpoint(tmp_path / "c.npz", spec, initial_state(spec))
    with np.load(tmp_path / "c.npz") as z:
        arrays = dict(z)
    arrays["feedback"] = json.dumps({"source": "seed", "sha256": "0" * 64})
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(SpikefaError, match="drawn again from seed 5 differ"):
        load_checkpoint(tmp_path / "bad.npz")


def test_an_older_file_with_float16_feedback_weights_gets_the_exact_draw_back(tmp_path):
    spec = SpikingSpec(sizes=(30, 20, 15, 4), seed=2)
    state = initial_state(spec)
    old = {k: v.astype(np.float16) for k, v in state.items()}  # how float16 exports used to store B
    np.savez_compressed(tmp_path / "old.npz", spec=json.dumps(spec.to_dict()), meta="{}", **old)
    _, loaded, _ = load_checkpoint(tmp_path / "old.npz")
    np.testing.assert_array_equal(loaded["B1"], state["B1"])
    np.testing.assert_array_equal(loaded["w1"], old["w1"].astype(np.float32))


def test_blas_threads_sets_and_restores_the_limit():
    from threadpoolctl import threadpool_info

    def blas():
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    before = blas()
    with blas_threads(1):
        assert set(blas()) <= {1}
    assert blas() == before
    with pytest.raises(SpikefaError, match="at least 1"):
        with blas_threads(0):
            pass


def test_epoch_profile_scales_each_part_and_its_shares_add_up(data_folder):
    from spikefa import bench, epoch_profile

    r = epoch_profile.bench_epoch(images=100, data_dir=data_folder, sizes=(784, 40, 30, 10))
    assert set(r["shares"]) >= {
        "steps",
        "spike noise",
        "validation",
        "alignment",
        "checkpoint",
        "figures",
        "other",
    }
    assert abs(sum(r["shares"].values()) - 1) < 0.01
    bound = r["epoch_flops"] / (r["gemm_peak_gflops"] * 1e9)
    assert r["epoch_over_bound"] == pytest.approx(r["epoch_seconds"] / bound, rel=0.02)
    spec = dataclasses.replace(bench.default_spec(), sizes=(784, 40, 30, 10))
    assert r["steps_per_image"] == 10  # the step count the speed goals are stated at
    assert r["epoch_flops"] == 50000 * 10 * bench.stream_step_flops(
        spec
    ) + 10000 * 10 * bench.forward_flops(spec)
    # the products are part of the step, and no faster than the peak product (small shapes)
    assert 0 < r["step_products_share_of_step"] < 1
    assert 0 < r["step_products_fraction_of_gemm_peak"] <= 1.05


def test_the_switch_bench_times_every_candidate_against_the_first(tmp_path, capsys):
    from spikefa.bench import bench_switches

    search = tmp_path / "s.toml"
    search.write_text(
        '[[candidate]]\nlabel = "plain"\nrefractory_steps = 0\n\n'
        '[[candidate]]\nlabel = "spikes"\nerror_coding = "spikes"\n\n'
        "[[candidate]]\nfeedback_delay = 2\n"
    )
    out = bench_switches(batch=4, search=str(search), sizes=(784, 20, 10), rounds=2)
    rates = {k: v for k, v in out.items() if k.endswith("_stream_steps_per_s")}
    assert list(rates) == [f"{n}_stream_steps_per_s" for n in ("plain", "spikes", "candidate3")]
    assert all(v > 0 for v in rates.values()) and out["plain_vs_plain"] == 1.0
    for n in ("spikes", "candidate3"):
        assert out[f"{n}_vs_plain"] == pytest.approx(
            out[f"{n}_stream_steps_per_s"] / out["plain_stream_steps_per_s"], rel=0.01
        )
