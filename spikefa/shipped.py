"""Trained networks found by name: `spikefa evaluate fig4_paper_fa` reads
`models/fig4_paper_fa.npz`.

The shipped networks live in `models/` of a clone of the repository, beside the package; an
installed wheel does not carry them, so there a checkpoint is given by its path.
"""

from __future__ import annotations

from pathlib import Path

from spikefa.config import MODELS_DIR
from spikefa.errors import SpikefaError


def shipped_networks() -> list[str]:
    return sorted(p.stem for p in MODELS_DIR.glob("*.npz")) if MODELS_DIR.is_dir() else []


def checkpoint_path(name_or_path: str | Path) -> Path:
    """A checkpoint file as given, or the shipped network of that name (a bare name with no
    suffix)."""
    path = Path(name_or_path)
    if path.exists() or path.suffix or len(path.parts) > 1:
        return path  # a path: a missing file is reported where it is read
    if (MODELS_DIR / f"{path}.npz").is_file():
        return MODELS_DIR / f"{path}.npz"
    known = shipped_networks()
    where = (
        f"shipped networks: {', '.join(known)}"
        if known
        else "the shipped networks come with a clone of the repository (its models/ folder)"
    )
    raise SpikefaError(f"no checkpoint file {path} and no shipped network named {path}; {where}")
