import os
from pathlib import Path

import numpy as np
import pytest

from spikefa.data import datasets
from spikefa.errors import DataError

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def data_folder() -> Path:
    """A folder with verified MNIST: $SPIKEFA_DATA, else the user's cache, downloading what is missing
    (tests of other data sets check theirs). Without MNIST and without a way to download it the tests
    that need it are skipped, saying why — except under CI=true, where that is a failure."""
    folder = datasets.data_dir()
    try:
        datasets.dataset_files("mnist", folder)
    except DataError as exc:
        message = (
            f"MNIST is not in {folder / 'mnist'} and cannot be downloaded; set SPIKEFA_DATA to a folder "
            f"that holds mnist/"
            if "cannot download" in str(exc)
            else f"MNIST in {folder}: {exc}"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return folder


def _cupy_or_skip():
    from spikefa.arrays import import_cupy
    from spikefa.errors import SpikefaError

    try:
        return import_cupy()
    except SpikefaError as exc:
        pytest.skip(str(exc))


@pytest.fixture
def cupy():
    """CuPy where a GPU answers (the test is skipped elsewhere)."""
    return _cupy_or_skip()


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def xp(request):
    """The array module of a backend: NumPy always; CuPy where a GPU answers (skipped elsewhere)."""
    return np if request.param == "numpy" else _cupy_or_skip()


@pytest.fixture
def killed_mid_run(data_folder):
    """`kill(args, ready)`: start `python -m spikefa run ARGS` and SIGKILL it as soon as `ready()` is
    true (polled every 10 ms); fails if the run ends first. Returns the killed process's stderr."""
    import signal
    import subprocess
    import sys
    import time

    def kill(args: list[str], ready) -> str:
        env = {**os.environ, "SPIKEFA_DATA": str(data_folder)}
        p = subprocess.Popen(
            [sys.executable, "-m", "spikefa", "run", *args],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        while p.poll() is None and not ready():
            time.sleep(0.01)
        if p.poll() is not None:
            pytest.fail(
                f"the run ended (exit {p.returncode}) before it could be killed: {p.stderr.read()[-500:]}"
            )
        p.send_signal(signal.SIGKILL)
        p.wait()
        return p.stderr.read()

    return kill
