"""The 1-1-1 linear network under feedback alignment (arXiv Fig. 3), drawn by
`spikefa.rate.theory.plot_flow_field`: one unit per layer, target T = 1, feedback B = 1, in the
batch limit Ẇ = E·A, Ȧ = B·E with E = T − W·A.

    python scripts/flow_field.py docs/flow_field.png
"""

import sys

from spikefa import plotting
from spikefa.rate.theory import plot_flow_field


def main(path: str) -> None:
    fig, ax = plotting.new_axes(figsize=(4.2, 4.0))
    _, (a, w) = plot_flow_field(ax)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    print(f"{path}: trajectory from 0 ends at A = {a:.4f}, W = {w:.4f} (A·W = {a * w:.6f})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "flow_field.png")
