"""AppTest of the State-dict workshop: inspect a lab model, load it into other architectures, upload files
(a DataParallel-style one, one carrying code), continue fine-tuning; nothing lost on rerun."""
import io
import os

import fakes
import torch

from tl_core import state, store

PAGE = "app_pages/state.py"


def _metrics(app) -> list[str]:
    return [m.value for m in app.metric]


def _load(app, into: str, classes: int = 0, strict: bool = True, strip: str = "") -> None:
    app.selectbox(key="sd_load_arch").set_value(into)
    app.number_input(key="sd_load_num_classes").set_value(classes)
    app.toggle(key="sd_load_strict").set_value(strict)
    app.text_input(key="sd_load_strip_prefix").set_value(strip)
    app.run()
    app.button(key="sd_load").click().run()
    assert not app.exception


def test_inspect_and_load_flow_reports_the_right_counts(app, monkeypatch):
    app.switch_page(PAGE).run()
    assert not app.exception
    ins = state.inspect_lab("shapes_cnn", "pretrained")
    assert _metrics(app) == [f"{len(ins.rows):,}", f"{ins.total_elements:,}", f"{ins.total_bytes / 2**20:.2f} MB"]
    assert len(app.get("plotly_chart")) == 1 and len(app.dataframe[0].value) == len(ins.rows)
    app.radio(key="sd_part").set_value("head").run()
    assert list(app.dataframe[0].value["key"]) == ["fc.weight", "fc.bias"]
    app.radio(key="sd_part").set_value("full").run()

    _load(app, "efficientnet_lite0")                    # a wrong architecture: everything differs
    assert "Strict loading into efficientnet_lite0 failed" in app.error[0].value
    lite0_keys = len(state.build("efficientnet_lite0").state_dict())
    assert _metrics(app)[3:] == [str(lite0_keys), str(len(ins.rows)), "0"]

    _load(app, "shapes_cnn", classes=3)                 # another class count: only the head mismatches
    assert _metrics(app)[3:] == ["0", "0", "2"]
    assert list(next(d.value for d in app.dataframe if "file_shape" in d.value)["key"]) == ["fc.weight", "fc.bias"]
    assert any("only the head differs" in i.value for i in app.info)
    assert app.get("button")  # no continue fine-tuning offered after a refusal
    assert not [b for b in app.button if b.key == "sd_ft_run"]

    _load(app, "shapes_cnn", classes=3, strict=False)   # strict off: the rest loads, reported, no traceback
    assert "loaded 24 matching tensors" in app.warning[0].value
    calls = fakes.count_trainings(monkeypatch, "continue")
    app.slider(key="sd_ft_epochs").set_value(2).run()
    app.button(key="sd_ft_run").click().run()
    assert not app.exception
    assert "Validation accuracy after 2 epochs" in app.success[0].value
    assert len(app.get("plotly_chart")) == 2
    app.run()
    assert len(calls) == 1 and app.button(key="sd_ft_run").disabled   # kept in session_state, not retrained
    assert calls[0]["init"] == "shapes_cnn_pretrained_full"            # the request names the weights it loads
    assert "weights loaded from shapes_cnn_pretrained_full" in app.success[0].value
    run = store.Store().runs(kind="continue")[0]                       # recorded as the lab's config, kind continue
    assert run.status == "finished" and run.config["backbone"] == "shapes_cnn" and run.config["epochs"] == 2
    assert run.config["freeze"] == "0" and run.config["dataset"] == "textures"


def test_uploads_module_prefix_then_strip_and_code_is_refused(app, tmp_path):
    app.switch_page(PAGE).run()
    sd = state.export("shapes_cnn", "pretrained")
    buf = io.BytesIO()
    torch.save({"module." + k: v for k, v in sd.items()}, buf)
    app.file_uploader(key="sd_upload").upload("dp.pt", buf.getvalue()).run()
    assert not app.exception and app.radio(key="sd_source").value == "uploaded file"
    assert app.dataframe[0].value["key"].iloc[0] == "module.conv1.0.weight"
    _load(app, "shapes_cnn")
    assert _metrics(app)[3:] == [str(len(sd)), str(len(sd)), "0"]
    assert any("strip the prefix 'module.'" in i.value for i in app.info)
    _load(app, "shapes_cnn", strip="module.")
    assert "Loaded all 26 tensors" in app.success[0].value
    app.switch_page("app_pages/home.py").run()
    app.switch_page(PAGE).run()                          # a page switch keeps the upload
    assert app.radio(key="sd_source").value == "uploaded file" and not app.exception

    marker = tmp_path / "ran"

    class RunsCode:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    evil = io.BytesIO()
    torch.save({"w": torch.zeros(1), "x": RunsCode()}, evil)
    app.file_uploader(key="sd_upload").set_value(("evil.pt", evil.getvalue(), "application/octet-stream")).run()
    assert not app.exception and not marker.exists()
    assert any("refused" in e.value and "system" in e.value for e in app.error)
