"""A run's results folder: config.toml, metrics.csv, summary.json, figures/, *.npz.

Every file is written atomically (temporary file in the same folder, then rename), so an
interrupted run never leaves a half-written file, and a folder that already holds a finished
run (`summary.json`) is never written into again.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from spikefa.errors import SpikefaError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; results are ordinary files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_npz(path: Path, what: str) -> dict:
    """Every array of an `.npz` file, read eagerly; a missing, truncated or corrupted file is a
    SpikefaError naming it (`what` says what the file should have been)."""
    try:
        with open(path, "rb") as f:
            if (
                f.read(2) != b"PK"
            ):  # every .npz is a zip file; without this NumPy reads it as a pickle
                raise SpikefaError(f"{path} is not a {what}: not an .npz (zip) file")
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError("an .npy file, not an .npz")
        with z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise SpikefaError(f"{what} {path} does not exist") from None
    except SpikefaError:
        raise
    # a damaged zip can raise almost anything: BadZipFile, zlib.error, NotImplementedError (a
    # flipped compression method), RuntimeError (a flipped encryption flag), SyntaxError (a garbled
    # .npy header), ...
    except Exception as exc:
        raise SpikefaError(
            f"{path} is not a {what} or is corrupted ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())})"
        ) from None


def default_out(name: str) -> Path:
    return Path("results") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


class ResultsDir:
    def __init__(self, path: str | Path, resume: bool = False):
        """`resume`: continue an earlier run in this folder (its files are replaced as it goes)."""
        self.path = Path(path)
        if (self.path / "summary.json").exists() and not resume:
            raise SpikefaError(
                f"{self.path} already holds a finished run; choose another --out (or --resume it)"
            )
        # the outermost folder this creates: `discard` removes it again if the run writes nothing
        self._created = next(
            (p for p in reversed([self.path, *self.path.parents]) if not p.exists()), None
        )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.path / ".write-test", b"")
            os.unlink(self.path / ".write-test")
        except OSError as exc:
            raise SpikefaError(f"cannot write results to {self.path}: {exc.strerror}") from exc

    def discard(self, keep_if_more_than: tuple[str, ...] = ("config.toml",)) -> bool:
        """Remove the folders this object created, if they hold no file but `keep_if_more_than`
        (a run that failed before it produced anything leaves nothing behind). True if removed."""
        if self._created is None:
            return False
        allowed = {self.path / name for name in keep_if_more_than}
        if any(p.is_file() and p not in allowed for p in self._created.rglob("*")):
            return False
        shutil.rmtree(self._created, ignore_errors=True)
        return True

    def write_text(self, name: str, text: str) -> Path:
        atomic_write_bytes(self.path / name, text.encode())
        return self.path / name

    def write_json(self, name: str, obj) -> Path:
        return self.write_text(
            name, json.dumps(_finite(obj), indent=2, allow_nan=False, default=_jsonable) + "\n"
        )

    def write_csv(self, name: str, rows: list[dict]) -> Path:
        buf = io.StringIO()
        fields = list(dict.fromkeys(k for r in rows for k in r))
        writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return self.write_text(name, buf.getvalue())

    def write_npz(self, name: str, **arrays) -> Path:
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        atomic_write_bytes(self.path / name, buf.getvalue())
        return self.path / name

    def savefig(self, fig, name: str, folder: str = "figures") -> Path:
        from spikefa.plotting import tidy

        tidy(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
        path = self.path / folder / name
        path.parent.mkdir(exist_ok=True)  # figures/ only where there are figures
        atomic_write_bytes(path, buf.getvalue())
        return path


def _jsonable(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"cannot write {type(x).__name__} to JSON")


def _finite(obj):
    """JSON has no NaN or inf: non-finite numbers become null."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, (float, np.floating)) and not np.isfinite(obj):
        return None
    return obj


def per_network(result: dict) -> dict:
    """metric → one value per network: the per-run list where a summary has one (`test_errors`
    beside `test_error`), else the single value."""
    out = {}
    for k, v in result.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, type(None))):
            continue
        many = result.get(k + "s")
        out[k] = [None if x is None else float(x) for x in many] if isinstance(many, list) else [v]
    return out
