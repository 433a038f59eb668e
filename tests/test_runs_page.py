"""Pages record their runs, keep their settings in the link, and the Runs page compares and manages them."""
import json

import pytest
from fixtures import FAST_TOY as _FAST_TOY
from fixtures import TINY_LAB, Fake, link
from fixtures import open_page as _open

from tl_core import contract, store
from tl_core.experiments import toy

FAST_TOY = link("toy", _FAST_TOY)


@pytest.fixture
def history(tmp_path, monkeypatch):
    monkeypatch.setenv("TL_DATA_DIR", str(tmp_path))
    return store.Store(tmp_path)


def test_a_link_sets_the_toy_and_its_run_is_recorded(app, history):
    at = _open("app_pages/toy.py", {**FAST_TOY, "toy_b_points": "5", "toy_relation": "identical"})
    assert not at.exception and not at.warning
    assert (at.slider(key="toy_b_points").value, at.radio(key="toy_relation").value) == (5, "identical")
    (run,) = history.runs(kind="toy")
    assert (run.config["b_points"], run.config["relation"], run.config["seeds"]) == (5, "identical", 5)
    assert run.status == "finished" and len(run.curves["pretrained.curves.test_mse_mean"]) == 50
    assert run.session  # the browser session that trained it


def test_bad_or_unknown_link_values_fall_back_to_defaults_with_a_notice(app, history):
    at = _open("app_pages/toy.py", {**FAST_TOY, "toy_b_points": "99", "toy_lr": "fast", "colour": "red"})
    assert not at.exception
    assert at.slider(key="toy_b_points").value == 2 and at.select_slider(key="toy_lr").value == 0.01
    notice = at.warning[0].value
    assert "toy_b_points=99" in notice and "toy_lr=fast" in notice and "`colour` (not a setting of this page)" in notice


def test_a_link_sets_every_lab_control(app, history):
    params = link("ft", {**TINY_LAB, "weights": "pretrained", "shots": 2, "freeze": 2, "strategy": "gradual",
                         "epochs": 4, "lr": 0.01, "seeds": 1})
    at = _open("app_pages/finetune.py", params)
    assert not at.exception and not at.warning
    values = {k: at.session_state[k] for k in params}
    assert values == {"ft_backbone": "shapes_cnn", "ft_weights": "pretrained", "ft_dataset": "textures",
                      "ft_shots": "2", "ft_freeze": 2, "ft_strategy": "gradual", "ft_epochs": 4, "ft_lr": 0.01,
                      "ft_image_size": 32, "ft_seeds": 1}
    at.button(key="ft_train").click().run()
    (run,) = history.runs(kind="finetune")
    assert (run.config["freeze"], run.config["strategy"], run.config["shots"]) == ("2", "gradual", 2)


def _toy_run(history, b_points: int) -> int:
    result = toy.run(toy.ToyConfig(b_points=b_points, seeds=4, epochs=30, pretrain_epochs=30))
    return history.record("toy", result)


def test_runs_page_compares_picked_runs_and_shows_what_changed(app, history):
    a, b = _toy_run(history, 2), _toy_run(history, 8)
    at = _open("app_pages/runs.py", {})
    assert not at.exception
    assert at.multiselect(key="runs_pick").value == [b, a]   # the two newest finished runs, by default
    assert at.selectbox(key="runs_color").value == "b_points"       # coloured by what differs
    changed = at.dataframe[1].value  # [0] is the list of runs
    assert list(changed["setting"]) == ["b_points"]
    spec = str(at.get("plotly_chart")[0].proto.spec)
    assert "coloured by b_points" in spec and "#1b9e77" in spec and "#d95f02" in spec
    csv_button = at.get("download_button")
    assert len(csv_button) >= 3  # chart HTML, CSV, JSON


def test_runs_page_labels_filters_and_deletes(app, history):
    a, b = _toy_run(history, 2), _toy_run(history, 3)
    history.record("finetune", {"config": {"dataset": "digits", "backbone": "shapes_cnn"},
                                "history": {"val_acc": [0.5]}})
    at = _open("app_pages/runs.py", {"runs_kind": "toy"})
    at.multiselect(key="runs_pick").set_value([a]).run()
    at.text_input(key="runs_label").input("two points").run()
    at.button(key="runs_save_label").click().run()
    assert history.get(a).label == "two points"
    at.selectbox(key="runs_kind").set_value("finetune").run()
    assert not at.exception and "1 of 3 runs" in at.caption[0].value
    at.selectbox(key="runs_kind").set_value("toy").run()
    at.multiselect(key="runs_pick").set_value([a, b]).run()
    at.checkbox(key="runs_sure").check().run()
    at.button(key="runs_delete").click().run()
    assert not at.exception and [r.kind for r in history.runs()] == ["finetune"]


