"""The 1-1-1 linear network under feedback alignment (SPEC §6.2; arXiv Fig. 3).

One unit per layer, target T = 1, feedback B = 1: in the batch limit Ẇ = E·A, Ȧ = B·E with
E = T − W·A (`spikefa.rate.theory`). The solutions W·A = T form a hyperbola; the branch with W > 0
(W·B > 0) attracts, the other does not. The trajectory from A = W = 0 follows a parabola
(A²/2 − B·W is conserved) onto the good branch.

    python scripts/flow_field.py docs/flow_field.png
"""

import sys

import numpy as np

from spikefa import plotting
from spikefa.rate.theory import fa_linear_ode

T, B = 1.0, 1.0


def main(path: str) -> None:
    a, w = np.meshgrid(np.linspace(-2, 2, 21), np.linspace(-2, 2, 21))
    e = T - w * a
    fig, ax = plotting.new_axes(figsize=(4.2, 4.0))
    ax.quiver(a, w, B * e, e * a, color="0.6", angles="xy", width=0.003)
    x = np.linspace(0.5, 2, 100)
    ax.plot(x, T / x, color=plotting.COLOURS["fa"], label="W·A = T, stable (W·B > 0)")
    ax.plot(-x, -T / x, color="k", linestyle="--", label="W·A = T, unstable")
    t, A, W = fa_linear_ode(np.array([[T]]), np.array([[B]]), np.zeros((1, 1)), np.zeros((1, 1)), t_end=20.0,
                            n_points=400)
    ax.plot(A[:, 0, 0], W[:, 0, 0], color="tab:red", linewidth=2, label="from A = W = 0")
    ax.set(xlim=(-2, 2), ylim=(-2, 2), xlabel="A (input → hidden)", ylabel="W (hidden → output)",
           title="1-1-1 network, feedback alignment")
    ax.legend(frameon=False, fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    end = A[-1, 0, 0], W[-1, 0, 0]
    print(f"{path}: trajectory from 0 ends at A = {end[0]:.4f}, W = {end[1]:.4f} (A·W = {end[0] * end[1]:.6f})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "flow_field.png")
