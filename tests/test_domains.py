"""Which strategy for which data: the 2×2 chart's arithmetic on known records, a small real grid through the
CLI (the claims the page makes: pretraining helps less far from ImageNet), and the page drawing the last grid
from the run history without training."""
import json
import subprocess
import sys

import pytest
from fixtures import SMALL_DOMAINS, argv, open_page

from tl_core import claims, contract
from tl_core.experiments import domains

# a small real grid: one near and one far dataset, few and more shots, the cheapest pretrained strategy and scratch
SMALL = argv(None, SMALL_DOMAINS)


def _records(table: dict) -> list[dict]:
    """{(dataset, shots, strategy): [acc per seed]} → the records a run would have made."""
    return [{"dataset": ds, "domain": domains.DOMAINS[ds], "shots": sh, "strategy": st, "seed": i, "val_acc": a,
             "train_acc": 1.0} for (ds, sh, st), accs in table.items() for i, a in enumerate(accs)]


def _result(table: dict, **cfg) -> domains.DomainsResult:
    cfg = domains.DomainsConfig(seeds=2, **cfg).resolve()
    return domains.DomainsResult(config=cfg, records=_records(table))


def test_gain_winner_margin_and_negative_transfer_come_from_the_seeds_means():
    t = {}
    for sh, near, far in ((5, (0.9, 0.8, 0.7, 0.4), (0.5, 0.6, 0.4, 0.45)), (40, (0.9, 0.95, 0.97, 0.8),
                                                                             (0.7, 0.8, 0.85, 0.9))):
        for st, a, b in zip(domains.STRATEGIES, near, far):
            t[("textures", sh, st)] = [a - 0.01, a + 0.01]
            t[("microscopy", sh, st)] = [b - 0.01, b + 0.01]
    r = _result(t, datasets=("textures", "microscopy"), shots=(5, 40))
    gain = r.gain()
    assert gain["near"]["5"] == pytest.approx(0.9 - 0.4) and gain["far"]["5"] == pytest.approx(0.6 - 0.45)
    assert gain["far"]["40"] == pytest.approx(0.85 - 0.9)      # scratch ahead: negative
    (neg,) = r.negative_transfer()     # scratch ahead by 5 points in both seeds: the rule says hurt
    assert (neg["dataset"], neg["shots"], neg["pretrained"]) == ("microscopy", 40, "full")
    assert neg["gain"] == pytest.approx(-0.05) and neg["scratch_acc"] == pytest.approx(0.9)
    assert neg["claim"]["kind"] == "hurt"
    quads = {(q["size"], q["domain"]): q for q in r.quadrants()}
    assert quads[("few", "near")]["winner"] == "feature_extraction" and quads[("few", "near")]["agrees"]
    assert quads[("few", "near")]["margin"] == pytest.approx(0.1) and quads[("few", "near")]["kind"] == "helped"
    assert quads[("more", "far")]["winner"] == "scratch" and quads[("more", "far")]["agrees"]
    assert quads[("more", "near")]["winner"] == "full" and quads[("few", "far")]["winner"] == "partial"
    cells = {(c["dataset"], c["shots"], c["strategy"]): c for c in r.to_json()["cells"]}
    assert cells[("textures", 5, "partial")]["val_acc_std"] == pytest.approx(0.01)
    assert ("scratch ahead of every pretrained strategy" in r.verdict().text
            and "microscopy at 40 shots" in r.verdict().text)


def test_a_quadrant_whose_top_two_the_seeds_cannot_tell_apart_is_a_tie_and_no_agreement():
    t = {}
    for sh in (5, 20):   # partial and feature extraction swap places between the seeds: a tie, not a win
        t[("textures", sh, "feature_extraction")] = [0.90, 0.80, 0.85]
        t[("textures", sh, "partial")] = [0.82, 0.92, 0.87]
        t[("textures", sh, "full")] = [0.60, 0.62, 0.61]
        t[("textures", sh, "scratch")] = [0.30, 0.31, 0.30]
    r = _result(t, datasets=("textures",), shots=(5, 20))
    few = next(q for q in r.quadrants() if q["size"] == "few")
    assert few["kind"] == "tie" and set(few["tied"]) == {"partial", "feature_extraction"}
    # the tie includes the rule's feature extraction: no agreement by tie, and no disagreement either
    assert few["winner"] == "partial" and few["agrees"] is None and domains.reading(few) == "can't tell"
    text = r.verdict().text
    assert "a tie between partial (87%) and feature extraction (85%)" in text
    assert "agrees with the decks' rule in 0 of 0" not in text and "can't tell" in text


