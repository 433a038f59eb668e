import io

import streamlit as st

from app_pages import ui
from tl_core import contract, gtl_data, guidance, i18n, names
from tl_core.experiments import gtl, gtl_sweep
from tl_core.i18n import tr
from tl_core.plots import gtl as figures

G = gtl.GTLConfig

link = ui.page(tr("Guided Transfer Learning"), "gtl_",
               tr("Pretraining can teach *how* to learn, not only *what*: inductive biases from scouts (Nikolić et "
                  "al., 2023). **1** Pretrain a base network on the source classes. **2** *Scouts*: copies of the "
                  "base, each fine-tuned on an easier sub-problem shaped like the target (3 source classes); all train "
                  "at once. **3** The *guide* of a weight is how far the scouts moved it (mean squared change), "
                  "normalised per tensor to 0 … 1. **4** Fine-tune on the few-shot target classes with every update "
                  "scaled by the guide: 0 = frozen, 1 = free. The default data is high-dimensional and low-sample, as "
                  "in the method's papers: a synthetic RNA-seq-like atlas (400 genes; each cell type marked by two "
                  "shared gene programmes). The question the verdict answers: **does guidance beat simply freezing "
                  "the body?** (against the stronger of freezing all but the head and plain fine-tuning)."),
               settings=tr("GTL settings"))


def best_try() -> None:
    st.session_state.update({f"gtl_{k}": v for k, v in gtl.BEST_TRY.items()})


with st.sidebar:
    st.button(tr("Preset: guidance's best try"), key="gtl_best_try", on_click=best_try, help=tr(gtl.BEST_TRY_NOTE))
    data_name = ui.widget(G, "data", "gtl_")
    picked = ui.widgets(G, ("source", "arch", "target_classes", "scouts", "scout_classes", "scout_epochs", "focus",
                            "temperature", "free_fraction", "shots", "seeds", "epochs"), "gtl_",
                        target_classes={"fmt": lambda c: gtl_data.class_name(data_name, c)},
                        focus={"captions": [tr(v) for v in contract.spec(G, "focus").choice_help.values()],
                               "horizontal": False})
    st.caption(tr("Changing only target settings (shots, focus, seeds, …) reuses the base and the scouts."))
picked.update(ui.more_settings(G, ("pretrain_epochs", "val_per_class"), "gtl_"))



def sweep_section() -> None:
    """When does guidance help? Shots 1, 2, 5, 10 × related / unrelated source, with the sidebar's scouts, seeds and
    epochs; its own button, its own kept results."""
    st.subheader(tr("When does guidance help?"))
    st.markdown(tr("Guided fine-tuning against freezing the body, plain fine-tuning and scratch at 1, 2, 5 and 10 "
                   "shots, from a **related** source (the other classes) and an **unrelated** one (the same samples "
                   "with their features shuffled), with the sidebar's scouts, seeds and epochs."))
    sweep_cfg = gtl_sweep.GTLSweepConfig(data=data_name, target_classes=cfg.target_classes, seeds=cfg.seeds,
                                         scouts=cfg.scouts, scout_epochs=cfg.scout_epochs, epochs=cfg.epochs,
                                         pretrain_epochs=cfg.pretrain_epochs, val_per_class=cfg.val_per_class)
    kept = st.session_state.setdefault("gtl_sweep_results", {})
    sweep = ui.run_button("gtl_sweep", tr("Run the sweep"), "gtl-sweep", sweep_cfg, results=kept)
    if sweep is None:
        return
    ui.verdict(sweep.verdict())
    ui.chart(figures.sweep(sweep.to_json()), "gtl_sweep_chart")
    for line in sweep.findings():
        st.markdown(f"- {line}")


results = st.session_state.setdefault("gtl_results", {})
link.report()
cfg = G(data=data_name, **{**picked, "target_classes": tuple(sorted(picked["target_classes"]))})
try:
    contract.validate(cfg)
except ValueError as err:
    st.warning(tr("{err}. Adjust the settings in the sidebar.", err=err))
    st.stop()
result = ui.run_button("gtl", tr("Run GTL"), "gtl", cfg, results=results, button_key="gtl_run")
if result is None:
    st.info(tr("Choose the settings in the sidebar and press **Run GTL**. Runs already made with the same settings "
               "are shown at once."))
    sweep_section()
    st.stop()
out = result.to_json()
ui.verdict(result.verdict())
for col, c in zip(st.columns(4), gtl.CONDITIONS):
    col.metric(tr(figures.LABELS[c]), i18n.percent(out[c]["val_acc_mean"]),
               tr("± {std} over {n} seeds", std=i18n.percent(out[c]["val_acc_std"]), n=cfg.seeds), delta_color="off",
               delta_arrow="off", border=True)
s = result.scouted
base = dict(arch=cfg.arch, data=data_name, classes=", ".join(s.source_classes),
            source=names.condition(cfg.source) if cfg.source in ("related", "unrelated") else f"{cfg.source} source",
            acc=i18n.percent(s.source_val_acc), n=len(s.scouts), s=i18n.number(s.scout_seconds, 1),
            device=result.device, total=i18n.number(result.seconds, 1))
st.caption(tr("Base: {arch} pretrained on {data} classes {classes} ({source}; {acc} on held-out source samples). {n} "
              "scouts in {s} s (reused from cache). {device} · {total} s.", **base) if result.scouts_cached else
           tr("Base: {arch} pretrained on {data} classes {classes} ({source}; {acc} on held-out source samples). {n} "
              "scouts in {s} s. {device} · {total} s.", **base))
ui.chart(figures.curves(out), "gtl_curves_chart")
ui.chart(figures.final(out), "gtl_final_chart")

st.subheader(tr("What each scout learned"))
st.dataframe({tr("scout"): [tr("scout {n}", n=k + 1) for k in range(len(s.tasks))],
              tr("its sub-problem"): [" vs ".join(gtl_data.class_name(data_name, c) for c in t) for t in s.tasks]},
             hide_index=True, height=min(38 * len(s.tasks) + 40, 330), key="gtl_scout_table")
st.subheader(tr("Where the scouts say weights should move"))
if data_name == "expression":
    ui.chart(figures.groups(result.guide["body.fc1.weight"], gtl_data.gene_groups(),
                            tr("First layer's guide by gene programme (16 units the scouts moved most)")),
             "gtl_groups_chart")
ui.chart(figures.heatmaps(result.guide), "gtl_heatmaps_chart")
left, right = st.columns(2)
ui.chart(figures.histogram(result.guide), "gtl_hist_chart", left)
ui.chart(figures.layer_means(result.guide), "gtl_layers_chart", right)
buffer = io.BytesIO()
guidance.guide_file(result.guide, buffer)
st.download_button(tr("Download the guide (.pt)"), buffer.getvalue(), file_name=f"gtl_guide_{cfg.arch}.pt",
                   key="gtl_download", help=tr("torch.load → {parameter name: guide tensor}, shaped like the "
                                               "parameter"))

sweep_section()
