"""The lab's learning-rate finder: "Find a learning rate" runs the range test (tl_core.experiments.lr_find) on the
lab's model, data and freeze depth; the figure shows loss against rate with the suggestion, and "Use this rate" sets
the lab's learning-rate setting (`ft_lr`) to the slider step nearest to it. A widget group, not a page."""
import streamlit as st

from app_pages import ui
from tl_core import contract
from tl_core.experiments import lr_find
from tl_core.experiments.finetune import FinetuneConfig
from tl_core.i18n import N_, tr
from tl_core.plots import lr_find as figures

S = st.session_state
KEY = "ft_lr"   # the lab's URL-bound learning-rate select_slider


def _use(rate: float) -> None:
    S[KEY] = rate


def finder(cfg: FinetuneConfig) -> None:
    lr_cfg = lr_find.LrFindConfig.from_lab(cfg)
    with st.expander(tr("Find a learning rate (range test)")):
        st.caption(tr("Trains the lab's model ({backbone}, {weights} weights, {dataset}, {frozen} stages frozen) for "
                      "up to {steps} mini-batches of {batch} while the learning rate grows from {start} to {end}, and "
                      "stops when the loss diverges. Suggested: where the smoothed loss falls fastest (steepest "
                      "descent).", backbone=lr_cfg.backbone, weights=lr_cfg.weights, dataset=lr_cfg.dataset,
                      frozen=lr_cfg.freeze, steps=lr_cfg.steps, batch=lr_cfg.batch_size,
                      start=f"{lr_cfg.start_lr:g}", end=f"{lr_cfg.end_lr:g}"))
        res = ui.run_button("ft_lrf", tr("Find a learning rate"), "lr-find", lr_cfg,
                            results=S.setdefault("ft_lr_finds", {}), button_key="ft_lr_find",
                            start=N_("Sweeping the learning rate…"))
        if res is None:
            return
        ui.verdict(res.verdict())
        if res.status != "finished":
            return
        step = lr_find.nearest_step(res.suggested_lr, contract.spec(FinetuneConfig, "lr").steps)
        ui.chart(figures.curve(res.to_json(), step), "ft_lr_curve")
        st.button(tr("Use this rate: {step} (the lab's step nearest to {suggested})", step=f"{step:g}",
                     suggested=f"{res.suggested_lr:.1e}"), key="ft_lr_use",
                  on_click=_use, args=(step,), disabled=S.get(KEY) == step, type="primary")