def test_a_quadrant_where_every_strategy_ties_does_not_agree_with_the_rule():
    t = {}
    for sh in (2, 10):   # every strategy within the seeds' spread of the others
        t[("textures", sh, "feature_extraction")] = [0.50, 0.40, 0.45]
        t[("textures", sh, "partial")] = [0.42, 0.49, 0.44]
        t[("textures", sh, "full")] = [0.41, 0.47, 0.43]
        t[("textures", sh, "scratch")] = [0.38, 0.45, 0.47]
    r = _result(t, datasets=("textures",), shots=(2, 10))
    for q in r.quadrants():
        assert q["kind"] == "tie" and len(q["tied"]) == 4 and q["agrees"] is None
        assert domains.quadrant_words(q).endswith("the data can't tell these apart at this size")
    v = r.verdict()
    assert v.kind == "tie" and "No quadrant gives a clear result" in v.text and "agrees with the decks' rule in" \
        not in v.text


def test_a_tie_that_leaves_the_rules_strategy_clearly_behind_disagrees():
    t = {}
    for sh in (2, 10):   # partial and full tie at the top; the rule's feature extraction is clearly behind both
        t[("textures", sh, "feature_extraction")] = [0.50, 0.52, 0.51]
        t[("textures", sh, "partial")] = [0.80, 0.90, 0.85]
        t[("textures", sh, "full")] = [0.88, 0.82, 0.86]
        t[("textures", sh, "scratch")] = [0.30, 0.31, 0.30]
    few = next(q for q in _result(t, datasets=("textures",), shots=(2, 10)).quadrants() if q["size"] == "few")
    assert few["kind"] == "tie" and set(few["tied"]) == {"partial", "full"} and few["agrees"] is False


def test_a_quadrant_that_breaks_the_rule_is_named_as_disagreeing():
    t = {}
    for st, a in zip(domains.STRATEGIES, (0.5, 0.6, 0.9, 0.3)):   # full wins clearly where the rule says head only
        t[("faces", 5, st)] = [a, a]
        t[("faces", 20, st)] = [a, a]
    r = _result(t, datasets=("faces",), shots=(5, 20))
    few = next(q for q in r.quadrants() if q["size"] == "few")
    assert few["winner"] == "full" and few["agrees"] is False and few["gap_to_rule"] == pytest.approx(0.4)
    assert "agrees with the decks' rule in 1 of 2 quadrants with a clear result" in r.verdict().text
    assert ("few data, near: full wins" in r.verdict().text
            and "(the decks' rule: feature extraction" in r.verdict().text)
    from tl_core import i18n

    with i18n.using("es"):   # the same run, said in Spanish: the quadrant, the strategy, the rule and the numbers
        es = r.verdict().text
    assert "coincide con la regla de las diapositivas en 1 de 2 cuadrantes" in es
    assert "pocos datos, cerca: completo gana" in es
    assert "extracción de características: congelar la red preentrenada" in es and "90\u00a0%" in es
    assert "agrees" not in es and "few data" not in es


