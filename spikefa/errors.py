"""Errors that the command line turns into one clear line and an exit code (CONTRACT.md)."""


class SpikefaError(Exception):
    """Bad input: unknown config key, wrong type, missing or corrupted file. Exit code 2."""

    exit_code = 2


class DataError(SpikefaError):
    """A data file is missing, cannot be downloaded, or fails its checksum."""


class DivergenceError(SpikefaError):
    """NaN or inf in weights or state. Exit code 3; the last good checkpoint is kept."""

    exit_code = 3
