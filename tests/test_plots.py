"""The figures' layout helper (`plots.base.style` / `arrange`), checked on the figure: long titles wrapped to the
chart's width with the top margin grown to hold them, the legend above the plots (never beside an axis's title),
subplot titles wrapped to their column, Grad-CAM's column headers inside its column titles, first-layer filters
drawn large. test_browser_layout.py measures the same figures drawn in a browser."""
import re

import numpy as np

from tl_core.plots import base, domains, inside, layers

STAGES = ["stem", "block 1", "block 2", "block 3", "block 4", "block 5", "block 6", "block 7", "head conv"]
EM = 0.45   # Source Sans' average character width in font sizes, bold (the app's font)


def _lines(text: str) -> list[str]:
    return [re.sub(r"<[^>]*>", "", line) for line in re.split(r"<br\s*/?>", text or "")]


def _plot_width(fig, width=900) -> float:   # base.WIDTH: a chart at 1400 px
    return width - fig.layout.margin.l - fig.layout.margin.r


def _change(seeds=2):
    rng = np.random.default_rng(0)
    return {"stages": STAGES, "relative_change_seeds": (np.linspace(0.001, 0.006, 9) + rng.normal(0, 1e-4, (seeds, 9)))
            .tolist(), "cka_seeds": np.linspace(1, 0.8, 9)[None].repeat(seeds, 0).tolist()}


def test_a_long_title_is_broken_into_lines_that_fit_and_the_top_margin_holds_them():
    """The layers page's and lecture step 4's title was cut at "…band: 10th-90th percent": every line now fits the
    chart's width at 1400 px, the part saying how it is measured is a note of its own, and the plot keeps its
    height while the figure grows by what the title needs."""
    fig = layers.relative_change(_change())
    lines = _lines(fig.layout.title.text)
    note = next(a for a in fig.layout.annotations if a.name == "note")
    assert "percentile over seeds" in note.text and "percentile" not in fig.layout.title.text
    for line in lines:
        assert len(line) * fig.layout.title.font.size * EM <= _plot_width(fig), line
    for line in _lines(note.text):
        assert len(line) * note.font.size * EM <= _plot_width(fig), line
    top = fig.layout.margin.t
    assert top >= 10 + len(lines) * fig.layout.title.font.size * 1.2 + len(_lines(note.text)) * note.font.size * 1.2
    assert fig.layout.height - top - fig.layout.margin.b >= 300          # the plot did not shrink to make room
    longer = base.style(layers.relative_change(_change()), "word " * 60)  # more lines: more room, all of it above
    assert longer.layout.margin.t > top and longer.layout.height > fig.layout.height


def test_the_legend_sits_above_the_plots_away_from_the_x_axis_title():
    """Inside the model's CKA chart had its legend under the plot, over the x-axis title."""
    fig = inside.cka_by_stage(_change())
    legend = fig.layout.legend
    assert legend.orientation == "h" and legend.yref == "container" and legend.yanchor == "top"
    top_of_legend = (1 - legend.y) * fig.layout.height
    assert top_of_legend < fig.layout.margin.t                            # it starts above the plots' top edge
    note = next(a for a in fig.layout.annotations if a.name == "note")
    note_bottom = fig.layout.margin.t - note.yshift + len(_lines(note.text)) * note.font.size * 1.2
    assert note_bottom <= top_of_legend + 1                                # under the note, not over it


def test_subplot_titles_are_wrapped_to_their_column_and_lifted_clear_of_the_note():
    """Which strategy?'s tie title ("…full, scratcl") and the CKA subtitle over its subplot title."""
    strategies = ("feature_extraction", "partial", "full", "scratch")
    quadrants = [{"size": size, "domain": domain, "kind": "tie", "tied": list(strategies), "winner": "full",
                  "means": dict.fromkeys(strategies, 0.7), "stds": dict.fromkeys(strategies, 0.02),
                  "rule_strategies": ["partial"]} for size in ("few", "more") for domain in ("near", "far")]
    for fig in (domains.strategy_chart({"quadrants": quadrants}), inside.cka_by_stage(_change())):
        column = (fig.layout.xaxis.domain[1] - fig.layout.xaxis.domain[0]) * _plot_width(fig)
        titles = [a for a in fig.layout.annotations if a.yanchor == "bottom" and a.name != "note"]
        assert titles
        for a in titles:
            assert all(len(line) * a.font.size * EM <= column for line in _lines(a.text)), a.text
        note = next(a for a in fig.layout.annotations if a.name == "note")
        top_row = max(len(_lines(a.text)) * a.font.size for a in titles)
        assert note.yshift >= top_row                                       # the note sits above the subplot titles


def test_grad_cam_column_headers_fit_their_columns():
    """"true: brick" ran into the next column: the true class now heads each column's title, wrapped to it."""
    rng = np.random.default_rng(0)
    n, models = 8, ("feature_extraction", "finetuned", "scratch")
    classes = ["brick", "gravel", "grass"]
    truth = rng.integers(0, 3, n).tolist()
    fig = inside.cam_grid(rng.random((n, 3, 32, 32)), {m: rng.random((n, 32, 32)) for m in models},
                          {m: rng.integers(0, 3, n) for m in models}, truth, classes,
                          {"models": {m: {"label": m, "val_acc": 0.5} for m in models}, "map_size": [4, 4],
                           "image_size": 32, "stage": "block 3"})
    column = (fig.layout.xaxis.domain[1] - fig.layout.xaxis.domain[0]) * _plot_width(fig)
    heads = [a for a in fig.layout.annotations if "true" in a.text]
    assert [re.sub(r"<[^>]*>", " ", a.text).split()[1] for a in heads] == [classes[t] for t in truth]
    for a in heads:
        assert all(len(line) * a.font.size * EM <= column for line in _lines(a.text)), a.text


def test_first_layer_filters_are_drawn_large_enough_to_see_an_edge():
    """The layers page drew each 3×3 kernel about 27 px wide: pretrained and random looked alike."""
    rng = np.random.default_rng(0)
    for models in (2, 3):
        fig = layers.filters({f"model {i}": rng.normal(size=(32, 3, 3, 3)) for i in range(models)})
        assert layers.tile_px(fig, 3) >= layers.TILE >= 48, models


def test_the_projector_lays_the_same_figure_out_again_in_large_type_inside_its_height():
    fig = layers.relative_change(_change())
    big = base.projector(fig, fit=True)
    assert big.layout.height == base.PROJECTOR_HEIGHT
    assert big.layout.title.font.size >= 1.4 * fig.layout.title.font.size
    for line in _lines(big.layout.title.text):
        assert len(line) * big.layout.title.font.size * EM <= _plot_width(big, base.PROJECTOR_WIDTH), line
    assert big.layout.margin.t < base.PROJECTOR_HEIGHT / 2                 # the plot keeps most of the height
    assert len([a for a in big.layout.annotations if a.name == "note"]) == 1
