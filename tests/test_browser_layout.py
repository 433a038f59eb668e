"""Every chart's text kept apart, measured in a real headless Chromium: the figures the issue found cut or overlapping
(the layers page's, lecture step 4's, Which strategy?'s, Inside the model's), drawn from made-up runs at the width a
chart has in a 1400 px window and, for a lecture step's chart, in large type in the projector view's column. In
each: no title, note, legend, subplot title or row label is cut by the chart's edge, none runs into another, into a
plot, or into an axis's labels or title. The app's own font (Streamlit's Source Sans) is loaded so that lines break
where the page breaks them."""
import base64
import json
from pathlib import Path

import numpy as np
import plotly
import pytest
import streamlit

from tl_core.plots import base, domains, inside, layers

pytestmark = pytest.mark.browser

STAGES = ["stem", "block 1", "block 2", "block 3", "block 4", "block 5", "block 6", "block 7", "head conv"]
CLASSES = ["brick", "gravel", "grass"]
PAGE_WIDTH = 940   # px: a chart's width on a page in a 1400 px window (the main column beside the sidebar)


def _seeds(n=3, lo=0.0, hi=1.0, k=len(STAGES)):
    rng = np.random.default_rng(0)
    return (np.linspace(lo, hi, k) + rng.normal(0, 0.01, (n, k))).tolist()


def _figures() -> dict:
    rng = np.random.default_rng(1)
    out = {"stages": STAGES, "relative_change_seeds": _seeds(2, 0.001, 0.006), "early_stages": STAGES[:4],
           "cka_seeds": _seeds(2, 1.0, 0.8), "probe_seeds": {w: _seeds(2, 0.9, 0.6) for w in
                                                            ("random", "pretrained", "finetuned")},
           "chance": 1 / 3, "better_at": STAGES[5:]}
    n = 8
    cam = inside.cam_grid(rng.random((n, 3, 32, 32)), {m: rng.random((n, 32, 32)) for m in
                                                       ("feature_extraction", "finetuned", "scratch")},
                          {m: rng.integers(0, 3, n) for m in ("feature_extraction", "finetuned", "scratch")},
                          rng.integers(0, 3, n).tolist(), CLASSES,
                          {"models": {"feature_extraction": {"label": "feature extraction (pretrained, frozen)",
                                                             "val_acc": 0.45},
                                      "finetuned": {"label": "full fine-tuning", "val_acc": 0.37},
                                      "scratch": {"label": "from scratch", "val_acc": 0.33}},
                           "correct_shown": 3, "map_size": [4, 4], "image_size": 32, "stage": "block 3"})
    embedding = {w: {"method": "pca", "stage": "head conv", "probe_acc": 0.6, "label": label,
                     "x": rng.normal(size=30).tolist(), "y": rng.normal(size=30).tolist(),
                     "labels": rng.integers(0, 3, 30).tolist()}
                 for w, label in (("pretrained", "ImageNet-pretrained"), ("random", "random init"),
                                  ("finetuned", "fine-tuned on textures"))}
    strategies = ("feature_extraction", "partial", "full", "scratch")
    quadrants = [{"size": size, "domain": domain, "kind": "tie", "tied": list(strategies), "winner": "full",
                  "means": dict(zip(strategies, (0.74, 0.72, 0.74, 0.72))), "stds": dict.fromkeys(strategies, 0.02),
                  "rule_strategies": ["partial"]} for size in ("few", "more") for domain in ("near", "far")]
    bars = {"cells": [{"dataset": ds, "domain": dom, "shots": sh, "strategy": st, "val_acc_mean": 0.7,
                       "val_acc_std": 0.05} for ds, dom in (("textures", "near"), ("microscopy", "far"))
                      for sh in (5, 20) for st in strategies],
            "config": {"strategies": list(strategies), "seeds": 3}}
    history = {"train_loss": [1.0, 0.5, 0.3], "val_loss": [1.1, 0.8, 0.7], "train_acc": [0.4, 0.7, 0.9],
               "val_acc": [0.35, 0.6, 0.7]}
    curves = {"conditions": {c: {"histories": [history, history]} for c in ("pretrained", "scratch")},
              "config": {"seeds": 2}}
    return {
        "layers_change": layers.relative_change(out),
        "layers_filters": layers.filters({name: rng.normal(size=(32, 3, 3, 3)) for name in
                                          ("ImageNet-pretrained", "random init", "fine-tuned on textures")}),
        "inside_cam": cam,
        "inside_map": inside.embedding_map(embedding, CLASSES),
        "inside_probe": inside.probe_by_depth(out),
        "inside_cka": inside.cka_by_stage(out),
        "domains_chart": domains.strategy_chart({"quadrants": quadrants}),
        "domains_bars": domains.domain_bars(bars),
        "overfitting": base.overfitting_curves(curves),
    }


