"""The Python API: run an experiment, sweep it over seeds, load and score a trained spiking network.

These functions do what the `spikefa run`, `spikefa sweep`, `spikefa evaluate` and `spikefa traces`
commands do, through the same code, and return Python objects instead of printing. Config
overrides are Python values, given as keyword arguments (a dotted key spelled with ``__``:
``train__epochs=1``) or as a dict (``overrides={"train.epochs": 1}``).
"""

from __future__ import annotations

import csv
import json
import tomllib
from pathlib import Path

from spikefa.errors import SpikefaError


def run(
    config, out=None, *, data=None, resume: bool = False, overrides: dict | None = None, **kwargs
) -> Results:
    """Run an experiment, as ``spikefa run`` does, and return its results.

    Parameters
    ----------
    config : str or path-like
        The name of a shipped config (e.g. ``"fig2_linear"``) or a path to a TOML file.
    out : str or path-like, optional
        The results folder (default ``results/<name>-<timestamp>/``).
    data : str or path-like, optional
        The data folder (default ``$SPIKEFA_DATA``, else ``~/.cache/spikefa``).
    resume : bool
        Continue the run in `out` from its latest checkpoints.
    overrides : dict, optional
        Config keys to override, dotted for tables (``{"train.epochs": 1}``); a nested dict
        (``{"train": {"epochs": 1}}``) means the same.
    **kwargs
        More overrides, a dotted key spelled with ``__`` (``train__epochs=1``).

    Returns
    -------
    Results
        The finished run's folder, with its summary, resolved config, metrics and figures.

    Raises
    ------
    spikefa.errors.SpikefaError
        On bad input (an unknown config key, a value of the wrong type, missing data), before
        anything is written; `spikefa.errors.DivergenceError` if training diverges.

    Examples
    --------
    >>> import spikefa
    >>> res = spikefa.run("fig2_linear", seed=1, train__examples=2000)  # doctest: +SKIP
    >>> res.summary["results"]["fa"]["test_nse"]  # doctest: +SKIP
    0.0123
    """
    from spikefa import runner

    path = runner.run(str(config), set_items(overrides, kwargs), out, _str(data), resume=resume)
    return Results(path)


def sweep(
    config,
    seeds: int,
    out=None,
    *,
    data=None,
    scheduler: str | None = None,
    workers: int | None = None,
    grid: dict | None = None,
    candidates=None,
    overrides: dict | None = None,
    **kwargs,
) -> dict:
    """Replicate runs over seeds (and a grid of config values) on Dask, as ``spikefa sweep`` does.

    Parameters
    ----------
    config : str or path-like
        The name of a shipped config or a path to a TOML file.
    seeds : int
        Replicate runs per grid point, each with a seed (and so a network) of its own.
    out : str or path-like, optional
        The sweep folder (default ``results/sweep-<name>-<timestamp>/``), its finished runs reused.
    data : str or path-like, optional
        The data folder.
    scheduler : str, optional
        The address of a running Dask scheduler (default: a local cluster).
    workers : int, optional
        Worker processes of the local cluster (default: one per core).
    grid : dict, optional
        Grid axes, each a config key and its values (``{"eta": [0.01, 0.03]}``): their product.
    candidates : str or path-like, optional
        A declared search, as ``--candidates``: a shipped one's name (``"fig4_fa"``) or a TOML file
        of ``[[candidate]]`` tables of config values; each candidate is crossed with `grid`.
    overrides : dict, optional
        Config keys set at every point, dotted for tables.
    **kwargs
        More such keys, a dotted key spelled with ``__``.

    Returns
    -------
    dict
        The contents of ``sweep.json``: each final metric's statistics and t-tests, per point.

    Raises
    ------
    spikefa.errors.SpikefaError
        On bad input (an unknown search included), found before any run starts, or without Dask.

    Examples
    --------
    >>> s = spikefa.sweep("fig4_search", seeds=1, candidates="fig4_fa")  # doctest: +SKIP
    >>> [p["name"] for p in s["points"]][:2]  # doctest: +SKIP
    ['eta-0.00025', 'eta-0.0005']
    """
    from spikefa.sweeps import sweep as run_sweep

    items = with_grid(set_items(overrides, kwargs), grid or {})
    data = str(Path(data).resolve()) if data else None  # the workers may start elsewhere
    return run_sweep(str(config), seeds, items, out, data, scheduler, workers, search=candidates)


def load_network(name_or_path) -> Network:
    """Load a trained spiking network: a shipped one by name, or a checkpoint file.

    Parameters
    ----------
    name_or_path : str or path-like
        The name of a shipped network (``"fig4_paper_fa"`` reads ``models/fig4_paper_fa.npz`` of a
        clone of the repository) or the path of a checkpoint ``.npz`` written by a run.

    Returns
    -------
    Network

    Raises
    ------
    spikefa.errors.SpikefaError
        If there is no such file or network, or the file is not a spikefa checkpoint.

    Examples
    --------
    >>> import spikefa
    >>> net = spikefa.load_network("fig4_paper_fa")
    >>> net.spec.sizes
    (784, 1500, 1500, 1500, 10)
    >>> net.evaluate(n=200)["test_error"]  # doctest: +SKIP
    0.035
    """
    return Network(name_or_path)


