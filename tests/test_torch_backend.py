"""Conformance of the torch backend with the NumPy engine, on the CPU (on a GPU where PyTorch finds
one): the same uniforms give the same run, to rounding in float64 and within a stated tolerance in
float32, for every feedback mode, user rules, the plasticity gate, the spiking error pathway and
delays, learning off, a resume, and an image's steps compiled into one call with its spike noise
drawn inside."""

import dataclasses

import numpy as np
import pytest

from spikefa.arrays import to_numpy
from spikefa.spiking import fast
from spikefa.spiking.noise import CounterNoise
from spikefa.spiking.spec import MODES, SpikingSpec, initial_state
from spikefa.spiking.training import FastRunner

torch = pytest.importorskip("torch", reason="the torch backend needs PyTorch (pip install torch)")
from test_spiking_fast import draws  # noqa: E402  (images, labels and uniforms of a small run)

from spikefa.spiking import torch_backend  # noqa: E402  (imports torch)

SIZES = (12, 9, 7, 3)
SHARED = [m for m, mode in MODES.items() if not mode.redraw]  # modes whose uniforms can be shared
REDRAW = [m for m, mode in MODES.items() if mode.redraw]
# float64: the two engines sum products in different orders, so they agree to rounding only.
F64 = dict(rtol=1e-10, atol=1e-13)
# float32: rounding differences of ~1e-7 grow over 40 steps of plasticity (measured: at most 1e-6
# in any state variable); a spike that flipped, where a uniform lies within rounding of σ(u), would
# exceed it.
F32 = dict(rtol=1e-4, atol=1e-5)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def spec_(**kw):
    base = dict(sizes=SIZES, reading="tau", steps_per_image=4, eta=0.05, dtype="float64")
    return SpikingSpec(**{**base, **kw})


def both(spec, batch=3, n_img=10, ops=None, seed=None, **kw):
    """(NumPy state, y), (torch state, y) after the same run on the same uniforms: given ones, or
    with `seed` those both backends' counter-based generators draw."""
    images, labels, uniforms = draws(spec, batch, n_img)
    noise = {"uniforms": uniforms} if seed is None else {"rng": CounterNoise(seed)}
    np_state = fast.batch_state(spec, initial_state(spec), batch)
    np_y, _ = fast.run(spec, np_state, images, labels, ops=fast.CpuOps(), **noise, **kw)
    ops = ops or torch_backend.TorchOps()
    xp = ops.xp
    noise = (
        {"uniforms": [xp.asarray(u) for u in uniforms]}
        if seed is None
        else {"rng": torch_backend.TorchNoise(seed)}
    )
    t_state = fast.batch_state(spec, initial_state(spec), batch, xp)
    t_y, _ = fast.run(spec, t_state, xp.asarray(images), xp.asarray(labels), ops=ops, **noise, **kw)
    return (np_state, np_y), ({k: to_numpy(v) for k, v in t_state.items()}, to_numpy(t_y))


def assert_same(a, b, tol):
    (s1, y1), (s2, y2) = a, b
    np.testing.assert_allclose(y2, y1, **tol)
    for k in s1:
        np.testing.assert_allclose(s2[k], s1[k], err_msg=k, **tol)


@pytest.mark.parametrize("mode", SHARED)
def test_conformance_torch_float64(mode):
    assert_same(*both(spec_(feedback=mode, weight_decay=0.3)), F64)


@pytest.mark.parametrize("mode", SHARED)
def test_conformance_torch_float32(mode):
    (s1, y1), (s2, y2) = both(spec_(feedback=mode, dtype="float32"))
    assert s2["w1"].dtype == np.float32
    assert_same((s1, y1), (s2, y2), F32)


def test_conformance_torch_per_layer_rates():
    assert_same(*both(spec_(eta_scale=(4.0, 2.0, 1.0))), F64)


def test_conformance_torch_plasticity_gate():
    a, b = both(spec_(), plasticity_delay=3)
    assert_same(a, b, F64)
    assert not np.allclose(b[0]["w1"], initial_state(spec_())["w1"])


def test_conformance_torch_user_plasticity_rule():
    rule = "w += eta_post * delta_post * p_pre * (1 - w**2) * int(u_post > 0)"
    assert_same(*both(spec_(plasticity=rule)), F64)


