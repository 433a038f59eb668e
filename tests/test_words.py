"""A user's words on screen: condition and layer names through one formatter (tl_core.names), the glossary and its
page, help drawn from it, every page listed in the navigation, and no file path where a page speaks."""
import numpy as np
import pytest
from fixtures import open_page
from streamlit.testing.v1 import AppTest

from tl_core import glossary, names, pages
from tl_core.experiments import text as text_exp


def test_conditions_layers_and_measures_read_as_words():
    assert names.conditions(["feature", "last_k", "scratch"]) == \
        "feature extraction (frozen encoder), fine-tune the last layers, from scratch"
    assert names.condition("last_k", k=2) == "fine-tune the last 2 layers"
    assert (names.condition("lora_r4"), names.condition("bitfit"), names.measure("cka")) == \
        ("LoRA r=4", "BitFit", "CKA")
    assert names.layer("body.fc1.weight") == "fc1 weights" and names.layer("body.fc1.bias") == "fc1 biases"
    assert names.layer("blocks.6.0.conv_pwl.weight") == "block 6.0 1×1 projection conv weights"
    assert names.condition("some_new_thing") == "some new thing"   # unknown: at least no underscore


def test_the_gtl_charts_name_each_layer_in_words_and_labels_never_run_together():
    from tl_core.plots import gtl as figures

    guide = {"body.fc1.weight": np.random.rand(4, 3), "body.fc1.bias": np.random.rand(4)}
    ticks = list(figures.layer_means(guide).data[0].x)
    assert ticks[:2] == ["fc1<br>weights", "fc1<br>biases"] and not any("body." in t for t in ticks)
    titles = [a.text for a in figures.heatmaps(guide).layout.annotations]
    assert titles == ["fc1 weights (4×3)"]
    assert [t.name for t in figures.histogram(guide).data] == ["fc1 weights", "fc1 biases"]


def test_the_peft_words_name_no_module_or_measure_key():
    from tl_core.experiments import peft

    targets = peft.targets_text(peft.PeftConfig())
    assert "conv_pwl" not in targets and "projection" in targets
    row = {"label": "LoRA r=4", "val_acc_mean": 0.9, "val_acc_std": 0.01, "trainable_params": 10,
           "trainable_fraction": 0.01, "adapter_bytes": 2048, "full_bytes": 4096, "optimizer_bytes": 10,
           "forgetting": {"agreement": 0.9, "cka": 0.95}, "seconds_per_epoch": 0.1}
    assert peft.table({"methods": [row]})[0]["forgetting"] == "top-1 agreement 0.90, CKA 0.95"


def test_the_text_page_says_its_conditions_in_words(app):
    at = open_page("app_pages/text.py", {})
    assert not at.exception and at.slider(key="text_layers").label == "k: the last layers fine-tuned"
    assert not any("last_k" in e.value for e in [*at.info, *at.caption, *at.markdown])


def shown_words(at) -> str:
    """Every text a page shows, in the main area and the sidebar: each element's body and label, and the help of
    its "?" tooltip (a caption's or a widget's), which a reader sees as much as the rest."""
    said, nodes = [], [at.main, at.sidebar]
    while nodes:
        node = nodes.pop()
        nodes += getattr(node, "children", {}).values()
        proto = getattr(node, "proto", None)
        fields = {f.name for f in proto.DESCRIPTOR.fields} if proto is not None else set()
        said += [getattr(proto, f) for f in ("body", "label", "help", "placeholder") if f in fields]
    return " ".join(s for s in said if isinstance(s, str))


def test_the_runs_page_names_no_file_path(app, tmp_path, monkeypatch):
    from tl_core import store

    monkeypatch.setenv("TL_DATA_DIR", str(tmp_path))
    store.Store(tmp_path).record("toy", {"config": {"b_points": 2}, "status": "finished"})
    at = open_page("app_pages/runs.py", {})
    shown = shown_words(at)
    assert not at.exception and "TL_DATA_DIR" in shown   # the tooltips are read: where the history is, in words
    assert str(tmp_path) not in shown and "runs.db" not in shown


