"""spikefa — feedback alignment (Lillicrap et al., Nature Communications 2016) as a working tool.

From Python: `run` an experiment config, `sweep` it over seeds, `load_network` a trained spiking
network and score it (`Network.evaluate`); `Results` opens a results folder. Subpackages: `data`
(MNIST, Fashion-MNIST, synthetic tasks), `rate` (Numba rate-based engine), `spiking` (the spiking
network and its engines), `experiments` (one module per paper figure), plus the runner (`runner`),
config handling (`config`) and the command line (`cli`).
"""

__version__ = "0.1.0"

from spikefa.api import Network, Results, load_network, run, sweep

__all__ = ["Network", "Results", "__version__", "load_network", "run", "sweep"]
