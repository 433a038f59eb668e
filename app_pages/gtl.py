import io

import streamlit as st

from app_pages import ui
from tl_core import contract
from tl_core.plots import gtl as figures
from tl_core.experiments import gtl, gtl_sweep

D = gtl.GTLConfig()
spec = lambda name: contract.spec(gtl.GTLConfig, name)  # noqa: E731 - a setting's choices and help

link = ui.page("Guided Transfer Learning", "gtl_",
               "Pretraining can teach *how* to learn, not only *what*: inductive biases from scouts (Nikolić et al., "
               "2023). **1** Pretrain a base network on the source classes. **2** *Scouts*: copies of the base, each "
               "fine-tuned on an easier sub-problem shaped like the target (3 source classes); all train at once. "
               "**3** The *guide* of a weight is how far the scouts moved it (mean squared change), normalised per "
               "tensor to 0 … 1. **4** Fine-tune on the few-shot target classes with every update scaled by the "
               "guide: 0 = frozen, 1 = free. The default data is high-dimensional and low-sample, as in the method's "
               "papers: a synthetic RNA-seq-like atlas (400 genes; each cell type marked by two shared gene "
               "programmes).", settings="GTL settings")

with st.sidebar:
    data_name = st.radio("Data", spec("data").choices, key="gtl_data", bind=ui.URL, horizontal=True,
                         help="\n".join(f"- **{k}**: {v}" for k, v in spec("data").choice_help.items()))
    source = st.radio("Source", spec("source").choices, key="gtl_source", bind=ui.URL, horizontal=True,
                      help="\n".join(f"- **{k}**: {v}" for k, v in spec("source").choice_help.items()))
    arch = st.radio("Base network", spec("arch").choices, key="gtl_arch", bind=ui.URL, horizontal=True,
                    help="\n".join(f"- **{k}**: {v}" for k, v in spec("arch").choice_help.items()))
    target = st.multiselect("Target classes (held out of pretraining)", list(gtl.DIGITS),
                            default=list(D.target_classes), key="gtl_target", bind=ui.URL,
                            format_func=lambda c: gtl.class_name(data_name, c), help=spec("target_classes").help)
    scouts = st.slider("Scouts", 2, 64, D.scouts, key="gtl_scouts", bind=ui.URL, help=spec("scouts").help)
    scout_classes = st.slider("Classes per scout sub-problem", 2, 8, D.scout_classes, key="gtl_scout_classes",
                              bind=ui.URL, help=spec("scout_classes").help)
    scout_epochs = st.slider("Scout epochs", 1, 30, D.scout_epochs, key="gtl_scout_epochs", bind=ui.URL,
                             help=spec("scout_epochs").help)
    focus = st.radio("Focus (per-tensor normalisation)", spec("focus").choices, key="gtl_focus", bind=ui.URL,
                     captions=list(spec("focus").choice_help.values()))
    temperature = st.select_slider("Temperature (below 1 colder: more frozen; above 1 warmer: freer)",
                                   [0.1, 0.25, 0.5, 1.0, 2.0, 4.0],
                                   value=D.temperature, key="gtl_temperature", bind=ui.URL,
                                   help=spec("temperature").help)
    free = st.select_slider("Binary: free top fraction of each tensor (0 = off)", [0.0, 0.05, 0.1, 0.25, 0.5], value=D.free_fraction,
                            key="gtl_free", bind=ui.URL, help=spec("free_fraction").help)
    shots = st.select_slider("Target samples per class (shots)", [1, 2, 5, 10, 20], value=D.shots, key="gtl_shots",
                             bind=ui.URL, help=spec("shots").help)
    seeds = st.slider("Seeds (for the band)", 2, 10, D.seeds, key="gtl_seeds", bind=ui.URL, help=spec("seeds").help)
    epochs = st.slider("Fine-tuning epochs", 10, 200, D.epochs, step=10, key="gtl_epochs", bind=ui.URL,
                       help=spec("epochs").help)
    st.caption("Changing only target settings (shots, focus, seeds, …) reuses the base and the scouts.")