@pytest.fixture(scope="module")
def grid():
    proc = subprocess.run([sys.executable, "-m", "tl_core", "domains", *SMALL, "--json"], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.slow   # the shared grid: 16 cells of real training
def test_cli_prints_every_cell_and_the_gain_per_domain_and_shots(grid):
    assert {(c["dataset"], c["shots"], c["strategy"]) for c in grid["cells"]} == {
        (ds, sh, st) for ds in ("textures", "microscopy") for sh in (5, 15) for st in ("feature_extraction", "scratch")}
    for c in grid["cells"]:
        assert c["domain"] == domains.DOMAINS[c["dataset"]] and 0 <= c["val_acc_mean"] <= 1 and c["val_acc_std"] >= 0
        assert len(c["val_acc_seeds"]) == 2
    assert set(grid["gain"]) == {"near", "far"} and set(grid["gain"]["near"]) == {"5", "15"}
    assert grid["seconds"] > 0 and len(grid["quadrants"]) == 4


@pytest.mark.slow   # the shared grid: 16 cells of real training
def test_pretraining_helps_less_far_from_imagenet_and_the_page_says_where(grid):
    """The page's claim, on real images: with 15 images per class pretrained features' lead over scratch is smaller
    on microscopy (far) than on textures (near): scratch learns the far crops' colours. The sentence the page shows
    names exactly the shots values where it holds."""
    gain = grid["gain"]
    assert gain["far"]["15"] < gain["near"]["15"], gain
    less = [sh for sh in ("5", "15") if gain["far"][sh] < gain["near"][sh]]
    sentence = grid["far_vs_near"]
    helped = [str(c["shots"]) for c in grid["far_vs_near_claims"] if c["kind"] == "helped"]
    assert set(helped) <= set(less)       # a smaller gain far away is claimed only where the means say so too
    assert sentence.startswith("Yes: at every data size" if len(helped) == 2 else "No: at no data size" if not helped
                               else f"Only at {', '.join(helped)} shots is")
    for c in grid["gain_claims"]:         # each dataset's pretraining claim follows the rule on its own seeds
        seeds = {}
        for r in grid["records"]:
            if r["dataset"] == c["dataset"] and r["shots"] == c["shots"]:
                seeds.setdefault(r["strategy"], {})[r["seed"]] = r["val_acc"]
        assert c["kind"] == claims.compare(c["subject"], seeds, ["scratch"]).kind


@pytest.mark.slow   # a python -m tl_core process (5 s of imports)
def test_bad_settings_exit_2_with_one_line():
    proc = subprocess.run([sys.executable, "-m", "tl_core", "domains", "--datasets", "textures,moon", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "unknown dataset 'moon'" in proc.stderr and "Traceback" not in proc.stderr
    with pytest.raises(ValueError, match="shots 60 is more than textures has per class after 20 validation images: "
                                         "at most 44"):
        contract.validate(domains.DomainsConfig(shots=(5, 60)))


@pytest.mark.slow   # the shared grid: 16 cells of real training
def test_page_draws_the_last_grid_from_the_history_at_once(grid):
    """The CLI run above is in the history: the page opened with its settings shows that grid without training."""
    cfg = contract.from_record(domains.DomainsConfig, grid["config"])
    at = open_page("app_pages/domains.py", {"dom_datasets": list(cfg.datasets), "dom_shots": list(map(str, cfg.shots)),
                                             "dom_seeds": str(cfg.seeds), "dom_epochs": str(cfg.epochs),
                                             "dom_image_size": str(cfg.image_size),
                                             "dom_strategies": list(cfg.strategies)})
    assert not at.exception
    # the CLI's run kept its whole result beside the history (it was asked for as a page's run is): shown at once,
    # else drawn from the history's JSON
    assert any("Shown from the run history" in c.value or "shown at once" in c.value for c in at.caption)
    assert any("the decks' rule" in m.value for m in [*at.success, *at.info])   # agreement counted, or none clear
    assert at.table[0].value.shape[0] == 4   # the four quadrants, each with its rule and winner (wrapped, not cut)


def test_a_cell_travels_to_another_process_as_it_is():
    """The Ray engine ships `train_one` with cloudpickle: it must hold no open file, lock or page object."""
    cloudpickle = pytest.importorskip("cloudpickle")
    import torch

    cfg = domains.DomainsConfig(datasets=("faces",), shots=(2, 4)).resolve()
    copy = cloudpickle.loads(cloudpickle.dumps(domains.CellTrainer(cfg, torch.device("cpu"))))
    assert copy.cfg == cfg and copy.dev == torch.device("cpu")