@pytest.mark.parametrize("mode", ["fa", "bp"])
def test_conformance_torch_dale_refractory_elig(mode):
    """The switches through PyTorch's arrays (and NumPy's array code, no Numba loops)."""
    rule = (
        "delig/dt = (p_pre + 0.5 * delta_post - elig) / (2 * ms)\nw += eta_post * mod_post * elig"
    )
    spec = spec_(feedback=mode, dale={"excitatory": 0.8}, refractory_steps=1, plasticity=rule)
    assert_same(*both(spec), F64)
    assert_same(*both(spec, ops=fast.ArrayOps()), F64)


def test_conformance_torch_user_feedback_rule():
    rule = "mod_post = (sign(B) + 0.1) * delta_pre * exp(-u_post**2) : 1 (summed)"
    assert_same(*both(spec_(feedback="sparse_fa", feedback_rule=rule)), F64)


@pytest.mark.parametrize(
    "switches",
    [
        dict(error_coding="spikes"),
        dict(forward_delay=2, feedback_delay=3),
        dict(error_coding="spikes", feedback="dfa", forward_delay=1, feedback_delay=2),
    ],
)
def test_conformance_torch_spikes_and_delays(switches):
    (s1, y1), (s2, y2) = both(spec_(**switches))
    assert_same((s1, y1), (s2, y2), F64)
    assert any(k.startswith(("m", "fq", "bq")) and s1[k].any() for k in s1)  # the switches at work


def test_conformance_torch_learning_off():
    a, b = both(spec_(), learn=False)
    assert_same(a, b, F64)
    np.testing.assert_array_equal(b[0]["w2"], initial_state(spec_())["w2"])


def test_conformance_torch_records():
    """A recorded run (`record=True`) copies the same step records on both backends."""
    spec = spec_()
    images, labels, uniforms = draws(spec, 2, 3)
    runs = []
    for ops in (fast.CpuOps(), torch_backend.TorchOps()):
        xp = ops.xp
        state = fast.batch_state(spec, initial_state(spec), 2, xp)
        args = (xp.asarray(images), xp.asarray(labels))
        _, rec = fast.run(
            spec, state, *args, uniforms=[xp.asarray(u) for u in uniforms], ops=ops, record=True
        )
        runs.append(rec)
    for r1, r2 in zip(*runs):
        np.testing.assert_allclose(to_numpy(r2.delta[1]), r1.delta[1], **F64)
        np.testing.assert_array_equal(to_numpy(r2.spikes[2]), r1.spikes[2])


def test_conformance_torch_compiled_step_equals_eager():
    """The step captured by torch.compile runs the same arithmetic as the plain step. The compiler
    'aot_eager' captures and functionalises the graph as inductor does, without generating C++ (on
    this CPU inductor took ~50 s for this network; the GPU run compiles it for real)."""
    ops = torch_backend.TorchOps(compile="aot_eager")
    assert_same(*both(spec_(), n_img=3, ops=ops), F64)


def test_conformance_torch_resume_equals_uninterrupted_run():
    """State export → prepare → continue, with the generator's state, equals one run throughout."""
    spec = spec_()
    rng = np.random.default_rng(3)
    images, labels = rng.random((16, spec.sizes[0])), rng.integers(0, spec.sizes[-1], 16)

    def runner():
        return FastRunner(spec, 8, batch=4, backend="torch")

    whole = runner()
    state = whole.prepare(initial_state(spec))
    for lo in (0, 8):
        state, y_whole = whole.run(state, images[lo : lo + 8], labels[lo : lo + 8])
    first = runner()
    half = first.prepare(initial_state(spec))
    half, _ = first.run(half, images[:8], labels[:8])
    saved, noise = first.export(half), first.random_state()
    second = runner()
    second.restore_random_state(noise)
    resumed, y_resumed = second.run(second.prepare(saved), images[8:], labels[8:])
    np.testing.assert_array_equal(y_resumed, y_whole)
    for k, v in whole.export(state).items():
        np.testing.assert_array_equal(second.export(resumed)[k], v, err_msg=k)
    assert noise["bit_generator"].startswith(torch_backend.NAME)


