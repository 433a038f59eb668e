"""The claims rule: the one way Transfer Lab turns numbers measured over seeds into a sentence.

A claim compares a *subject* condition with the strongest *other* condition that answers the same question
(for "does pretraining help?": the best scratch; for "does guidance help?": the better of plain fine-tuning
and freezing all but the head), paired over the seeds both ran:

    d_s = subject_s - against_s            (for a metric where lower is better: against_s - subject_s)
    gap = mean(d),  95% interval = gap ± t(0.975, n - 1) · sd(d) / √n

and says
    helped  the gap is at least MIN_GAP and its interval lies above 0
    hurt    the gap is at most -MIN_GAP and its interval lies below 0
    tie     anything else: a small gap, or an interval that includes no difference
    single  fewer than two shared seeds: one seed says little

Accuracies are compared as fractions (MIN_GAP = 0.01, one point). Metrics whose size is a scale (an MSE, how
far weights moved) are compared as log10 ratios, so that the rule asks for a factor of at least MIN_FACTOR.
`Claim.sentence()` writes the verdict: both conditions named, both numbers, the interval, "tie" said plainly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from tl_core import i18n
from tl_core.i18n import N_, tr

MIN_GAP = 0.01        # one point of accuracy: the smallest gap the rule calls a difference
MIN_FACTOR = 1.25     # for scale metrics (compared as log10 ratios): the smallest factor it calls a difference
CONFIDENCE = 0.95     # the interval around the mean paired gap (Student's t over seeds)
KINDS = ("helped", "hurt", "tie", "single")

# metric -> (how it reads in a sentence, compared on a log scale?, higher is better?)
METRICS = {
    "accuracy": (N_("validation accuracy"), False, True),
    "train accuracy gap": (N_("accuracy"), False, True),
    "test MSE": (N_("test MSE"), True, False),
    "relative change": (N_("relative weight change"), True, True),
    "agreement": (N_("top-1 agreement"), False, True),
    "cosine": (N_("embedding cosine similarity"), False, True),
}


def t_quantile(df: int, p: float = 0.5 + CONFIDENCE / 2) -> float:
    """Student's t quantile (95% two-sided by default) for `df` degrees of freedom."""
    from scipy.special import stdtrit

    return float(stdtrit(df, p))