def sweep_section() -> None:
    """When does guidance help? Shots 1, 2, 5, 10 × related / unrelated source, with the sidebar's scouts, seeds and
    epochs; its own button, its own kept results."""
    st.subheader("When does guidance help?")
    st.markdown("Guided fine-tuning against freezing the body, plain fine-tuning and scratch at 1, 2, 5 and 10 shots, "
                "from a **related** source (the other classes) and an **unrelated** one (the same samples with their "
                "features shuffled), with the sidebar's scouts, seeds and epochs.")
    sweep_cfg = gtl_sweep.GTLSweepConfig(data=data_name, target_classes=tuple(sorted(target)), seeds=seeds,
                                         scouts=scouts, scout_epochs=scout_epochs, epochs=epochs)
    kept = st.session_state.setdefault("gtl_sweep_results", {})
    sweep = ui.run_button("gtl_sweep", "Run the sweep", "gtl-sweep", sweep_cfg, results=kept,
                          run=lambda progress, should_stop: gtl_sweep.run(sweep_cfg, progress=progress,
                                                                         should_stop=should_stop))
    if sweep is None:
        st.caption("About a minute on a laptop CPU with the default settings.")
        return
    ui.verdict(sweep.verdict())
    ui.chart(figures.sweep(sweep.to_json()), "gtl_sweep_chart")
    for line in sweep.findings():
        st.markdown(f"- {line}")


results = st.session_state.setdefault("gtl_results", {})
link.report()
cfg = gtl.GTLConfig(data=data_name, source=source, arch=arch, target_classes=tuple(sorted(target)), scouts=scouts, scout_classes=scout_classes,
                    scout_epochs=scout_epochs, focus=focus, temperature=temperature, free_fraction=free,
                    shots=shots, seeds=seeds, epochs=epochs)
try:
    contract.validate(cfg)
except ValueError as err:
    st.warning(f"{err}. Adjust the settings in the sidebar.")
    st.stop()
result = ui.run_button("gtl", "Run GTL", "gtl", cfg, results=results, button_key="gtl_run",
                       run=lambda progress, should_stop: gtl.run(cfg, progress=progress, should_stop=should_stop))
if result is None:
    st.info("Choose the settings in the sidebar and press **Run GTL** (about 10 s on a laptop CPU). Runs "
            "already made with the same settings are shown at once.")
    sweep_section()
    st.stop()
out = result.to_json()
ui.verdict(result.verdict())
for col, c in zip(st.columns(4), gtl.CONDITIONS):
    col.metric(figures.LABELS[c], f"{out[c]['val_acc_mean']:.1%}", f"± {out[c]['val_acc_std']:.1%} over {seeds} seeds",
               delta_color="off", delta_arrow="off", border=True)
s = result.scouted
st.caption(f"Base: {arch} pretrained on {data_name} classes {', '.join(s.source_classes)} ({source} source; "
           f"{s.source_val_acc:.1%} on held-out source samples). {len(s.scouts)} scouts in {s.scout_seconds:.1f} s"
           f"{' (reused from cache)' if result.scouts_cached else ''}. {result.device} · {result.seconds:.1f} s.")
ui.chart(figures.curves(out), "gtl_curves_chart")
ui.chart(figures.final(out), "gtl_final_chart")

st.subheader("What each scout learned")
st.dataframe({"scout": [f"scout {k + 1}" for k in range(len(s.tasks))],
              "its sub-problem": [" vs ".join(gtl.class_name(data_name, c) for c in t) for t in s.tasks]},
             hide_index=True, height=min(38 * len(s.tasks) + 40, 330), key="gtl_scout_table")
st.subheader("Where the scouts say weights should move")
if data_name == "expression":
    ui.chart(figures.groups(result.guide["body.fc1.weight"], gtl.gene_groups(),
                              "First layer's guide by gene programme (16 units the scouts moved most)"),
             "gtl_groups_chart")
ui.chart(figures.heatmaps(result.guide), "gtl_heatmaps_chart")
left, right = st.columns(2)
ui.chart(figures.histogram(result.guide), "gtl_hist_chart", left)
ui.chart(figures.layer_means(result.guide), "gtl_layers_chart", right)
buffer = io.BytesIO()
gtl.guide_file(result.guide, buffer)
st.download_button("Download the guide (.pt)", buffer.getvalue(), file_name=f"gtl_guide_{arch}.pt",
                   key="gtl_download", help="torch.load → {parameter name: guide tensor}, shaped like the parameter")

sweep_section()
