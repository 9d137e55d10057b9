import pytest

from spikefa import config
from spikefa.errors import SpikefaError


def test_shipped_config_resolves_with_overrides():
    cfg = config.resolve(
        "fig2_linear", ["train.examples=123", "lr.fa=2e-3", 'algorithms=["fa","bp"]', "seed=7"]
    )
    assert cfg["train"]["examples"] == 123 and cfg["lr"]["fa"] == 2e-3
    assert (
        cfg["algorithms"] == ["fa", "bp"]
        and cfg["seed"] == 7
        and cfg["experiment"] == "fig2_linear"
    )


def test_integer_is_accepted_where_a_float_is_expected():
    cfg = config.resolve("fig2_linear", ["feedback_scale=1"])
    assert cfg["feedback_scale"] == 1.0 and isinstance(cfg["feedback_scale"], float)


def test_unknown_key_names_it_and_the_closest():
    with pytest.raises(SpikefaError) as exc:
        config.resolve("fig2_linear", ["train.exampels=10"])
    assert "train.exampels" in str(exc.value) and "train.examples" in str(exc.value)


@pytest.mark.parametrize(
    "item, words",
    [
        ("seed=1.5", ["seed", "integer"]),
        ('train.examples="many"', ["train.examples", "integer"]),
        ("algorithms=[1, 2]", ["algorithms", "str"]),
        ("init_scale=true", ["init_scale", "number"]),
        ("seed", ["KEY=VALUE"]),
        ("lr={a=1", ["lr", "parse"]),
    ],
)
def test_bad_values_are_refused(item, words):
    with pytest.raises(SpikefaError) as exc:
        config.resolve("fig2_linear", [item])
    assert all(w in str(exc.value) for w in words)


def test_bare_word_is_a_string():
    assert config.parse_set("device=cpp_standalone") == ("device", "cpp_standalone")


def test_user_file_overrides_shipped_defaults(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('experiment = "fig2_linear"\nseed = 3\n[train]\nexamples = 10\n')
    cfg = config.resolve(str(path), ["seed=4"])
    assert cfg["seed"] == 4 and cfg["train"]["examples"] == 10 and cfg["train"]["eval_every"] == 100


def test_resolved_config_round_trips_through_toml(tmp_path):
    cfg = config.resolve("fig2_linear", ["lr.bp=0.005"])
    path = tmp_path / "config.toml"
    path.write_text(config.to_toml(cfg))
    assert config.resolve(str(path)) == cfg


@pytest.mark.parametrize(
    "name, words", [("fig2_linaer", ["fig2_linear"]), ("nope.toml", ["does not exist"])]
)
def test_unknown_config_is_refused(name, words):
    with pytest.raises(SpikefaError) as exc:
        config.resolve(name)
    assert all(w in str(exc.value) for w in words)


def test_invalid_toml_and_unknown_experiment(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("seed = = 1\n")
    with pytest.raises(SpikefaError, match="not valid TOML"):
        config.resolve(str(bad))
    other = tmp_path / "other.toml"
    other.write_text('experiment = "fig9"\n')
    with pytest.raises(SpikefaError, match="no known experiment"):
        config.resolve(str(other))


def test_resolved_config_round_trips_any_string_and_schedule():
    """What a run writes as config.toml reads back as the same config, control characters included."""
    import tomllib

    from spikefa.config import to_toml

    cfg = {
        "recipe": 'a\x1f"b\\c\x7f',
        "schedule": [{"epochs": 1.0, "eta": [0.1, 0.2]}],
        "train": {"epochs": 2},
    }
    assert tomllib.loads(to_toml(cfg)) == cfg


def test_model_switches_take_their_defaults_from_the_spec_and_a_table_whole(tmp_path):
    from spikefa.spiking.recipe import recipe, spec_for
    from spikefa.spiking.spec import SpikingSpec

    plain = config.resolve("fig4_spiking")
    assert plain["refractory_steps"] == SpikingSpec().refractory_steps and plain["dale"] == {}
    cfg = config.resolve(
        "fig4_spiking", ["dale={excitatory=0.8}", "refractory_steps=1", "dale.feedback=true"]
    )
    assert cfg["dale"] == {"excitatory": 0.8, "feedback": True} and cfg["refractory_steps"] == 1
    assert spec_for(cfg, "fa").dale == cfg["dale"]
    path = tmp_path / "c.toml"
    path.write_text(config.to_toml(cfg))
    assert config.resolve(str(path)) == cfg
    assert config.resolve(str(path), ["dale={}"])["dale"] == {}  # a table given whole replaces it
    # a network trained without the switches keeps its identity: older checkpoints still resume
    assert not {"dale", "refractory_steps"} & set(recipe(plain, "fa")["spec"])
    assert recipe(cfg, "fa")["spec"]["refractory_steps"] == 1
    for bad, words in [
        ("refractory_steps=-1", "refractory_steps must be at least 0"),
        ("dale={excitatory=1.5}", "dale takes excitatory"),
        ('dale={excitatory=0.8,keep="wrap"}', 'dale.keep must be "clip" or "reflect"'),
    ]:
        with pytest.raises(SpikefaError, match=words):
            spec_for(config.resolve("fig4_spiking", [bad]), "fa")