class Network:
    """A trained spiking network (the network of ``spikefa run fig4_spiking``), loaded from a
    checkpoint; `load_network` makes one.

    Attributes
    ----------
    path : pathlib.Path
        The checkpoint file.
    spec : spikefa.spiking.spec.SpikingSpec
        The network's parameters (sizes, time constant, steps per image, feedback mode, ...).
    state : dict of numpy.ndarray
        Weights ``w1..wL``, biases, feedback weights ``B1..B{L-1}``, PSPs and traces.
    meta : dict
        What the run recorded: its config, images seen, the validation error it was selected on
        and, for a finished recipe, its test error.
    """

    def __init__(self, name_or_path):
        from spikefa.shipped import checkpoint_path
        from spikefa.spiking.spec import load_checkpoint

        self.path = checkpoint_path(name_or_path)
        self.spec, self.state, self.meta = load_checkpoint(self.path)

    def __repr__(self) -> str:
        return f"<Network {self.path.name}: {self.spec.describe()}>"

    def evaluate(
        self,
        split: str = "test",
        n: int | None = None,
        repeats: int = 1,
        engine: str = "fast",
        data=None,
        progress: bool = True,
        **options,
    ) -> dict:
        """Score the network with learning off, as ``spikefa evaluate --json`` does.

        Parameters
        ----------
        split : {"test", "validation"}
            The test images, or the validation images its training run held out.
        n : int, optional
            Use the first `n` images of the split (default all; 10,000 MNIST test images take about
            a minute with the fast engine).
        repeats : int
            Fast engine: score this many times with fresh spike draws and report their mean.
        engine : {"fast", "brian2"}
            The batched engine, or the Brian2 reference.
        data : str or path-like, optional
            The data folder.
        progress : bool
            Show a progress bar on stderr.
        **options
            ``dataset``: ``"mnist"``, ``"fashion-mnist"`` or an ``.npz`` file of one's own, and
            ``steps_per_image`` (both default to the checkpoint's); for the fast engine ``batch``
            (image streams side by side, default 100) and ``backend`` (``"numpy"``, ``"cupy"``:
            a GPU, or ``"torch"``: a GPU where PyTorch finds one); for Brian2 ``device``
            (``"runtime"``, ``"numpy"`` or ``"cpp_standalone"``) and ``threads`` (its OpenMP
            threads).

        Returns
        -------
        dict
            ``test_error`` (or ``validation_error``) as a fraction, the number of images
            (``n_test``), engine, reading, steps per image, feedback mode and checkpoint; with
            `repeats` > 1 also ``test_errors`` and ``test_error_sd``.

        Raises
        ------
        spikefa.errors.SpikefaError
            If the images do not fit the network, the split or engine is unknown, or the data
            are missing.

        Examples
        --------
        >>> net = spikefa.load_network("fig4_paper_fa")  # doctest: +SKIP
        >>> net.evaluate(n=1000, repeats=3)["test_error"]  # doctest: +SKIP
        0.041
        """
        from spikefa.spiking.scoring import score

        return score(self, split, n, repeats, engine, _str(data), progress, **options)

    def traces(
        self,
        out=None,
        steps: int = 0,
        neurons=(0, 1, 2, 3),
        first_image: int = 0,
        device: str = "cpp_standalone",
        learn: bool = False,
        data=None,
        pre=(),
    ) -> dict:
        """Record PSP and modulator traces in Brian2 on test images, as ``spikefa traces`` does.

        Parameters
        ----------
        out : str or path-like, optional
            The folder for ``traces.npz`` and ``traces.png`` (default ``results/traces-<time>/``).
        steps : int
            Steps to record (default: five images).
        neurons : sequence of int
            The hidden units recorded in every hidden layer.
        first_image : int
            The first test image shown.
        device : str
            The Brian2 device: ``"runtime"``, ``"numpy"`` or ``"cpp_standalone"`` (compiles first).
        learn : bool
            Keep plasticity on, at the learning rate the training had reached.
        data : str or path-like, optional
            The data folder.
        pre : sequence of int
            Presynaptic units whose synapses onto each recorded neuron have their eligibility
            traces recorded (a rule that declares traces).

        Returns
        -------
        dict of numpy.ndarray
            ``traces.npz``: ``t`` (ms), ``psp``, ``modulator``, ``delta`` (neurons × steps),
            ``neurons`` ((layer, index) rows), ``image_onsets`` (ms), the spikes (``spike_t``,
            ``spike_layer``, ``spike_index``), the output rates ``y``; with `pre` ``eligibility``
            (traces × neurons × `pre` × steps), ``eligibility_names``, ``pre``; and ``"folder"``.

        Raises
        ------
        spikefa.errors.SpikefaError
            For a unit that does not exist, `pre` without a rule's traces, or unfitting images.

        Examples
        --------
        >>> net.traces(steps=50, neurons=[0], pre=[406])["eligibility"].shape  # doctest: +SKIP
        (1, 1, 1, 50)
        """
        import numpy as np

        from spikefa.spiking.traces import write_traces

        folder = write_traces(
            self, out, steps, neurons, first_image, device, learn, _str(data), pre
        )
        with np.load(folder / "traces.npz") as z:
            return {**{k: z[k] for k in z.files}, "folder": folder}

    def save(self, path, float16: bool = False) -> Path:
        """Write the network to a checkpoint file, as ``spikefa export`` does.

        Parameters
        ----------
        path : str or path-like
            The ``.npz`` file to write.
        float16 : bool
            Store the weights as float16 (half the size; loaded back as the spec's dtype).

        Returns
        -------
        pathlib.Path
            The file written.

        Examples
        --------
        >>> net.save("my_network.npz")  # doctest: +SKIP
        PosixPath('my_network.npz')
        """
        from spikefa.spiking.spec import save_checkpoint

        return save_checkpoint(
            path, self.spec, self.state, self.meta, store_dtype="float16" if float16 else None
        )