def test_the_glossary_has_the_terms_the_pages_use_and_its_page_finds_them(app):
    for term in ("LoRA", "BitFit", "CKA", "paired", "claims rule", "10th–90th percentile"):
        assert glossary.entry(term)
    assert "**LoRA**" in glossary.help_for("LoRA") and "Glossary" in glossary.help_for("LoRA")
    with pytest.raises(KeyError):
        glossary.help_for("a word nobody wrote down")
    assert pages.page("glossary").title == "Glossary"
    at = open_page("app_pages/glossary.py", {})
    assert not at.exception and len(at.markdown) > len(glossary.TERMS)
    at.text_input(key="glo_find").input("low-rank").run()
    assert [m.value for m in at.markdown if m.value.startswith("**")] == [f"**LoRA** — {glossary.entry('LoRA')}"]


def test_home_and_the_peft_and_layers_pages_explain_their_terms_from_the_glossary(app):
    home = app.switch_page("app_pages/home.py").run()
    assert any(glossary.entry("claims rule") in (c.help or "") for c in home.caption)
    peft = open_page("app_pages/peft.py", {})
    assert not peft.exception and any(glossary.entry("LoRA") in (c.help or "") for c in peft.caption)
    # the layers page explains its band under the result: a one-epoch run of the small CNN at 32 px (a second)
    layers = open_page("app_pages/layers.py", {"lay_backbone": "shapes_cnn", "lay_image_size": "32", "lay_shots": "5",
                                               "lay_epochs": "1", "lay_seeds": "1"})
    layers.button(key="lay_run").click().run()
    assert not layers.exception and any(glossary.entry("stage") in (c.help or "") and
                                        glossary.entry("10th–90th percentile") in c.help for c in layers.caption)


def test_the_inside_page_explains_grad_cam_the_linear_probe_and_cka_from_the_glossary(app):
    inside = open_page("app_pages/inside.py", {})   # its introduction names them first, before any run
    said = [m.help or "" for m in inside.markdown]
    assert not inside.exception and any(all(glossary.entry(t) in h for t in ("Grad-CAM", "linear probe", "CKA"))
                                        for h in said)


def test_the_navigation_shows_every_page_and_home_links_the_glossary_and_runs():
    source = (pages.Path(pages.__file__).parent.parent / "app.py").read_text()
    assert "expanded=True" in source   # Runs is never under "View N more"
    home = AppTest.from_file(str(pages.Path(pages.__file__).parent.parent / "app.py"), default_timeout=60).run()
    links = [p.proto.label for p in home.get("page_link")]
    assert any(label.startswith("Glossary") for label in links) and any(label.startswith("Runs") for label in links)
    about = [c for c in home.sidebar.caption if c.value == "About Transfer Lab"]
    assert about and "**Glossary**" in about[0].help and "**Runs**" in about[0].help


def test_the_text_pages_conditions_are_boxes_in_words_and_the_link_keeps_their_keys(app):
    at = open_page("app_pages/text.py", {"text_conditions": ["feature", "scratch"]})
    boxes = {c.label: c for c in at.checkbox if c.key.startswith("text_conditions__")}
    assert list(boxes) == [names.condition(k) for k in text_exp.CONDITIONS]
    assert {k for k in text_exp.CONDITIONS if boxes[names.condition(k)].value} == {"feature", "scratch"}  # the link
    assert not [w.value for w in at.warning if "link" in w.value]
    boxes[names.condition("last_k")].check().run()
    assert "text_conditions" not in at.query_params                       # the default again: left out
    at.checkbox(key="text_conditions__scratch").uncheck().run()
    assert at.query_params["text_conditions"] == ["feature", "last_k"]  # the keys, never the words
    assert not any(k in " ".join(c.label for c in at.checkbox) for k in ("last_k", "feature,"))


def test_a_link_with_a_condition_the_page_does_not_have_falls_back_with_a_notice(app):
    at = open_page("app_pages/domains.py", {"dom_strategies": ["full", "bogus"]})
    notice = " ".join(w.value for w in at.warning)
    assert "dom_strategies=full,bogus" in notice and "not a valid value" in notice
    ticked = [c.key.split("__")[1] for c in at.checkbox if c.key.startswith("dom_strategies__") and c.value]
    assert ticked == ["feature_extraction", "partial", "full", "scratch"]  # the default
