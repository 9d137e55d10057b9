import os
from pathlib import Path

import pytest

from spikefa.data import datasets

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_folder() -> Path:
    """A folder with verified MNIST and Fashion-MNIST: $SPIKEFA_DATA (CI: ../shared/data), else the
    project's shared copy, else the user's cache, downloading what is missing."""
    folder = Path(os.environ["SPIKEFA_DATA"]) if "SPIKEFA_DATA" in os.environ else (
        SHARED_DATA if SHARED_DATA.is_dir() else datasets.data_dir())
    for name in ("mnist", "fashion-mnist"):
        datasets.dataset_files(name, folder)
    return folder
