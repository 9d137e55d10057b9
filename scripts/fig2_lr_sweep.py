"""Learning-rate sweep behind the rates in the fig2_linear config.

For each algorithm, every rate of the grid trains on the config's full example stream (seed 0);
a run that diverges is unstable. Among the stable ones the fastest learner wins: the lowest mean
of log10(test NSE) over all evaluations (NSE floored at 1e-30, float64 round-off). Node
perturbation also sweeps its hidden-layer rate and perturbation SD.

    python scripts/fig2_lr_sweep.py            # prints a markdown table and the winners
"""

import itertools
import sys

import numpy as np

from spikefa import config
from spikefa.errors import DivergenceError
from spikefa.experiments import fig2_linear as fig2

GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
SIGMAS = (1e-3, 1e-2, 1e-1, 1.0)


def score(setup, algo, **kw):
    try:
        c = fig2.train(setup, algo, eval_every=100, **kw)
    except DivergenceError:
        return np.inf, None, None
    nse = np.maximum(c.test_nse, 1e-30)
    at = {k: fig2.metrics.first_reaching(c.examples, c.test_nse, k) for k in (1e-2, 1e-3)}
    return float(np.mean(np.log10(nse))), at, float(c.test_nse[c.examples == 20000][0])


def main(argv):
    cfg = config.resolve("fig2_linear", argv)
    setup = fig2.make_setup(cfg)
    print("| algorithm | lr | lr_hidden | sigma | mean log10 NSE | ex. to 1e-2 | ex. to 1e-3 | NSE at 20k |")
    print("|---|---|---|---|---|---|---|---|")
    best = {}
    for algo in fig2.linear.ALGORITHMS:
        if algo == "node_perturbation":
            combos = [dict(lr=a, lr_hidden=b, sigma=s) for a, b, s in itertools.product(GRID, GRID, SIGMAS)]
        else:
            combos = [dict(lr=a) for a in GRID]
        for kw in combos:
            m, at, n20 = score(setup, algo, **kw)
            if m < best.get(algo, (np.inf,))[0]:
                best[algo] = (m, kw)
            if at is None:
                print(f"| {algo} | {kw['lr']:g} | {kw.get('lr_hidden', '')} | {kw.get('sigma', '')} | diverged | | | |")
            else:
                print(f"| {algo} | {kw['lr']:g} | {kw.get('lr_hidden', '')} | {kw.get('sigma', '')} | {m:.2f} "
                      f"| {at[1e-2]} | {at[1e-3]} | {n20:.3g} |")
    print()
    for algo, (m, kw) in best.items():
        print(f"best {algo}: {kw} (mean log10 NSE {m:.2f})")


if __name__ == "__main__":
    main(sys.argv[1:])
