"""The lab's learning-rate finder: "Find a learning rate" runs the range test (tl_core.experiments.lr_find) on the
lab's model, data and freeze depth; the figure shows loss against rate with the suggestion, and "Use this rate" sets
the lab's learning-rate setting (`ft_lr`) to the slider step nearest to it. A widget group, not a page."""
import streamlit as st

from app_pages import ui
from tl_core import contract
from tl_core.experiments import lr_find
from tl_core.experiments.finetune import FinetuneConfig
from tl_core.plots import lr_find as figures

S = st.session_state
KEY = "ft_lr"   # the lab's URL-bound learning-rate select_slider


def _use(rate: float) -> None:
    S[KEY] = rate


def finder(cfg: FinetuneConfig) -> None:
    lr_cfg = lr_find.LrFindConfig.from_lab(cfg)
    with st.expander("Find a learning rate (range test)"):
        st.caption(f"Trains the lab's model ({lr_cfg.backbone}, {lr_cfg.weights} weights, {lr_cfg.dataset}, "
                   f"{lr_cfg.freeze} stages frozen) for up to {lr_cfg.steps} mini-batches of {lr_cfg.batch_size} "
                   f"while the learning rate grows from {lr_cfg.start_lr:g} to {lr_cfg.end_lr:g}, and stops when the "
                   f"loss diverges. Suggested: where the smoothed loss falls fastest (steepest descent).")
        res = ui.run_button("ft_lrf", "Find a learning rate", "lr-find", lr_cfg,
                            results=S.setdefault("ft_lr_finds", {}), button_key="ft_lr_find",
                            start="Sweeping the learning rate…")
        if res is None:
            return
        ui.verdict(res.verdict())
        if res.status != "finished":
            return
        step = lr_find.nearest_step(res.suggested_lr, contract.spec(FinetuneConfig, "lr").steps)
        ui.chart(figures.curve(res.to_json(), step), "ft_lr_curve")
        st.button(f"Use this rate: {step:g} (the lab's step nearest to {res.suggested_lr:.1e})", key="ft_lr_use",
                  on_click=_use, args=(step,), disabled=S.get(KEY) == step, type="primary")
