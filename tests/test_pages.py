"""Pages render without exception through the real navigation, and their controls redraw."""
import subprocess
import sys
import time

import fakes
import pytest
from fixtures import train_small_lab as _train_small_lab


def test_home_renders_with_device_and_links(app):
    assert not app.exception
    text = " ".join(m.value for m in app.markdown)
    assert "Pretrain" in text and "Fine-tune" in text
    assert any("Training runs on" in i.value for i in app.info)
    assert any("Training device" in c.value for c in app.sidebar.caption)


@pytest.mark.slow
def test_toy_page_shows_verdict_metrics_and_charts(app):
    app.switch_page("app_pages/toy.py").run()
    assert not app.exception
    assert "Pretraining on task A helped" in app.success[0].value
    from tl_core import glossary  # the verdict's words explained beside it
    assert any(glossary.entry("claims rule") in (c.help or "") and "verdict" in c.value for c in app.caption)
    assert len(app.get("plotly_chart")) == 3
    assert app.metric[2].value.endswith("/ 30")
    assert float(app.metric[3].value) < 1e-3  # every network fits B's points


@pytest.mark.slow   # the toy's real config (30 seeds x 600 epochs), trained by the page two or three times
def test_toy_controls_redraw(app):
    app.switch_page("app_pages/toy.py").run()
    before = [m.value for m in app.metric]
    app.radio(key="toy_relation").set_value("unrelated").run()
    assert not app.exception
    assert [m.value for m in app.metric] != before
    assert "Negative transfer" in app.error[0].value
    app.slider(key="toy_b_points").set_value(12)
    app.selectbox(key="toy_preset").set_value("custom").run()
    assert not app.exception
    assert app.slider(key="toy_width").value == 16  # custom exposes width and depth
    assert "12 training points" in str(app.get("plotly_chart")[0].proto.spec)


@pytest.mark.slow   # the toy's real config (30 seeds x 600 epochs), trained by the page two or three times
def test_rerun_with_same_settings_retrains_nothing(app, monkeypatch, tmp_path):
    from tl_core.serve import scheduler

    monkeypatch.setenv("TL_DATA_DIR", str(tmp_path))   # a server that has trained nothing yet
    monkeypatch.setattr(scheduler, "_SERVER", {})
    calls = fakes.count_trainings(monkeypatch, "toy")
    app.switch_page("app_pages/toy.py").run()
    app.run()
    app.run()
    assert len(calls) == 1
    app.slider(key="toy_seeds").set_value(10).run()
    assert len(calls) == 2


def test_tl_core_never_imports_streamlit():
    code = "import sys, tl_core.cli, tl_core.plots, tl_core.experiments; print('streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_finetune_page_trains_shows_curves_and_does_not_retrain_the_same_config(app, monkeypatch, fresh_server):

    calls = fakes.count_trainings(monkeypatch, "finetune")
    app.switch_page("app_pages/finetune.py").run()
    assert not app.exception and "press **Train**" in app.info[0].value
    _train_small_lab(app, dataset="faces", epochs=3, seeds=2)
    assert len(app.get("plotly_chart")) >= 2          # curves, confusion matrix (+ misclassified)
    assert any("pretrained" in m.value and "scratch" in m.value for m in [*app.success, *app.info, *app.error])
    app.run()
    assert len(calls) == 1 and app.button(key="ft_train").disabled  # same config: shown, not retrained
    app.button(key="ft_sweep").click().run()
    assert not app.exception and len(app.get("plotly_chart")) >= 4


def test_finetune_lr_finder_sets_the_rate_and_the_trained_model_downloads(app, monkeypatch):
    from tl_core import contract, train
    from tl_core.experiments import finetune, lr_find

    fits = []
    real = train.fit
    monkeypatch.setattr(train, "fit", lambda *a, **k: fits.append(k) or real(*a, **k))
    app.switch_page("app_pages/finetune.py").run()
    app.selectbox(key="ft_backbone").set_value("shapes_cnn")
    app.select_slider(key="ft_image_size").set_value(32).run()
    assert any(e.label == "Model card: shapes_cnn at 32 px" for e in app.sidebar.expander)
    app.button(key="ft_lr_find").click().run()
    assert not app.exception and len(fits) == 1 and fits[0]["after_step"] is not None   # THE loop
    res = next(iter(app.session_state["ft_lr_finds"].values()))
    step = lr_find.nearest_step(res.suggested_lr, contract.spec(finetune.FinetuneConfig, "lr").steps)
    assert "Learning-rate range test" in str(app.get("plotly_chart")[0].proto.spec)
    app.button(key="ft_lr_use").click().run()
    assert not app.exception and app.select_slider(key="ft_lr").value == step
    assert app.query_params.get("ft_lr") in (str(step), [str(step)])                    # the link carries it
    _train_small_lab(app, dataset="textures", epochs=1, seeds=1)
    assert next(iter(app.session_state["ft_results"])).lr == step
    assert any("ONNX parity: max |p_torch - p_onnxruntime|" in c.value for c in app.caption)


def test_finetune_controls_reach_the_run(app):
    app.switch_page("app_pages/finetune.py").run()
    app.selectbox(key="ft_backbone").set_value("shapes_cnn").run()   # the freeze slider follows its stages
    assert app.slider(key="ft_freeze").max == 4 and app.slider(key="ft_freeze").value == 4
    app.radio(key="ft_weights").set_value("pretrained")
    app.radio(key="ft_strategy").set_value("gradual")
    app.select_slider(key="ft_shots").set_value("2")
    app.select_slider(key="ft_lr").set_value(1e-2)
    app.slider(key="ft_freeze").set_value(2)
    _train_small_lab(app, dataset="textures", epochs=4, seeds=1)
    (cfg, result), = app.session_state["ft_results"].items()
    assert (cfg.weights, cfg.strategy, cfg.shots, cfg.lr, cfg.freeze, cfg.epochs) == (
        "pretrained", "gradual", 2, 1e-2, "2", 4)
    assert len(result.runs) == 1 and len(result.runs[0].history.train_loss) == 4
    assert "pretrained: validation accuracy" in app.info[0].value      # one condition: no comparison claimed
    assert "frozen: conv1, conv2" in " ".join(c.value for c in app.caption)


def test_a_shared_result_is_made_once_for_sessions_asking_at_once_and_a_failed_make_is_tried_again():
    import threading

    from app_pages import ui

    result, calls = object(), []

    def make():
        calls.append(1)
        time.sleep(0.2)   # a slow make (an export): the other sessions wait for it instead of making their own
        return ["figure"]

    got = []
    threads = [threading.Thread(target=lambda: got.append(ui.once(result, "figure", make))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(got) == 6 and all(g is got[0] for g in got)

    def broken():
        raise RuntimeError("export failed")

    with pytest.raises(RuntimeError):
        ui.once(result, "model", broken)
    assert ui.once(result, "model", lambda: "exported") == "exported"