class Results:
    """A finished run's results folder (what `run` returns); ``Results(path)`` opens one written
    earlier.

    Attributes
    ----------
    path : pathlib.Path
        The folder.
    summary : dict
        ``summary.json``: experiment, seed, wall time, versions, and per algorithm its final
        figures under ``"results"`` (e.g. ``test_error``, ``test_nse``, ``angle_deg_final``).
    config : dict
        The resolved config of the run (``config.toml``).
    metrics : list of dict
        ``metrics.csv``, one dict per row (numbers as numbers, empty cells as None).
    figures : list of pathlib.Path
        The figures the run drew.

    Raises
    ------
    spikefa.errors.SpikefaError
        If the folder holds no finished run.

    Examples
    --------
    >>> res = spikefa.Results("results/fig2_linear-20250101-120000")  # doctest: +SKIP
    >>> sorted(res.summary["results"])  # doctest: +SKIP
    ['bp', 'fa', 'node_perturbation', 'shallow']
    """

    def __init__(self, path):
        self.path = Path(path)
        if not (self.path / "summary.json").is_file():
            raise SpikefaError(f"{self.path} holds no finished run (no summary.json)")

    def __repr__(self) -> str:
        return f"<Results {self.summary['experiment']} in {self.path}>"

    def __str__(self) -> str:
        from spikefa.runner import summary_table

        return summary_table(self.summary, self.path)

    @property
    def summary(self) -> dict:
        return json.loads((self.path / "summary.json").read_text())

    @property
    def config(self) -> dict:
        return tomllib.loads((self.path / "config.toml").read_text())

    @property
    def metrics(self) -> list[dict]:
        path = self.path / "metrics.csv"
        if not path.is_file():
            return []
        with open(path, newline="") as f:
            return [{k: _cell(v) for k, v in row.items()} for row in csv.DictReader(f)]

    @property
    def figures(self) -> list[Path]:
        return sorted(self.path.glob("figures/*.png"))


def set_items(overrides: dict | None, kwargs: dict) -> list[str]:
    """`KEY=VALUE` items (as ``--set`` takes them) of config overrides given as Python values: a
    dict with dotted keys or nested tables, and keyword arguments spelling dots as ``__``."""
    from spikefa.config import toml_value

    flat: dict = {}

    def add(key, value):
        if isinstance(value, dict) and value:  # a table: its keys, dotted
            for k, v in value.items():
                add(f"{key}.{k}", v)
        elif key in flat:
            raise SpikefaError(f"config key {key} is given twice")
        else:
            flat[key] = value

    for key, value in (overrides or {}).items():
        add(str(key), value)
    for key, value in kwargs.items():
        add(key.replace("__", "."), value)
    items = []
    for key, value in flat.items():
        try:
            items.append(f"{key}={toml_value(value)}")
        except SpikefaError as exc:
            raise SpikefaError(f"config key {key}: {exc}") from None
    return items


def with_grid(items: list[str], grid: dict) -> list[str]:
    """`items` and, for each grid axis, one `KEY=VALUE` item per value (a key given several times
    is a grid axis of `spikefa.sweeps`)."""
    given = {item.partition("=")[0] for item in items}
    for key, values in grid.items():
        if not isinstance(values, (list, tuple)) or not values:
            raise SpikefaError(f"grid axis {key}: give a non-empty list of values, got {values!r}")
        if key in given:
            raise SpikefaError(f"config key {key} is both set and a grid axis")
        items = items + [item for v in values for item in set_items({key: v}, {})]
    return items


def _cell(text: str):
    """A CSV cell as a number where it is one, None where empty."""
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _str(path) -> str | None:
    return None if path is None else str(path)
