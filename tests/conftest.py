import os
from pathlib import Path

import numpy as np
import pytest

from spikefa.data import datasets

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_folder() -> Path:
    """A folder with verified MNIST: $SPIKEFA_DATA, else the project's shared
    copy, else the user's cache, downloading what is missing (tests of other data sets check theirs)."""
    folder = Path(os.environ["SPIKEFA_DATA"]) if "SPIKEFA_DATA" in os.environ else (
        SHARED_DATA if SHARED_DATA.is_dir() else datasets.data_dir())
    datasets.dataset_files("mnist", folder)
    return folder


def _cupy_or_skip():
    from spikefa.errors import SpikefaError
    from spikefa.arrays import import_cupy

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
        p = subprocess.Popen([sys.executable, "-m", "spikefa", "run", *args], env=env, cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        while p.poll() is None and not ready():
            time.sleep(0.01)
        if p.poll() is not None:
            pytest.fail(f"the run ended (exit {p.returncode}) before it could be killed: {p.stderr.read()[-500:]}")
        p.send_signal(signal.SIGKILL)
        p.wait()
        return p.stderr.read()

    return kill
