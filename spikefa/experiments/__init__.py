"""One module per paper figure. Each has `validate(cfg)`, which raises SpikefaError on bad values
before anything is written, and `run(cfg, out, data_dir) -> {"results": ..., "stats": ...}`."""

from importlib import import_module

EXPERIMENTS = {
    "fig2_linear": "spikefa.experiments.fig2_linear",
    "fig3_deep": "spikefa.experiments.fig3_deep",
    "fig3_mnist": "spikefa.experiments.fig3_mnist",
    "fig4_spiking": "spikefa.experiments.fig4_spiking",
    "fig5_quadratic": "spikefa.experiments.fig5_quadratic",
    "supp_init_scale": "spikefa.experiments.supp_init_scale",
    "supp_theorem1": "spikefa.experiments.supp_theorem1",
}


def get(name: str):
    return import_module(EXPERIMENTS[name])


# Keys whose defaults live in code rather than in the experiment's shipped TOML: the spiking model's
# biology switches, whose defaults are the spec's own ("module:function" giving {key: default}).
CODE_DEFAULTS = {"fig4_spiking": "spikefa.spiking.switches:switch_defaults"}


def code_defaults(name: str) -> dict:
    """The config keys of experiment `name` whose defaults live in code, with those defaults."""
    if name not in CODE_DEFAULTS:
        return {}
    module, function = CODE_DEFAULTS[name].split(":")
    return getattr(import_module(module), function)()