@pytest.mark.parametrize("mode", REDRAW)
def test_conformance_torch_redrawn_feedback(mode):
    """Feedback drawn afresh every step (U[−β, β]) comes from the spike generator, which is the same
    on both backends: the same run, B included."""
    spec = spec_(feedback=mode, feedback_scale=0.5)
    a, b = both(spec, seed=1)
    assert_same(a, b, F64)
    assert not np.allclose(b[0]["B1"], initial_state(spec)["B1"])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conformance_torch_noise_equals_numpy_engine(dtype):
    """TorchNoise draws CounterNoise's numbers, numbered in the column-major order of the NumPy
    engine's buffers whatever the tensor's strides, and the two share their saved state."""
    ref, mine = CounterNoise(7), torch_backend.TorchNoise(7)
    for shape in ((50, 30), (11,), (3, 4)):
        a = np.zeros(shape, dtype, order="F")
        ref.fill(a)
        t = torch.zeros(shape, dtype=getattr(torch, dtype))
        mine.fill(t)
        np.testing.assert_array_equal(t.numpy(), a)
    assert mine.state == ref.state
    ref.state = {**ref.state, "counter": 2**40 + 3}
    mine.state = ref.state
    a, t = np.zeros(1000, dtype), torch.zeros(1000, dtype=getattr(torch, dtype))
    ref.fill(a)
    mine.fill(t)
    np.testing.assert_array_equal(t.numpy(), a)


def image_calls(steps_per_call=4, compiler="aot_eager"):
    """The torch backend with an image's steps compiled into calls of `steps_per_call` ("aot_eager":
    captured into one graph as inductor does, without generating C++)."""
    return torch_backend.TorchOps(compiler, steps_per_call=steps_per_call)


def torch_run(spec, ops, batch=3, n_img=6, seed=1, **kw):
    """(state, y) of the torch backend over draws' images, with spike noise from `seed`."""
    images, labels, _ = draws(spec, batch, n_img)
    xp = ops.xp
    state = fast.batch_state(spec, initial_state(spec), batch, xp)
    rng = torch_backend.TorchNoise(seed)
    y, _ = fast.run(spec, state, xp.asarray(images), xp.asarray(labels), rng=rng, ops=ops, **kw)
    return {k: to_numpy(v) for k, v in state.items()}, to_numpy(y)


@pytest.mark.parametrize("dtype, tol", [("float64", F64), ("float32", F32)], ids=["f64", "f32"])
@pytest.mark.parametrize("mode", list(MODES))
def test_conformance_torch_image_call_equals_single_steps(mode, dtype, tol):
    """A whole image as one compiled call, spike noise drawn inside it, gives the run of the single
    step called once per step on the same generator; and the NumPy engine's run."""
    spec = spec_(feedback=mode, dtype=dtype, feedback_scale=0.5)
    single = torch_run(spec, torch_backend.TorchOps())
    whole = torch_run(spec, image_calls())
    assert_same(single, whole, tol)
    assert_same(both(spec, n_img=6, seed=1)[0], whole, tol)


@pytest.mark.parametrize("steps_per_call", [1, 3, 10])
def test_conformance_torch_image_in_several_calls(steps_per_call):
    """Calls of fewer steps than an image (the last one shorter) or more: the same run."""
    spec = spec_(steps_per_image=5)
    assert_same(
        torch_run(spec, torch_backend.TorchOps()), torch_run(spec, image_calls(steps_per_call)), F64
    )


def test_conformance_torch_image_call_gate_and_evaluation():
    """The plasticity gate (η = 0 in an image's first steps) and learning off run in the call."""
    spec = spec_()
    for kw in ({"plasticity_delay": 2}, {"learn": False}):
        single = torch_run(spec, torch_backend.TorchOps(), **kw)
        assert_same(single, torch_run(spec, image_calls(), **kw), F64)
    np.testing.assert_array_equal(single[0]["w1"], initial_state(spec)["w1"])


def test_conformance_torch_image_call_is_one_graph():
    """Each image is one call, and each call one graph: it compiles with `fullgraph`, so a statement
    torch.compile cannot capture (which would split the call into several launches) is an error."""
    from torch._dynamo.utils import counters

    ops = image_calls()
    calls, compiled = [], ops._compiled
    ops._compiled = lambda *a: calls.append(len(a[5])) or compiled(*a)
    graphs = counters["stats"]["unique_graphs"]
    torch_run(spec_(steps_per_image=4, sizes=(10, 8, 6, 4)), ops, n_img=3)
    assert calls == [4, 4, 4]
    assert counters["stats"]["unique_graphs"] == graphs + 1
    assert not counters["graph_break"]