def test_curves_and_metrics_are_named_in_words_and_numbers_are_written_for_people():
    from tl_core.plots import runs as figures

    assert figures.curve_name("conditions.pretrained.history.val_acc") == "pretrained · validation accuracy"
    assert figures.curve_name("recon_loss.train") == "training reconstruction loss"
    assert figures.curve_name("scratch.curves.test_mse_mean") == "scratch · test error (MSE), mean"
    assert figures.curve_name("conditions.freeze_head_only.val_acc") == "freeze head only · validation accuracy"
    assert [figures.number(x) for x in (7e-14, 0.8333, 12.345, 1234.5, 0.5, 15, 0.0, 2.5e7)] == \
        ["7.00e-14", "0.833", "12.3", "1,230", "0.5", "15", "0", "2.50e+07"]
    assert figures.metric("conditions.scratch.val_acc", 0.66667) == "66.7%"


def test_the_runs_page_compares_one_experiment_names_curves_in_words_and_marks_the_lectures_runs(app, history):
    class Tiny(Fake):
        def metrics(self) -> dict:
            return {"val_acc": self.val_acc, "train_loss": 7e-14}

    a, b = _toy_run(history, 2), _toy_run(history, 8)
    cfg = toy.ToyConfig(b_points=4, seeds=2, epochs=5, pretrain_epochs=5)
    with history.track("toy", contract.record(cfg), session="s", source="lecture") as rec:   # as the lecture does
        rec["result"] = toy.run(cfg)
    lec = rec["id"]
    tiny = history.begin("finetune", {"dataset": "digits"})   # the newest run: another experiment
    history.finish(tiny, Tiny({"dataset": "digits"}, 0.66667, [0.5, 0.6]))
    with pytest.raises(ValueError, match="unknown run source"):
        history.begin("toy", {}, source="somewhere")

    at = _open("app_pages/runs.py", {})
    assert not at.exception and at.multiselect(key="runs_pick").value == [tiny]   # one experiment: the newest's
    metrics = {m["metric"]: m[f"#{tiny} finetune"] for m in at.dataframe[-1].value.to_dict("records")}
    assert metrics == {"validation accuracy": "66.7%", "training loss": "7.00e-14"}
    assert at.selectbox(key="runs_curve").format_func("history.val_acc") == "validation accuracy"

    at = _open("app_pages/runs.py", {"runs_kind": "toy"})
    assert not at.exception and at.multiselect(key="runs_pick").value == [lec, b]
    table = {r["id"]: r for r in at.dataframe[0].value.to_dict("records")}
    assert (table[lec]["from"], table[a]["from"], history.get(lec).source) == ("lecture", "", "lecture")
    assert "from the lecture" in at.multiselect(key="runs_pick").format_func(lec)
    curve = at.selectbox(key="runs_curve")
    assert curve.format_func(curve.value) == "pretrained · test error (MSE), mean"
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["title"]["text"].startswith("pretrained · test error (MSE), mean of 2 runs")
    assert "pretrained · test error (MSE), mean" in [m["metric"] for m in at.dataframe[-1].value.to_dict("records")]


def _lab_run(history, config: dict, curves: dict, kind: str = "finetune") -> int:
    class Curves(Fake):
        def curves(self) -> dict:
            return curves

    run = history.begin(kind, config)
    history.finish(run, Curves(config, 0.5, seconds=0.1, device="cpu"))
    return run


def test_the_runs_page_picks_comparable_runs_and_never_mixes_experiments_in_one_chart(app, history):
    lab = {"conditions.pretrained.history.val_acc": [0.6, 0.65], "conditions.scratch.history.val_acc": [0.4, 0.44]}
    step = {"conditions.scratch.history.val_acc": [0.3, 0.4]}
    older = _lab_run(history, {"backbone": "efficientnet_lite0", "weights": "both", "epochs": 2}, lab)
    lecture = _lab_run(history, {"backbone": "shapes_cnn", "weights": "scratch", "epochs": 2}, step)   # a step's
    newest = _lab_run(history, {"backbone": "efficientnet_lite0", "weights": "both", "epochs": 3}, lab)
    at = _open("app_pages/runs.py", {"runs_kind": "finetune"})
    assert not at.exception and at.multiselect(key="runs_pick").value == [newest, older]   # alike, not the step
    assert not at.warning

    text = _lab_run(history, {"conditions": ["feature", "scratch"]}, {"conditions.feature.history.val_acc": [0.5]},
                    kind="text")
    toy_run = _toy_run(history, 2)
    at = _open("app_pages/runs.py", {})
    at.multiselect(key="runs_pick").set_value([text, toy_run, older]).run()
    assert not at.exception and not at.get("plotly_chart")                 # no chart of two experiments
    assert "different experiments (text, toy, finetune)" in at.warning[0].value

    at.multiselect(key="runs_pick").set_value([newest, older, lecture]).run()   # two alike and the step
    assert not at.exception and "backbone, weights differ" in at.warning[0].value
    at.selectbox(key="runs_curve").set_value("conditions.pretrained.history.val_acc").run()
    title = json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["title"]["text"]
    assert "of 2 runs (1 picked without it)" in title, title    # the count is what the chart draws