FONT = next((Path(streamlit.__file__).parent / "static" / "static" / "media").glob("SourceSansVF-Upright*.woff2"))
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"

# What overlaps or is cut: every text outside the plots (the title, notes, subplot titles and row labels, the legend)
# against the chart's edges, each other, the plots and every axis's labels and title.
LAYOUT_JS = """() => {
  const gd = document.getElementById("chart");
  const box = e => e.getBoundingClientRect();
  const hit = (a, b) => a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  const edge = box(gd.querySelector(".svg-container"));
  const plots = [...gd.querySelectorAll(".nsewdrag")].map(box);
  const inside = r => plots.some(p => (r.left + r.right) / 2 > p.left && (r.left + r.right) / 2 < p.right &&
                                      (r.top + r.bottom) / 2 > p.top && (r.top + r.bottom) / 2 < p.bottom);
  const axes = [...gd.querySelectorAll(".xtick text, .ytick text, .g-xtitle text, .g-ytitle text")].map(box)
    .filter(r => r.width > 0);
  const named = (e, name) => [name || e.textContent.trim().slice(0, 40), box(e.querySelector(".bg") || e)];
  const texts = [...[...gd.querySelectorAll(".gtitle, .annotation")].map(e => named(e)),
                 ...[...gd.querySelectorAll(".legend")].map(e => named(e, "legend"))]
    .filter(([, r]) => r.height > 0 && !inside(r));
  const bad = [];
  for (const [i, [text, r]] of texts.entries()) {
    if (r.left < edge.left - 1 || r.right > edge.right + 1 || r.top < edge.top - 1 || r.bottom > edge.bottom + 1)
      bad.push("cut: " + text);
    if (plots.some(p => hit(r, p))) bad.push("over a plot: " + text);
    if (axes.some(a => hit(r, a))) bad.push("over an axis: " + text);
    for (const [other, q] of texts.slice(i + 1)) if (hit(r, q)) bad.push(text + " / " + other);
  }
  return bad;
}"""


def _draw(page, fig, width: int, tmp_path) -> list:
    spec = json.loads(fig.to_json())
    spec["layout"]["font"] = {**spec["layout"].get("font", {}), "family": "Source Sans, sans-serif"}
    font = base64.b64encode(FONT.read_bytes()).decode()
    html = tmp_path / "chart.html"
    html.write_text(f"""<html><head><style>@font-face {{font-family: "Source Sans"; font-weight: 100 900;
        src: url(data:font/woff2;base64,{font}) format("woff2")}} body {{margin: 0}}</style>
        <script>{PLOTLY_JS.read_text()}</script></head><body><div id="chart" style="width:{width}px"></div>
        <script>document.fonts.load("20px 'Source Sans'").then(() => Plotly.newPlot("chart", {json.dumps(spec["data"])},
        {json.dumps(spec["layout"])}, {{responsive: false}})).then(() => window.drawn = true)</script></body></html>""")
    page.goto(html.as_uri())
    page.wait_for_function("window.drawn === true", timeout=30_000)
    return page.evaluate(LAYOUT_JS)


FIGURES = _figures()
LECTURE = {"layers_change", "domains_bars", "overfitting"}   # lecture steps' charts


@pytest.mark.parametrize("name", FIGURES)
def test_no_chart_text_is_cut_or_overlaps_on_a_page_or_on_the_projector(page, name, tmp_path):
    fig = FIGURES[name]
    assert _draw(page, fig, PAGE_WIDTH, tmp_path) == [], name
    if name in LECTURE:   # the projector view draws a lecture step's chart in large type beside the step's words
        big = base.projector(fig, fit=True)
        assert _draw(page, big, base.PROJECTOR_WIDTH, tmp_path) == [], f"{name} (projector)"
