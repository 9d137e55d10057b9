"""The batched engine's arithmetic, compiled from the Brian2 model's own strings (`equations.py`).

Every string is parsed with SymPy through Brian2's own parser (`parsing`) and printed as array code
that runs on NumPy, CuPy or PyTorch unchanged, or as Numba loops on the CPU (`blocks`):

- a linear differential equation dv/dt = A·v + C is integrated exactly over one step,
  v ← β·v + (C/A)(β − 1) with β = e^A (Brian2's `exact`); the PSP's β rides on the forward product;
- thresholds, resets and per-neuron statements (output error, δ, bias plasticity) become array
  statements over a layer's variables; a shared variable (the bias) sums its increments over
  streams;
- synaptic terms — the forward `on_pre`, the summed feedback variable and the plasticity of w — are
  split into a sum of (postsynaptic) × (presynaptic) × f(w or B) terms, each a matrix product over
  the presynaptic index and the streams (`synapses`). A term that does not split is refused with one
  line naming it;
- a rule's eligibility traces are kept per unit where that is exact (`eligibility`).

`model` puts them together into the `CompiledModel` of a spec.
"""

from spikefa.spiking.codegen.blocks import Block, invalidate
from spikefa.spiking.codegen.eligibility import brian_rule, state_key, trace_shapes
from spikefa.spiking.codegen.model import CompiledModel, check_rules, clear_caches, compile_model
from spikefa.spiking.codegen.parsing import NOISE, SPIKES, RuleError, constants, layer_variables

__all__ = [
    "NOISE",
    "SPIKES",
    "Block",
    "brian_rule",
    "state_key",
    "trace_shapes",
    "CompiledModel",
    "RuleError",
    "check_rules",
    "clear_caches",
    "compile_model",
    "constants",
    "invalidate",
    "layer_variables",
]
