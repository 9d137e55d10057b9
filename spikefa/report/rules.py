"""The rule language of the results page: each kind of rule a claim can state, and its outcome.

A rule reads a source's values (one per trained network) and returns an `Outcome`. Rules that
compare ours with a number of the paper are two-sided: `within` the tolerance band, or `better` or
`worse` than the paper. Qualitative rules (orderings, ratios, ranges) `hold` or `fail`. A rule
whose values are missing returns None (the claim is then not run).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from spikefa.errors import SpikefaError
from spikefa.report.sources import Source

HOLDS, FAILS, WITHIN, BETTER, WORSE = "holds", "fails", "within", "better", "worse"


@dataclass(frozen=True)
class Outcome:
    """What a rule found: one of HOLDS, FAILS (qualitative), WITHIN, BETTER, WORSE (against the
    paper's number), or None where the source lacks what the rule reads; and the numbers."""

    result: str | None
    note: str


Rule = Callable[[Source], Outcome]


def mean(v: list) -> float:
    return float(np.mean(v)) if v else math.nan


def sd(v: list) -> float:
    """The sample SD across networks (0 for one network: its spread is unknown)."""
    return float(np.std(v, ddof=1)) if len(v) > 1 else 0.0


def fmt(v: float, unit: str) -> str:
    if unit == "%":
        return f"{100 * v:.2f}%"
    if unit == "°":
        return f"{v:.1f}°"
    return f"{v:.3g}"


def test_images(s: Source, default: int) -> int:
    """How many test images a source's error rates were measured on (`test.images`, 0: all)."""
    return int((s.cfg.get("test") or {}).get("images") or default)


def paper_band(
    paper: float, ours: list, n_paper: int, n_test_paper: int, n_test: int, z: float
) -> float:
    """Half-width of the band around the paper's error rate within which ours reproduces it.

    Parameters
    ----------
    paper : float
        The paper's error rate p₀ (a fraction).
    ours : list of float
        Our error rates p, one per independently trained network.
    n_paper : int
        Networks the paper's number averages (n₀).
    n_test_paper, n_test : int
        Test images of the paper's measurement (N₀) and of ours (N).
    z : float
        Standard errors in the band.

    Returns
    -------
    float
        z · SE of the difference, SE² = p₀(1−p₀)/N₀ + p(1−p)/N + s²(1/n + 1/n₀): the binomial
        sampling error of each measurement, plus the spread s across our n networks, which stands
        in for the paper's own (it reports none).
    """
    p, s = mean(ours), sd(ours)
    se2 = (
        paper * (1 - paper) / n_test_paper
        + p * (1 - p) / n_test
        + s**2 * (1 / len(ours) + 1 / n_paper)
    )
    return z * math.sqrt(se2)


def paper_value(
    algorithm: str, metric: str, value: float, tolerance: dict, paper_n: int, unit: str = "%"
) -> Rule:
    """Ours against the paper's error rate, two-sided (lower is better)."""

    def rule(s: Source) -> Outcome:
        v = s.get(algorithm, metric)
        if not v:
            return Outcome(None, f"no {algorithm} {metric}")
        n0 = tolerance["test_images"]
        band = paper_band(value, v, paper_n, n0, test_images(s, n0), tolerance["z"])
        gap = mean(v) - value
        result = WITHIN if abs(gap) <= band else BETTER if gap < 0 else WORSE
        where = "within" if result == WITHIN else "outside"
        return Outcome(
            result,
            f"{algorithm} {fmt(mean(v), unit)} − paper {fmt(value, unit)} = "
            f"{100 * gap:+.2f} points, {where} ±{100 * band:.2f} "
            f"({tolerance['z']:g} SE)",
        )

    return rule


def _pair(a: str, b: str, metric: str, judge: Callable[[list, list], Outcome]) -> Rule:
    def rule(s: Source) -> Outcome:
        va, vb = s.get(a, metric), s.get(b, metric)
        if not va or not vb:
            return Outcome(None, f"no {a if not va else b} {metric}")
        return judge(va, vb)

    return rule


def below(a: str, b: str, metric: str, unit: str = "", p: float | None = None) -> Rule:
    """Ordering: mean of `a` below that of `b` (with `p`: a two-sided Student t-test p < p)."""

    def judge(va: list, vb: list) -> Outcome:
        ok = mean(va) < mean(vb)
        note = f"{a} {fmt(mean(va), unit)} vs {b} {fmt(mean(vb), unit)}"
        if len(va) > 1 and len(vb) > 1:
            from spikefa.sweeps import t_tests

            pv = t_tests(va, vb)["student_p"]  # None: no spread in either group
            note += f", Student p = {pv:.2g}" if pv is not None else ", no spread (no t-test)"
            if p is not None:
                ok = ok and pv is not None and pv < p
        elif p is not None:
            ok, note = False, note + f" (one network each: no test, and the claim needs p < {p:g})"
        return Outcome(HOLDS if ok else FAILS, note)

    return _pair(a, b, metric, judge)


def at_most_points_worse(a: str, b: str, metric: str, points: float) -> Rule:
    """Mean `metric` of `a` at most `points` percentage points above that of `b`."""

    def judge(va: list, vb: list) -> Outcome:
        gap = 100 * (mean(va) - mean(vb))
        ok = gap <= points
        return Outcome(
            HOLDS if ok else FAILS,
            f"{a} − {b} = {gap:+.2f} points ({'≤' if ok else '>'} {points:g})",
        )

    return _pair(a, b, metric, judge)


def ratio_within(a: str, b: str, metric: str, factor: float) -> Rule:
    """Means of `a` and `b` within a factor `factor` of each other, either way."""

    def judge(va: list, vb: list) -> Outcome:
        r = mean(va) / mean(vb) if mean(vb) else math.inf
        ok = 1 / factor <= r <= factor
        where = "within" if ok else "outside"
        return Outcome(
            HOLDS if ok else FAILS, f"{a}/{b} = {r:.2f} ({where} ×{factor:g} either way)"
        )

    return _pair(a, b, metric, judge)


def _one(algorithm: str, metric: str, judge: Callable[[float], bool], text: str, unit: str) -> Rule:
    def rule(s: Source) -> Outcome:
        v = s.get(algorithm, metric)
        if not v:
            return Outcome(None, f"no {algorithm} {metric}")
        return Outcome(
            HOLDS if judge(mean(v)) else FAILS,
            f"{algorithm} {metric} {fmt(mean(v), unit)} (rule: {text})",
        )

    return rule


def between(algorithm: str, metric: str, low: float, high: float, unit: str = "") -> Rule:
    """Mean in [low, high]."""
    text = f"{fmt(low, unit)}–{fmt(high, unit)}"
    return _one(algorithm, metric, lambda m: low <= m <= high, text, unit)


def at_most(algorithm: str, metric: str, limit: float, unit: str = "") -> Rule:
    """Mean ≤ limit."""
    return _one(algorithm, metric, lambda m: m <= limit, f"≤ {fmt(limit, unit)}", unit)


def _omegas(s: Source) -> list[tuple[float, str]]:
    return sorted((float(k[len("omega_") :]), k) for k in s.values if k.startswith("omega_"))


def omega_faster() -> Rule:
    """supp_init_scale: the smallest ω ends with a lower NSE than the largest."""

    def rule(s: Source) -> Outcome:
        omegas = _omegas(s)
        if len(omegas) < 2:
            return Outcome(None, "no ω sweep")
        lo, hi = (mean(s.get(omegas[i][1], "test_nse")) for i in (0, -1))
        return Outcome(
            HOLDS if lo < hi else FAILS,
            f"final NSE ω={omegas[0][0]:g}: {lo:.2g}, ω={omegas[-1][0]:g}: {hi:.2g}",
        )

    return rule


def omega_pseudo(max_omega: float) -> Rule:
    """supp_init_scale: for every ω ≤ max_omega, δ_FA is closer to pseudo-backprop than to
    backprop."""

    def rule(s: Source) -> Outcome:
        omegas = _omegas(s)
        if len(omegas) < 2:
            return Outcome(None, "no ω sweep")
        small = [
            (
                w,
                mean(s.get(k, "angle_deg_to_pseudo_bp_final")),
                mean(s.get(k, "angle_deg_to_bp_final")),
            )
            for w, k in omegas
            if w <= max_omega
        ]
        ok = bool(small) and all(p < b for _, p, b in small)
        note = "; ".join(f"ω={w:g}: {p:.1f}° to W⁺e vs {b:.1f}° to Wᵀe" for w, p, b in small)
        return Outcome(HOLDS if ok else FAILS, note)

    return rule


KINDS = {
    "paper_value": paper_value,
    "below": below,
    "at_most_points_worse": at_most_points_worse,
    "ratio_within": ratio_within,
    "between": between,
    "at_most": at_most,
    "omega_faster": omega_faster,
    "omega_pseudo": omega_pseudo,
}


def build(spec: dict, tolerances: dict, paper_n: int, where: str) -> Rule:
    """A rule from its entry in the claims file.

    Parameters
    ----------
    spec : dict
        `kind` and the rule's named fields.
    tolerances : dict
        The claims file's tolerance bands by name (a paper_value rule names one).
    paper_n : int
        Networks the paper's number averages.
    where : str
        The claim, for error messages.

    Returns
    -------
    callable
        Source → Outcome.
    """
    args = {k: v for k, v in spec.items() if k != "kind"}
    if spec.get("kind") not in KINDS:
        raise SpikefaError(
            f"{where}: unknown rule kind {spec.get('kind')!r}; kinds: {', '.join(KINDS)}"
        )
    if spec["kind"] == "paper_value":
        if args.get("tolerance") not in tolerances:
            raise SpikefaError(
                f"{where}: tolerance {args.get('tolerance')!r} is not in [tolerances]"
            )
        args.update(tolerance=tolerances[args["tolerance"]], paper_n=paper_n)
    try:
        return KINDS[spec["kind"]](**args)
    except TypeError as exc:
        raise SpikefaError(f"{where}: rule {spec['kind']}: {exc}") from None


def combine(outcomes: list[Outcome]) -> Outcome:
    """All rules of a claim: None if any lacks its values, FAILS if any fails, else the paper
    comparison (WORSE before BETTER, before WITHIN), else HOLDS."""
    results = [o.result for o in outcomes]
    order = (None, FAILS, WORSE, BETTER, WITHIN, HOLDS)
    result = min(results, key=order.index) if results else None
    return Outcome(result, "; ".join(dict.fromkeys(o.note for o in outcomes)))
