"""Data: MNIST / Fashion-MNIST / SVHN (verified, downloaded on demand) and the paper's synthetic
tasks."""

from spikefa.data.datasets import (
    DATASETS,
    ImageData,
    check,
    check_sizes,
    data_dir,
    is_own_dataset,
    load_fashion_mnist,
    load_images,
    load_mnist,
    load_own,
)
from spikefa.data.idx import read_idx
from spikefa.data.svhn import load_svhn
from spikefa.data.synthetic import LinearTask, QuadraticTask, TanhTeacher

__all__ = [
    "DATASETS",
    "ImageData",
    "LinearTask",
    "QuadraticTask",
    "TanhTeacher",
    "check",
    "check_sizes",
    "data_dir",
    "is_own_dataset",
    "load_fashion_mnist",
    "load_images",
    "load_mnist",
    "load_own",
    "load_svhn",
    "read_idx",
]