@dataclass(frozen=True)
class Claim:
    """What the rule says about subject vs against. gap/low/high: the mean paired gap and its interval, as
    fractions for accuracies and as log10 ratios for scale metrics; positive = the subject is better."""
    kind: str
    subject: str
    against: str
    gap: float
    low: float
    high: float
    seeds: int
    subject_mean: float
    against_mean: float
    metric: str = "accuracy"

    @classmethod
    def from_json(cls, d: dict) -> "Claim":
        """A claim as its JSON (the run history keeps it) describes it; extra keys (e.g. shots) are left out."""
        nan = float("nan")
        return cls(d["kind"], d["subject"], d["against"], *(nan if d.get(k) is None else d[k] for k in
                                                             ("gap", "low", "high")), d["seeds"],
                   *(nan if d.get(k) is None else d[k] for k in ("subject_mean", "against_mean")),
                   d.get("metric", "accuracy"))

    @property
    def log(self) -> bool:
        return METRICS[self.metric][1]

    def to_json(self) -> dict:
        return {"kind": self.kind, "subject": self.subject, "against": self.against, "gap": _num(self.gap),
                "low": _num(self.low), "high": _num(self.high), "seeds": self.seeds,
                "subject_mean": _num(self.subject_mean), "against_mean": _num(self.against_mean),
                "metric": self.metric}

    # ---- the sentence ----------------------------------------------------------------------------------

    def value(self, v: float) -> str:
        """A mean as the sentence shows it: 82.0% for an accuracy, 0.031 for an MSE (in this language's way:
        82,0 %, 0,031)."""
        if not math.isfinite(v):
            return tr("n/a")
        if self.metric == "relative change":
            return i18n.percent(v, 2)
        if not self.log:
            return i18n.percent(v, 1)
        if abs(v) >= 1e-3:
            return i18n.number(v, max(0, 2 - math.floor(math.log10(abs(v)))) if v else 3)
        return f"{v:.2e}".replace(".", i18n.number(0.5, 1)[1])   # the decimal sign of the language

    def interval(self) -> str:
        if self.seeds < 2:
            return ""
        if not self.log:
            return tr("95% interval {low} to {high} points", low=i18n.number(self.low * 100, 1, True),
                      high=i18n.number(self.high * 100, 1, True))
        return tr("95% interval of the factor ×{low} to ×{high}", low=i18n.number(10 ** self.low, 2),
                  high=i18n.number(10 ** self.high, 2))

    def sentence(self, subject: str | None = None, against: str | None = None, what: str | None = None) -> str:
        """One plain sentence: both conditions, both numbers, the gap and its interval, and what the rule says,
        in this context's language (`tl_core.i18n`). subject/against: how to name the conditions (default:
        their keys); what: the metric in words."""
        text = self.clause(subject, against, what)
        return text[:1].upper() + text[1:]

    def clause(self, subject: str | None = None, against: str | None = None, what: str | None = None,
               lead: bool = True) -> str:
        """`sentence` as the rest of a sentence (after "with 2 labels per class, "): its first letter as the
        condition's name has it. lead=False leaves out the opening "a beats b by …:" / "a ahead of b:", for a caller
        whose own words already said who won (then the numbers, the interval and the seeds follow)."""
        opening, rest = self._parts(subject, against, what)
        return f"{opening}: {rest}" if lead or self.kind not in ("helped", "hurt") else rest

    def _parts(self, subject: str | None, against: str | None, what: str | None) -> tuple[str, str]:
        """(who won, or that they tie; the numbers, interval and seeds that show it)."""
        a, b = subject or self.subject, against or self.against
        what = what or tr(METRICS[self.metric][0])
        numbers = tr("{what} {a_value} {a} vs {b_value} {b}", what=what, a_value=self.value(self.subject_mean), a=a,
                     b_value=self.value(self.against_mean), b=b)
        seeds = (tr("paired over {n} seeds", n=self.seeds) if self.seeds != 1 else
                 tr("paired over {n} seed", n=self.seeds))
        if self.kind == "single":
            return tr("one seed says little"), tr("{numbers} (raise the seeds for an interval; the rule needs at "
                                                  "least two).", numbers=numbers)
        if self.log:
            higher = METRICS[self.metric][2]
            up, down = (tr("higher"), tr("lower")) if higher else (tr("lower"), tr("higher"))
            f, lo, hi = 10 ** self.gap, 10 ** self.low, 10 ** self.high   # factors in the subject's favour
            x = lambda v: "×" + i18n.number(v, 2)   # noqa: E731
            if f >= 1:
                size, span = f"{x(f)} {up}", tr("{low} to {high}", low=x(lo), high=x(hi))
            else:
                size, span = f"{x(1 / f)} {down}", tr("{low} to {high}", low=x(1 / hi), high=x(1 / lo))
            lead = {"helped": tr("{a} ahead of {b}", a=a, b=b),
                    "hurt": tr("{a} behind {b}", a=a, b=b)}.get(self.kind) or tr("{a} and {b} tie", a=a, b=b)
            clear = self.seeds > 1 and (self.low > 0 or self.high < 0)
            why = ("" if self.kind != "tie" else
                   tr(": under the factor of {factor} the rule asks for", factor=i18n.number(MIN_FACTOR, 2))
                   if clear else tr(": its interval includes no difference"))
            span = tr("; 95% interval {span}", span=span) if self.seeds > 1 else ""
            return lead, tr("{numbers} (mean over seeds); seed by seed, {size} for {a} (geometric mean{span}; "
                            "{seeds}){why}.", numbers=numbers, size=size, a=a, span=span, seeds=seeds, why=why)
        if self.kind == "helped":
            return (tr("{a} beats {b} by {gap}", a=a, b=b, gap=i18n.points(self.gap * 100, signed=False)),
                    f"{numbers} ({self.interval()}; {seeds}).")
        if self.kind == "hurt":
            return (tr("{a} trails {b} by {gap}", a=a, b=b, gap=i18n.points(-self.gap * 100, signed=False)),
                    f"{numbers} ({self.interval()}; {seeds}).")
        why = (tr("its interval includes no difference") if self.low <= 0 <= self.high else
               tr("under the {least} the rule asks for", least=i18n.points(MIN_GAP * 100, 0, signed=False)))
        return tr("{a} and {b} tie", a=a, b=b), tr("{numbers}, a gap of {gap} ({interval}; {seeds}): {why}.",
                                                   numbers=numbers, gap=i18n.points(self.gap * 100),
                                                   interval=self.interval(), seeds=seeds, why=why)


