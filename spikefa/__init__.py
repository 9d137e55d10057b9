"""spikefa — feedback alignment (Lillicrap et al., Nature Communications 2016) as a working tool.

Subpackages: `data` (MNIST, Fashion-MNIST, synthetic tasks), `rate` (Numba rate-based engine),
`experiments` (one module per paper figure), plus the runner (`runner`), config handling
(`config`) and the command line (`cli`).
"""

__version__ = "0.1.0"
