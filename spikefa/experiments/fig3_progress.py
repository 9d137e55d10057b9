"""The resumable progress of a rate-network MNIST run (`fig3_mnist`): the curves of every finished
network, the receptive fields, and the weights and curves of the network in training, in one
`checkpoint.npz` written atomically."""

from __future__ import annotations

import json
import time

import numpy as np

from spikefa import config
from spikefa.arrays import to_numpy
from spikefa.errors import SpikefaError
from spikefa.rate.network import Network
from spikefa.results import load_npz


class Progress:
    """What a run has done so far, kept in `checkpoint.npz`: the curves of every finished network, the
    receptive fields, and the weights and curves of the network in training. Saved atomically every
    `checkpoint_minutes` between evaluations and after every finished network."""

    def __init__(self, cfg: dict, out, resume: bool):
        self.out, self.path = out, out.path / "checkpoint.npz"
        self.config = config.to_toml({k: v for k, v in cfg.items() if k != "checkpoint_minutes"})
        self.every, self.last_save = 60 * cfg["checkpoint_minutes"], time.monotonic()
        self.done, self.fields, self.current = (
            {},
            {},
            None,
        )  # current: (algo, r, arrays of the partial run)
        if resume and self.path.exists():
            self._load()

    def _load(self) -> None:
        z = load_npz(self.path, "fig3_mnist checkpoint")
        try:
            meta = json.loads(str(z.pop("meta")))
            if meta["config"] != self.config:
                raise SpikefaError(
                    f"{self.path} was written by a run with another config; resume it with the "
                    f"same settings, or start a new run in another folder"
                )
            for a, r in meta["done"]:
                self.done[(a, r)] = {k: z.pop(f"done.{a}.{r}.{k}") for k in meta["curve_keys"]}
                self.done[(a, r)]["seconds"] = float(self.done[(a, r)]["seconds"])
            self.fields = {
                k[len("fields.") :]: z.pop(k) for k in list(z) if k.startswith("fields.")
            }
            if meta["current"]:
                self.current = (
                    *meta["current"],
                    {k[len("cur.") :]: v for k, v in z.items() if k.startswith("cur.")},
                )
        except (KeyError, TypeError, ValueError) as exc:
            raise SpikefaError(
                f"{self.path} is not a fig3_mnist checkpoint or is corrupted ({exc!r})"
            ) from None

    def restore(self, run, net: Network) -> dict | None:
        """Put the saved partial run `run` into `net`; its curves so far, or None to start afresh."""
        if self.current is None or tuple(self.current[:2]) != tuple(run):
            return None
        z = self.current[2]
        for l in range(1, net.L + 1):
            net.W[l][...] = net.xp.asarray(z[f"W{l}"])
            net.b[l][...] = net.xp.asarray(z[f"b{l}"])
        angles = z["angles"]
        return {
            "examples": z["examples"].tolist(),
            "validation_error": z["validation_error"].tolist(),
            "angles": [angles] if len(angles) else [],
            "seconds": float(z["seconds"]),
        }

    def save_if_due(self, run, net: Network, c: dict) -> None:
        if time.monotonic() - self.last_save >= self.every:
            self.current = (*run, self._partial(net, c))
            self._save()

    def finish(self, run, curves: dict, fields=None) -> None:
        self.done[tuple(run)] = curves
        if fields is not None:
            self.fields[run[0]] = fields
        self.current = None
        self._save()

    @staticmethod
    def _partial(net: Network, c: dict) -> dict:
        arrays = {f"W{l}": to_numpy(net.W[l]) for l in range(1, net.L + 1)}
        arrays.update({f"b{l}": to_numpy(net.b[l]) for l in range(1, net.L + 1)})
        angles = np.concatenate(c["angles"]) if c["angles"] else np.zeros(0)
        return {
            **arrays,
            "examples": np.array(c["examples"]),
            "validation_error": np.array(c["validation_error"]),
            "angles": angles,
            "seconds": np.array(c["seconds"]),
        }

    def _save(self) -> None:
        keys = sorted({k for c in self.done.values() for k in c})
        meta = {
            "config": self.config,
            "done": [list(k) for k in self.done],
            "curve_keys": keys,
            "current": list(self.current[:2]) if self.current else None,
        }
        arrays = {
            f"done.{a}.{r}.{k}": np.asarray(c[k]) for (a, r), c in self.done.items() for k in keys
        }
        arrays.update({f"fields.{k}": v for k, v in self.fields.items()})
        if self.current:
            arrays.update({f"cur.{k}": v for k, v in self.current[2].items()})
        self.out.write_npz(self.path.name, meta=json.dumps(meta), **arrays)
        self.last_save = time.monotonic()