@pytest.mark.slow
def test_conformance_torch_image_call_inductor():
    """The call compiled for real (inductor: C++ on the CPU, about a minute) equals the single steps: the
    integer arithmetic of the noise generator wraps in generated code as it does in eager."""
    spec = spec_(steps_per_image=3)
    single = torch_run(spec, torch_backend.TorchOps(), n_img=3)
    assert_same(single, torch_run(spec, image_calls(3, "inductor"), n_img=3), F64)


def test_conformance_torch_resume_across_backends():
    """A run of the NumPy engine resumed on the torch backend continues the same spike noise: the
    checkpoint's generator state is the same on both."""
    spec = spec_()
    rng = np.random.default_rng(5)
    images, labels = rng.random((16, spec.sizes[0])), rng.integers(0, spec.sizes[-1], 16)
    whole = FastRunner(spec, 8, batch=4)
    state = whole.prepare(initial_state(spec))
    for lo in (0, 8):
        state, y_whole = whole.run(state, images[lo : lo + 8], labels[lo : lo + 8])
    first = FastRunner(spec, 8, batch=4)
    half, _ = first.run(first.prepare(initial_state(spec)), images[:8], labels[:8])
    second = FastRunner(spec, 8, batch=4, backend="torch")
    second.restore_random_state(first.random_state())
    resumed, y_resumed = second.run(second.prepare(first.export(half)), images[8:], labels[8:])
    np.testing.assert_allclose(y_resumed, y_whole, **F64)
    for k, v in whole.export(state).items():
        np.testing.assert_allclose(second.export(resumed)[k], v, err_msg=k, **F64)


def test_conformance_torch_noise_is_uniform_and_restorable():
    noise = torch_backend.TorchNoise(7)
    out = torch.empty((200, 50), dtype=torch.float32)
    saved = noise.state
    noise.fill(out)
    first = out.clone()
    assert 0 <= out.min() and out.max() < 1 and abs(float(out.mean()) - 0.5) < 0.01
    noise.fill(out)
    assert not torch.equal(out, first)
    noise.state = saved
    noise.fill(out)
    assert torch.equal(out, first)


def test_conformance_torch_is_a_config_backend():
    from spikefa import config
    from spikefa.experiments import fig4_spiking

    fig4_spiking.validate(config.resolve("fig4_spiking", ['backend="torch"']))
    spec = dataclasses.replace(spec_(), dtype="float32")
    assert FastRunner(spec, 4, batch=2, backend="torch").xp.__name__.endswith("torch_arrays")


def test_conformance_torch_bench_gpu_dry_run(tmp_path, data_folder, capsys):
    """`spikefa bench gpu --dry-run`: every stage of the prepared GPU run once, on a tiny network;
    its checkpoint continues in the training stage; a missing checkpoint is one line and exit 2."""
    import json

    from spikefa import gpu_run
    from spikefa.cli import main
    from spikefa.spiking.spec import load_checkpoint

    args = ["bench", "gpu", "--dry-run", "--data", str(data_folder)]
    assert main([*args, "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "gpu.json").read_text())
    assert result["conformance"]["all_ok"] and "float32_fa_image_call" in result["conformance"]
    rows = result["stream_steps_per_s"]
    assert {"float32_steps", "tf32_image", "float32_image"} == set(rows)
    assert all(r > 0 for row in rows.values() for r in row.values())
    assert result["epoch"]["epoch_seconds"] > 0
    trained = result["training"]
    assert trained["images"] > 0 and trained["steps_per_image"] == 100
    checkpoint = tmp_path / trained["checkpoint"]
    assert checkpoint.stat().st_size < 16e6
    assert result["brian2"]["device"] == "cpp_standalone" and result["brian2"]["ms_per_step"] > 0
    assert result["device"] in (tmp_path / "gpu.md").read_text()
    assert (tmp_path / "gpu.png").stat().st_size > 0
    again = gpu_run.gpu_training(tmp_path / "again", True, 0, data_folder, resume=checkpoint)
    assert again["epochs_trained"] > trained["epochs_trained"]
    meta = load_checkpoint(tmp_path / "again" / checkpoint.name)[2]
    assert meta["images_seen"] == trained["images"] + again["images"]
    assert main([*args, "--out", str(tmp_path), "--resume", str(tmp_path / "none.npz")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
