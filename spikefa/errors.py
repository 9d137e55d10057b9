"""Errors that the command line turns into one clear line and an exit code."""


class SpikefaError(Exception):
    """Bad input: unknown config key, wrong type, missing or corrupted file. Exit code 2."""

    exit_code = 2


class DataError(SpikefaError):
    """A data file is missing, cannot be downloaded, or fails its checksum."""


class DivergenceError(SpikefaError):
    """NaN or inf in weights or state. Exit code 3; the last good checkpoint is kept."""

    exit_code = 3


def check_finite(arrays: dict, what: str, when: str, kept: str = "") -> None:
    """Raise DivergenceError naming the first of `arrays` (name → weights of one layer) that holds
    NaN or inf: "`what` diverged: NaN/inf in W2 `when`; `kept` — lower the learning rate"."""
    import numpy as np

    for name, a in arrays.items():
        if not np.isfinite(a).all():
            raise DivergenceError(
                f"{what} diverged: NaN/inf in {name} {when}; {kept + ' — ' if kept else ''}"
                f"lower the learning rate"
            )


def layers(W: list, first: int = 1) -> dict:
    """{"W1": W[1], ...}: a network's weight list by layer name, for `check_finite`."""
    return {f"W{l}": w for l, w in enumerate(W) if l >= first}
