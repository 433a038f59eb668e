"""Shareable settings: a link with a page's settings in its query string opens the page with exactly
those settings (toy and lab: tests/test_runs_page.py), and values a page can't use are named."""
import pytest
from fixtures import TINY_LAB, link, photos_zip
from fixtures import open_page as _open
from streamlit.testing.v1 import AppTest

from tl_core import store

LINKS = {
    "app_pages/selfsup.py": {"ssl_data": "digits", "ssl_mask_ratio": "0.7", "ssl_labels": "5", "ssl_seeds": "2",
                             "ssl_pretrain_epochs": "9", "ssl_epochs": "40"},
    "app_pages/state.py": {"sd_arch": "efficientnet_lite0", "sd_weights": "scratch", "sd_part": "head",
                           "sd_format": "safetensors", "sd_load_arch": "efficientnet_lite0", "sd_load_num_classes": "3",
                           "sd_load_strip_prefix": "module.", "sd_load_add_prefix": "encoder.",
                           "sd_load_strict": "false"},
    "app_pages/gtl.py": {"gtl_arch": "cnn", "gtl_scouts": "8", "gtl_scout_classes": "4", "gtl_scout_epochs": "3",
                         "gtl_focus": "raw", "gtl_temperature": "2.0", "gtl_free_fraction": "0.25", "gtl_shots": "5",
                         "gtl_seeds": "3", "gtl_epochs": "30"},
    "app_pages/runs.py": {"runs_kind": "toy"},
}
OWN = {"own_backbone": "shapes_cnn", "own_weights": "both", "own_freeze": "2", "own_strategy": "gradual",
       "own_epochs": "7", "own_lr": "0.01", "own_size": "48", "own_seeds": "2", "own_val": "0.25"}


def _as_text(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _check(at: AppTest, params: dict) -> None:
    assert not at.exception
    assert not [w.value for w in at.warning if "link" in w.value]
    got = {k: _as_text(at.session_state[k]) for k in params}
    want = {k: _as_text(type(at.session_state[k])(float(v)) if isinstance(at.session_state[k], (int, float))
                        and not isinstance(at.session_state[k], bool) else v) for k, v in params.items()}
    assert got == want


@pytest.mark.parametrize("page", list(LINKS))
def test_a_link_opens_the_page_with_its_settings(app, page):
    if page == "app_pages/runs.py":  # the filter offers only experiments the history holds
        store.Store().record("toy", {"config": {"b_points": 2}, "status": "finished"})
    _check(_open(page, LINKS[page]), LINKS[page])


def test_a_link_sets_the_own_images_training_settings_once_images_are_there(app):
    at = _open("app_pages/own.py", OWN)
    at.file_uploader(key="own_zip").set_value(("photos.zip", photos_zip(4), "application/zip")).run()
    _check(at, OWN)
    at.run()                                     # kept on the next rerun too, not reset to the defaults
    _check(at, OWN)


@pytest.mark.parametrize("page,params,named", [
    ("app_pages/selfsup.py", {"ssl_mask_ratio": "2.5", "ssl_data": "words"}, ["ssl_mask_ratio=2.5", "ssl_data=words"]),
    ("app_pages/state.py", {"sd_part": "legs", "colour": "1"}, ["sd_part=legs", "`colour`"]),
])
def test_bad_link_values_fall_back_to_defaults_with_a_notice(app, page, params, named):
    at = _open(page, params)
    assert not at.exception
    notice = " ".join(w.value for w in at.warning)
    assert all(n in notice for n in named), notice


@pytest.mark.parametrize("page,params,later", [
    ("app_pages/gtl.py", {"gtl_target_classes": ["7", "8", "9"]}, []),  # a multiselect as repeated keys, at its default
    ("app_pages/state.py", {"sd_load_strict": "true", "sd_ft_epochs": "8"}, ["sd_ft_epochs"]),  # drawn after a Load
    ("app_pages/finetune.py", {"ft_sweep_shots": ["1", "20"]}, ["ft_sweep_shots"]),        # drawn after a Train
])
def test_link_values_that_are_used_raise_no_notice_and_stay_in_the_link(app, page, params, later):
    at = _open(page, params)
    assert not at.exception and not [w.value for w in at.warning if "link" in w.value]
    assert all(key in at.query_params for key in later)  # kept for the widget that will read it


def test_a_link_naming_only_a_smaller_backbone_starts_it_at_feature_extraction(app):
    at = _open("app_pages/own.py", {"own_backbone": "shapes_cnn", "own_epochs": "1"})
    at.file_uploader(key="own_zip").set_value(("photos.zip", photos_zip(4), "application/zip")).run()
    assert not at.exception
    assert (at.slider(key="own_freeze").value, at.slider(key="own_freeze").max) == (4, 4)
    assert at.slider(key="own_epochs").value == 1                 # a value at the slider's minimum travels too


def test_bad_list_values_of_settings_drawn_after_a_train_get_the_notice_too(app):
    """The sweep's multiselects appear only once the lab has a result: their bad link values used to fall
    back silently."""
    at = _open("app_pages/finetune.py", {**link("ft", {**TINY_LAB, "epochs": 1, "seeds": 1, "weights": "pretrained"}),
                                         "ft_sweep_shots": "abc,999", "ft_sweep_freezes": "-1"})
    at.button(key="ft_train").click().run()
    assert not at.exception
    notice = " ".join(w.value for w in at.warning)
    assert "ft_sweep_shots=abc,999" in notice and "ft_sweep_freezes=-1" in notice
    assert at.multiselect(key="ft_sweep_shots").value == ["1", "5", "20"]      # the defaults


def test_a_very_long_bad_value_is_cut_in_the_notice(app):
    at = _open("app_pages/selfsup.py", {"ssl_data": "x" * 10_000})
    notice = " ".join(w.value for w in at.warning)
    assert "ssl_data=xxxx" in notice and "10,000 characters" in notice and len(notice) < 400