def _num(v: float):
    return float(v) if v is not None and math.isfinite(v) else None


def _paired(subject: Mapping, against: Mapping) -> list:
    """The seeds both conditions have a finite value for, in order."""
    return [s for s in subject if s in against and _finite(subject[s]) and _finite(against[s])]


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(v)


def judge(diffs, log: bool = False) -> tuple[str, float, float, float]:
    """(kind, gap, low, high) of paired differences (positive = the subject is better), by the rule."""
    d = np.asarray(list(diffs), dtype=float)
    n = len(d)
    if n == 0:
        return "single", float("nan"), float("nan"), float("nan")
    gap = float(d.mean())
    if n < 2:
        return "single", gap, float("nan"), float("nan")
    half = t_quantile(n - 1) * float(d.std(ddof=1)) / math.sqrt(n)
    low, high = gap - half, gap + half
    least = math.log10(MIN_FACTOR) if log else MIN_GAP
    if gap >= least - 1e-12 and low > 0:
        return "helped", gap, low, high
    if gap <= -least + 1e-12 and high < 0:
        return "hurt", gap, low, high
    return "tie", gap, low, high


def compare(subject: str, values: Mapping[str, Mapping], against: list[str] | tuple[str, ...] | None = None,
            metric: str = "accuracy") -> Claim:
    """The claim for `subject` against the strongest of `against` (default: every other condition in
    `values`). values: condition -> {seed: value}. The strongest is the one with the best mean over the
    seeds it shares with the subject; ties in that mean go to the first named."""
    _, log, higher = METRICS[metric]
    mine = values[subject]
    others = [c for c in (against if against is not None else values) if c != subject and c in values]
    if not others:
        raise ValueError(f"nothing to compare {subject!r} with")

    def score(c: str) -> float:
        shared = _paired(mine, values[c])
        if not shared:
            return -math.inf
        m = float(np.mean([_scaled(values[c][s], log) for s in shared]))
        return m if higher else -m

    best = max(others, key=score)   # max keeps the first of equal scores
    shared = _paired(mine, values[best])
    sign = 1.0 if higher else -1.0
    diffs = [sign * (_scaled(mine[s], log) - _scaled(values[best][s], log)) for s in shared]
    kind, gap, low, high = judge(diffs, log)
    means = [float(np.mean([v[s] for s in shared])) if shared else float("nan") for v in (mine, values[best])]
    return Claim(kind, subject, best, gap, low, high, len(shared), means[0], means[1], metric)


def _scaled(v: float, log: bool) -> float:
    return math.log10(max(float(v), 1e-30)) if log else float(v)


def by_seed(seeds, values) -> dict:
    """{seed: value} from two parallel lists (a result's seeds and its per-seed numbers)."""
    return {int(s): float(v) for s, v in zip(seeds, values)}


def best_of(values: Mapping[str, Mapping], candidates) -> str:
    """The candidate with the highest mean value (the subject a claim is about, e.g. the best pretrained depth)."""
    have = [c for c in candidates if c in values and values[c]]
    if not have:
        raise ValueError("no candidate has values")
    return max(have, key=lambda c: float(np.mean([v for v in values[c].values() if _finite(v)] or [-math.inf])))


def tied_with(values: Mapping[str, Mapping], winner: str, metric: str = "accuracy") -> list[str]:
    """The winner and every condition the rule cannot tell from it (tie or single): the set a 'tie' names."""
    out = [winner]
    for c in values:
        if c != winner and compare(winner, values, [c], metric).kind in ("tie", "single"):
            out.append(c)
    return out
