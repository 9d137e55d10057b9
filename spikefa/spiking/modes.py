"""The variants of the spiking model as data: feedback modes and error codings. Both engines read
the fields of these rows, never their names."""

from __future__ import annotations

from dataclasses import dataclass


def _by_name(*rows) -> dict:
    return {r.name: r for r in rows}


@dataclass(frozen=True)
class FeedbackMode:
    """How the feedback pathway of a mode is made; both engines read these fields, never the name.

    `source`: whose δ reaches hidden layer l, the layer above ("above") or the output ("output");
    `transport`: B_l is w_{l+1}ᵀ and follows it as it learns (backprop), instead of a random draw;
    `sparse`: a fraction `feedback_sparsity` of the drawn synapses is removed; `redraw`: B is drawn
    afresh at every step, so the modulator carries no consistent credit (a control)."""

    name: str
    source: str = "above"
    transport: bool = False
    sparse: bool = False
    redraw: bool = False
    about: str = ""


MODES = _by_name(
    FeedbackMode("fa", about="feedback alignment: fixed random B from the layer above"),
    FeedbackMode("sparse_fa", sparse=True, about="feedback alignment with a fraction of B removed"),
    FeedbackMode(
        "dfa",
        source="output",
        about="direct feedback alignment: every hidden layer gets the output error",
    ),
    FeedbackMode(
        "bp", transport=True, about="backprop: B = wᵀ of the layer above (weight transport)"
    ),
    FeedbackMode(
        "shuffled",
        redraw=True,
        about="a control: B drawn afresh at every step, no consistent credit",
    ),
)
FEEDBACK_MODES = tuple(MODES)


@dataclass(frozen=True)
class ErrorCoding:
    """How the error travels down. `spikes`: the δ of each layer that sends it down drives two
    populations of error units, e⁺ and e⁻, that fire at rates [δ]⁺ and [−δ]⁺; the feedback synapses
    act once per error spike, and each hidden unit's modulator is a state that filters them."""

    name: str
    spikes: bool = False
    about: str = ""


CODINGS = _by_name(
    ErrorCoding("analog", about="δ and the modulators are real numbers, summed at every step"),
    ErrorCoding("spikes", spikes=True, about="error units e⁺, e⁻ fire; modulators filter them"),
)
ERROR_CODINGS = tuple(CODINGS)
