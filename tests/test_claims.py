"""The claims rule on constructed per-seed values: a clear win, a clear loss, a tie, one seed, unpaired seeds;
the strongest baseline is the one compared with; the sentence names both conditions and calls a tie a tie."""
import math

import numpy as np
import pytest

from tl_core import claims


def seeds(values, first=0):
    return {first + i: v for i, v in enumerate(values)}


def test_clear_win_is_helped_with_an_interval_above_zero():
    c = claims.compare("pre", {"pre": seeds([0.90, 0.92, 0.91, 0.93]), "scr": seeds([0.60, 0.65, 0.62, 0.61])})
    assert c.kind == "helped"
    assert c.against == "scr" and c.seeds == 4
    assert 0 < c.low < c.gap < c.high
    assert c.gap == pytest.approx(np.mean([0.30, 0.27, 0.29, 0.32]))
    text = c.sentence("pretrained", "scratch")
    assert text.startswith("Pretrained beats scratch by 29.5 points") and "95% interval" in text and "4 seeds" in text


def test_clear_loss_is_hurt():
    c = claims.compare("pre", {"pre": seeds([0.40, 0.42, 0.45]), "scr": seeds([0.60, 0.61, 0.63])})
    assert c.kind == "hurt" and c.high < 0
    assert "trails" in c.sentence()


def test_a_two_point_gap_within_the_spread_is_a_tie():
    # the lab sweep's 82% vs 80% over 3 seeds: seeds disagree, so the interval includes 0
    c = claims.compare("pre", {"pre": seeds([0.86, 0.76, 0.84]), "scr": seeds([0.80, 0.82, 0.78])})
    assert c.kind == "tie" and c.low < 0 < c.high
    assert "tie" in c.sentence() and "includes no difference" in c.sentence()


def test_a_consistent_gap_under_one_point_is_a_tie():
    c = claims.compare("a", {"a": seeds([0.805, 0.806, 0.804]), "b": seeds([0.800, 0.800, 0.800])})
    assert c.low > 0 and c.gap < claims.MIN_GAP
    assert c.kind == "tie" and "under the 1 point" in c.sentence()


def test_one_seed_is_single():
    c = claims.compare("a", {"a": {0: 0.9}, "b": {0: 0.1}})
    assert c.kind == "single" and c.seeds == 1 and math.isnan(c.low)
    assert c.sentence().startswith("One seed says little")


def test_only_shared_seeds_are_paired():
    a = {0: 0.9, 1: 0.9, 2: 0.91, 3: 0.92}
    b = {2: 0.5, 3: 0.52, 4: 0.99, 5: 0.99}      # seeds 4 and 5 have no partner: they must not count
    c = claims.compare("a", {"a": a, "b": b})
    assert c.seeds == 2 and c.gap == pytest.approx(0.405)
    assert c.against_mean == pytest.approx(0.51)
    assert claims.compare("a", {"a": {0: 0.9}, "b": {1: 0.1}}).kind == "single"   # nothing shared


def test_the_strongest_other_condition_is_the_baseline():
    values = {"guided": seeds([0.92, 0.93, 0.92]), "plain": seeds([0.60, 0.58, 0.61]),
              "head": seeds([0.93, 0.92, 0.93])}
    c = claims.compare("guided", values, ["plain", "head"])
    assert c.against == "head" and c.kind == "tie"      # not "helped by 33 points" against plain
    assert claims.compare("guided", values, ["plain"]).kind == "helped"


def test_lower_is_better_metrics_are_compared_as_factors():
    pre = seeds([0.010, 0.012, 0.011, 0.013, 0.009])
    scr = seeds([0.090, 0.150, 0.080, 0.120, 0.100])
    c = claims.compare("pre", {"pre": pre, "scr": scr}, metric="test MSE")
    assert c.kind == "helped" and c.gap > math.log10(claims.MIN_FACTOR)
    assert claims.compare("scr", {"pre": pre, "scr": scr}, metric="test MSE").kind == "hurt"
    near = claims.compare("a", {"a": seeds([0.10, 0.11, 0.10]), "b": seeds([0.11, 0.10, 0.11])}, metric="test MSE")
    assert near.kind == "tie"


def test_the_json_carries_the_named_keys_as_fractions():
    c = claims.compare("p", {"p": seeds([0.9, 0.8]), "s": seeds([0.5, 0.6])}).to_json()
    assert {"kind", "subject", "against", "gap", "low", "high", "seeds"} <= set(c)
    assert c["gap"] == pytest.approx(0.3) and c["kind"] in claims.KINDS


