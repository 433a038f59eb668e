"""Inside the model: CKA against its defining invariances, the probe against chance, Grad-CAM's map size and
contrast, the claims on made-up numbers, the figures, the text page's map, and the CLI (keys, bad input)."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from tl_core import backbones, cli, data, gradcam, probes
from tl_core.cka import linear_cka
from tl_core.experiments import inside
from tl_core.plots import inside as figures


def test_cka_of_a_representation_with_itself_and_with_a_rotation_of_itself_is_one():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 12, generator=g)
    q, _ = torch.linalg.qr(torch.randn(12, 12, generator=g))          # an orthogonal transform
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-9)
    assert linear_cka(x, x @ q) == pytest.approx(1.0, abs=1e-9)
    assert linear_cka(x, 3.0 * x @ q + 5.0) == pytest.approx(1.0, abs=1e-9)   # scale and shift too
    wide = torch.randn(60, 200, generator=g)                                 # the n×n Gram path (n < widths)
    assert linear_cka(wide, wide @ torch.linalg.qr(torch.randn(200, 200, generator=g))[0]) == pytest.approx(1.0)
    assert linear_cka(x, torch.randn(60, 12, generator=g)) < 0.5             # unrelated features: far below 1


@pytest.fixture(scope="module")
def textures_features():
    ds = data.load("textures", 32)
    model = backbones.create("shapes_cnn", "pretrained", 3, 0)
    feats = probes.stage_features(model, ds.images, [3])[3].numpy()
    return feats, ds.labels.numpy()


@pytest.mark.slow
def test_a_probe_on_shuffled_labels_is_near_chance_and_on_real_labels_far_above(textures_features):
    x, y = textures_features
    rng = np.random.default_rng(0)
    fit = np.zeros(len(y), bool)
    fit[rng.permutation(len(y))[:len(y) // 2]] = True
    real = probes.probe(x[fit], y[fit], x[~fit], y[~fit])
    shuffled = [probes.probe(x[fit], rng.permutation(y[fit]), x[~fit], rng.permutation(y[~fit])) for _ in range(3)]
    assert abs(np.mean(shuffled) - 1 / 3) < 0.12, shuffled
    assert real > np.mean(shuffled) + 0.3


def test_gradcam_maps_have_the_image_size_are_not_constant_and_leave_the_model_alone():
    ds = data.load("textures", 32)
    model = backbones.create("shapes_cnn", "pretrained", 3, 0)
    model.stages[0].requires_grad_(False)                      # a partly frozen model, as feature extraction is
    before = {k: v.clone() for k, v in model.state_dict().items()}
    k = gradcam.cam_stage(model, 32)
    assert model.names[k] == "conv3" and gradcam.spatial_sizes(model, 32)[k] == (4, 4)   # deepest map ≥ 4×4
    images = ds.images[::40][:5]
    maps, used = gradcam.gradcam(model, images, k)
    assert maps.shape == (5, 32, 32) and maps.min() >= 0 and maps.max() <= 1
    assert all(m.std() > 0.05 for m in maps)                   # not constant: it points somewhere
    assert used.tolist() == model(images).argmax(1).tolist()   # the predicted class by default
    assert all(torch.equal(before[n], v) for n, v in model.state_dict().items())
    assert not any(p.requires_grad for p in model.stages[0].parameters())
    fig = figures.cam_cell(images.numpy(), maps, "brick", "grass", "conv3", (4, 4))
    assert fig.data[0].z.shape == (200, 200, 3)                # drawn large, never as a 4×4 tile


def _made_up(seeds=3, pre=0.9, rnd=0.6, early_cka=0.999, late_cka=0.8) -> inside.InsideResult:
    from tl_core.train import History

    cfg = inside.InsideConfig(backbone="shapes_cnn", seeds=seeds)
    runs = [inside.InsideRun(s, {"pretrained": [0.8, pre + 0.01 * s], "random": [0.8, rnd], "finetuned": [0.8, 0.95]},
                             [early_cka, late_cka - 0.01 * s], [0.01, 0.05], 0.9, History("classification",
                                                                                        status="finished"))
            for s in range(seeds)]
    return inside.InsideResult(config=cfg, stage_names=["conv1", "conv4", "fc"], probed=[0, 1],
                               classes=["a", "b", "c"], runs=runs)


def test_claims_go_through_the_rule_pretrained_vs_random_and_late_vs_early_change():
    out = _made_up().to_json()
    assert out["claim"]["kind"] == "helped" and out["claim"]["subject"] == "pretrained"
    named = {c["name"]: c for c in out["claims"]}
    late = named["late vs early, 1 - CKA"]
    assert late["kind"] == "helped" and late["metric"] == "accuracy"
    assert out["better_at"] == ["conv4"] and out["changed_at"] == ["conv4"] and out["better_from"] == "conv4"
    assert {c["name"]: c["kind"] for c in out["claims"]}["pretrained vs random, early stages"] == "tie"
    assert "Pretrained beats random by" in out["verdict"] and "rule at conv4." in out["verdict"]
    assert out["verdict_kind"] == "helped"
    tie = _made_up(pre=0.6, early_cka=0.8, late_cka=0.8).to_json()
    assert tie["claim"]["kind"] == "tie" and tie["better_from"] is None
    assert _made_up(seeds=1).to_json()["claim"]["kind"] == "single"


def test_figures_draw_from_the_json_with_titles_and_units():
    out = _made_up().to_json()
    out["embedding"] = {w: {"method": "pca", "stage": "conv4", "probe_acc": 0.9, "label": w, "x": [0, 1, 2],
                            "y": [1, 0, 2], "labels": [0, 1, 2]} for w in inside.WEIGHTS}
    probe = figures.probe_by_depth(out)
    assert "Linear probe by depth" in probe.layout.title.text and probe.layout.yaxis.tickformat == ".0%"
    assert len(probe.data) == 6                                        # 3 weights × (band + line)
    cka = figures.cka_by_stage(out)
    assert "CKA" in cka.layout.yaxis.title.text and cka.layout.yaxis2.tickformat == ".1%"
    emb = figures.embedding_map(out["embedding"], out["classes"])
    assert len(emb.data) == 9 and "linear probe 90%" in emb.layout.annotations[0].text.replace("<br>", " ")
    images = np.random.default_rng(0).random((4, 3, 32, 32))
    maps = {m: np.random.default_rng(1).random((4, 32, 32)) for m in inside.CAM_MODELS}
    preds = {m: [0, 1, 2, 0] for m in inside.CAM_MODELS}
    grid = figures.cam_grid(images, maps, preds, [0, 1, 1, 1], ["a", "b", "c"],
                            {"stage": "conv3", "map_size": [4, 4], "image_size": 32, "correct_shown": 2})
    assert len(grid.data) == 12 and grid.data[0].z.shape == (figures.SIDE, figures.SIDE, 3)
    assert "✗ c" in [a.text for a in grid.layout.annotations]


def test_the_lab_cells_list_misclassified_ones_first():
    from app_pages import cam_view

    got = cam_view.cells(np.array([0, 0, 0, 1, 1, 1, 1]), np.array([0, 1, 1, 1, 1, 0, 1]))
    assert got == [(0, 1, 2), (1, 0, 1), (1, 1, 3), (0, 0, 1)]


@pytest.mark.slow
def test_text_map_before_and_after_fine_tuning():
    """The text page's map from a text run (here its 'fine-tuned' last layer is the pretrained one, nudged: this
    test is about drawing both, test_text about training)."""
    from tl_core.experiments import text as text_exp

    cfg = text_exp.TextConfig(classes=("ai", "money", "sports"), conditions=("feature", "last_k"), layers=1, shots=3,
                              seeds=1, val_per_class=5)
    depth, head = cfg.frozen("last_k"), len(backbones.pretrained_text_model().stages) - 1
    g = torch.Generator().manual_seed(0)
    tuned = {k: v + 0.05 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
             for k, v in backbones.pretrained_text_model().state_dict().items() if depth <= int(k.split(".")[1]) < head}
    result = text_exp.TextResult(config=cfg, classes=list(cfg.classes), stage_names=[], runs=[],
                                 tuned=("last_k", tuned))
    emb = inside.text_embedding(result)
    assert list(emb) == ["pretrained", "finetuned"]
    for e in emb.values():
        assert {"method", "stage", "probe_acc"} <= set(e) and len(e["x"]) == len(e["labels"]) == 15
        assert 0 <= e["probe_acc"] <= 1
    assert emb["pretrained"]["x"] != emb["finetuned"]["x"]
    assert inside.text_embedding(result) is emb                          # a page rerun draws it at once
    fig = figures.embedding_map(emb, result.classes, "sentence embeddings")
    assert "sentence embeddings" in fig.layout.title.text and "linear probe" in fig.layout.annotations[0].text


@pytest.fixture(scope="module")
def cli_json():
    proc = subprocess.run([sys.executable, "-m", "tl_core", "inside", "--backbone", "shapes_cnn", "--dataset",
                           "textures", "--shots", "3", "--probe-shots", "6", "--val-per-class", "6", "--seeds", "2",
                           "--image-size", "32", "--epochs", "1", "--probe-stages", "conv1,conv3,conv4", "--cam", "4",
                           "--embedding", "umap", "--no-record", "--json"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.slow   # the shared CLI run: 2 seeds, probes at 3 depths, a UMAP map
def test_cli_prints_the_keys_the_page_draws(cli_json):
    out = cli_json
    assert {"stages", "probe", "cka", "embedding", "cam", "claim", "verdict", "seconds", "config"} <= set(out)
    assert out["stages"] == ["conv1", "conv3", "conv4"]
    assert set(out["probe"]) == {"pretrained", "random", "finetuned"}
    assert all(len(v) == 3 and all(0 <= a <= 1 for a in v) for v in out["probe"].values())
    assert len(out["cka"]) == 3 and all(0 <= c <= 1 for c in out["cka"])
    assert len(out["probe_seeds"]["random"]) == 2 and len(out["relative_change"]) == 3
    assert set(out["embedding"]) == {"pretrained", "random", "finetuned"}
    for e in out["embedding"].values():
        assert e["method"] == "umap" and e["stage"] == "conv4" and 0 <= e["probe_acc"] <= 1 and len(e["x"]) == 18
    assert out["embedding"]["random"]["probe_acc"] == out["probe_seeds"]["random"][0][-1]   # the same features
    assert out["cam"]["images"] == 4 and out["cam"]["stage"] == "conv3" and out["cam"]["image_size"] == 32
    assert out["claim"]["subject"] == "pretrained" and out["claim"]["seeds"] == 2
    assert out["config"]["probe_stages"] == ["conv1", "conv3", "conv4"] and out["seconds"] > 0


@pytest.mark.parametrize("argv,words", [
    (["--probe-shots", "1"], "probe shots must be between 2 and 1000, got 1"),
    (["--backbone", "shapes_cnn", "--stage", "block 5"], "stage 'block 5' is not probed"),
    (["--backbone", "shapes_cnn", "--probe-stages", "fc"], "probe stage 'fc' is not a stage of shapes_cnn before"),
    (["--shots", "40", "--probe-shots", "40"], "shots 40 + probe shots 40 is more than textures has"),
])
def test_bad_input_exits_2_with_one_line(argv, words, capsys):
    assert cli.main(["inside", *argv, "--no-record"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and "Traceback" not in err
