"""The η / ω sweep behind models/fig3_mnist.toml: one seed of the 784-1000-10 MNIST network, online,
test error on the 10,000 test images after epochs 1, 2, 5, 10, 15, 20 (README, Fig. 3a,b).

    python scripts/fig3_sweep.py fa 0.01 0.2 0.5 20      # algorithm, eta, init_scale, feedback_scale, epochs
"""

import argparse
import json
import time

import numpy as np

from spikefa.data import load_images
from spikefa.rate.network import Network


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("algorithm")
    ap.add_argument("eta", type=float)
    ap.add_argument("init_scale", type=float)
    ap.add_argument("feedback_scale", type=float)
    ap.add_argument("epochs", type=int)
    ap.add_argument("--data", help="data folder (default $SPIKEFA_DATA, else ~/.cache/spikefa)")
    a = ap.parse_args()
    d = load_images("mnist", a.data)
    X, Y = d.train_x.astype(np.float32), np.eye(10, dtype=np.float32)[d.train_y]
    net = Network((784, 1000, 10), a.algorithm, *(np.random.default_rng(k) for k in (1, 2, 3)),
                  init_scale=a.init_scale, feedback_scale=a.feedback_scale, etas=a.eta, weight_decay=1e-6,
                  dtype="float32")
    order, curve, start = np.random.default_rng(0), [], time.time()
    for epoch in range(1, a.epochs + 1):
        p = order.permutation(len(X))
        net.train(X[p], Y[p])
        if epoch in (1, 2, 5, 10, 15, 20, 30, 40):
            error = float(np.mean(net.predict(d.test_x.astype(np.float32)).argmax(1) != d.test_y))
            curve.append((epoch, round(100 * error, 2)))
    print(json.dumps({**vars(a), "curve": curve, "seconds": round(time.time() - start)}))


if __name__ == "__main__":
    main()