def test_interval_uses_student_t():
    d = [0.02, 0.05, 0.03]
    kind, gap, low, high = claims.judge(d)
    half = claims.t_quantile(2) * np.std(d, ddof=1) / math.sqrt(3)
    assert claims.t_quantile(2) == pytest.approx(4.3027, abs=1e-3)
    assert (low, high) == pytest.approx((gap - half, gap + half))


def test_tied_with_lists_what_the_rule_cannot_tell_apart():
    values = {"a": seeds([0.90, 0.92, 0.91]), "b": seeds([0.89, 0.93, 0.90]), "c": seeds([0.50, 0.52, 0.51])}
    assert claims.tied_with(values, "a") == ["a", "b"]


# ---- the verdicts' words: what leads, what follows a lead-in, whom a gap is to --------------------------------

def _claim(kind: str, subject: str = "a", against: str = "b", metric: str = "accuracy", gap: float = 0.05):
    return claims.Claim(kind, subject, against, gap, gap - 0.02, gap + 0.02, 4, 0.8, 0.8 - gap, metric)


def test_a_claim_after_a_lead_in_keeps_its_names_lower_case_and_can_leave_out_who_won():
    c = _claim("helped", "the SSL encoder frozen", "scratch")
    assert c.clause("the SSL encoder frozen", "scratch").startswith("the SSL encoder frozen beats scratch")
    assert c.sentence("the SSL encoder frozen", "scratch").startswith("The SSL encoder frozen beats")
    assert c.clause("a", "b", lead=False).startswith("validation accuracy 80.0% a vs 75.0% b")
    assert _claim("tie").clause(lead=False).startswith("a and b tie")   # a tie keeps its "tie"


def test_the_ssl_and_text_verdicts_have_no_capital_letter_mid_sentence():
    from types import SimpleNamespace

    from tl_core.experiments import selfsup

    result = SimpleNamespace(status="finished", claim=lambda: _claim("helped", "ssl_frozen", "scratch"),
                             config=SimpleNamespace(labels=2))
    text = selfsup.verdict(result).text
    assert "with 2 labels per class, the SSL encoder frozen beats scratch" in text, text


def test_the_toy_verdict_says_who_won_once():
    from types import SimpleNamespace

    import numpy as np

    from tl_core.experiments import toy

    fit = SimpleNamespace(train_mse=np.array([1e-4]))
    result = SimpleNamespace(status="finished", scratch=fit, pretrained=fit, config=toy.ToyConfig(),
                             claim=lambda: _claim("helped", "pretrained", "scratch", "test MSE", gap=0.5))
    text = toy.verdict(result).text
    assert text.startswith("Pretraining on task A helped: test MSE") and "ahead of" not in text, text


def test_the_gtl_sweeps_words_say_whom_guided_fine_tuning_trails():
    from tl_core import narration

    hurt = [{"source": "unrelated", "question": "guidance", "kind": "hurt", "shots": s, "gap": -g,
             "against": "plain"} for s, g in ((2, 0.13), (5, 0.28), (10, 0.38))]
    text = narration.say_gtl({"config": {"sources": ["unrelated"]}, "claims": hurt}).text
    assert "trails at 2, 5 and 10 shots: 13, 28 and 38 points behind plain fine-tuning" in text, text
    assert "trails it" not in text


def test_the_peft_headline_leads_with_the_strongest_other_condition_then_answers_against_full():
    from tl_core.experiments import peft
    from tl_core.train import History

    accs = {"head": (0.96, 0.962, 0.958, 0.961), "lora_r1": (0.972, 0.97, 0.975, 0.971),
            "lora_r4": (0.983, 0.98, 0.985, 0.982), "full": (0.95, 0.951, 0.949, 0.95)}
    runs = [peft.PeftRun(c, seed, History("classification", status="finished"), acc, 10, 100, 1000, 4000, 0, 0.1,
                         {"agreement": 0.9, "cka": 0.9})
            for c, values in accs.items() for seed, acc in enumerate(values)]
    cfg = peft.PeftConfig(methods=("head", "lora", "full"), ranks=(1, 4), seeds=4)
    text = peft.PeftResult(config=cfg, runs=runs, status="finished").verdict().text
    assert text.startswith("LoRA r=4 beats LoRA r=1"), text
    assert "Against full fine-tuning (the question here): LoRA r=4 beats full fine-tuning" in text, text


def test_strict_loading_of_the_same_architecture_without_its_head_says_what_happened():
    from types import SimpleNamespace

    from tl_core import state

    report = state.LoadReport.__new__(state.LoadReport)
    report.__dict__.update(missing=["head.weight", "head.bias"], unexpected=[], mismatched=[], loaded=[],
                           outcome="refused", config=SimpleNamespace(arch="shapes_cnn"))
    text = report.message()
    assert "architecture must be the same" not in text and "head.weight, head.bias" in text, text
    assert "every tensor in it matches the model" in text
