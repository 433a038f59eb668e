import io

import streamlit as st

from app_pages import ui
from tl_core import contract, plots
from tl_core.experiments import gtl

D = gtl.GTLConfig()
spec = lambda name: contract.spec(gtl.GTLConfig, name)  # noqa: E731 - a setting's choices and help

link = ui.page("Guided Transfer Learning", "gtl_",
               "Pretraining can learn the weights *and* how far each weight should move later (Nikolić et al., 2023). "
               "**1** Pretrain a base network on the source digits. **2** *Scouts*: copies of the base, each fine-tuned "
               "on an easier sub-problem (a few source digits); all scouts train at once. **3** The *guide* of a weight is "
               "how far the scouts moved it (mean squared change), normalised per layer. **4** Fine-tune on the few-shot "
               "target digits with every update scaled by the guide: 0 = frozen, 1 = free.", settings="GTL settings")

with st.sidebar:
    arch = st.radio("Base network", spec("arch").choices, key="gtl_arch", bind=ui.URL, horizontal=True,
                    help="\n".join(f"- **{k}**: {v}" for k, v in spec("arch").choice_help.items()))
    target = st.multiselect("Target digits (held out of pretraining)", list(gtl.DIGITS), default=list(D.target_classes),
                            key="gtl_target", bind=ui.URL, help=spec("target_classes").help)
    scouts = st.slider("Scouts", 2, 64, D.scouts, key="gtl_scouts", bind=ui.URL, help=spec("scouts").help)
    scout_classes = st.slider("Digits per scout sub-problem", 2, 8, D.scout_classes, key="gtl_scout_classes",
                              bind=ui.URL, help=spec("scout_classes").help)
    scout_epochs = st.slider("Scout epochs", 1, 30, D.scout_epochs, key="gtl_scout_epochs", bind=ui.URL,
                             help=spec("scout_epochs").help)
    focus = st.radio("Focus (per-layer normalisation)", spec("focus").choices, key="gtl_focus", bind=ui.URL,
                     captions=list(spec("focus").choice_help.values()))
    temperature = st.select_slider("Temperature (1 = as is, higher = warmer)", [0.25, 0.5, 1.0, 2.0, 4.0],
                                   value=D.temperature, key="gtl_temperature", bind=ui.URL,
                                   help=spec("temperature").help)
    free = st.select_slider("Binary: free top fraction (0 = off)", [0.0, 0.05, 0.1, 0.25, 0.5], value=D.free_fraction,
                            key="gtl_free", bind=ui.URL, help=spec("free_fraction").help)
    shots = st.select_slider("Target images per digit (shots)", [1, 2, 5, 10, 20], value=D.shots, key="gtl_shots",
                             bind=ui.URL, help=spec("shots").help)
    seeds = st.slider("Seeds (for the band)", 2, 10, D.seeds, key="gtl_seeds", bind=ui.URL, help=spec("seeds").help)
    epochs = st.slider("Fine-tuning epochs", 10, 200, D.epochs, step=10, key="gtl_epochs", bind=ui.URL,
                       help=spec("epochs").help)
    st.caption("Changing only target settings (shots, focus, seeds, …) reuses the base and the scouts.")

results = st.session_state.setdefault("gtl_results", {})
link.report()
cfg = gtl.GTLConfig(arch=arch, target_classes=tuple(sorted(target)), scouts=scouts, scout_classes=scout_classes,
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
    st.stop()
out = result.to_json()
ui.verdict(result.verdict())
for col, c in zip(st.columns(4), gtl.CONDITIONS):
    col.metric(plots.GTL_LABELS[c], f"{out[c]['val_acc_mean']:.1%}", f"± {out[c]['val_acc_std']:.1%} over {seeds} seeds",
               delta_color="off", delta_arrow="off", border=True)
s = result.scouted
st.caption(f"Base: {arch} pretrained on digits {', '.join(s.source_classes)} ({s.source_val_acc:.1%} on held-out "
           f"source images). {len(s.scouts)} scouts in {s.scout_seconds:.1f} s"
           f"{' (reused from cache)' if result.scouts_cached else ''}. {result.device} · {result.seconds:.1f} s.")
ui.chart(plots.gtl_curves(result), "gtl_curves_chart")
ui.chart(plots.gtl_final(result), "gtl_final_chart")

st.subheader("Where the scouts say weights should move")
ui.chart(plots.gtl_heatmaps(result.guide), "gtl_heatmaps_chart")
left, right = st.columns(2)
ui.chart(plots.gtl_histogram(result.guide), "gtl_hist_chart", left)
ui.chart(plots.gtl_layer_means(result.guide), "gtl_layers_chart", right)
buffer = io.BytesIO()
gtl.guide_file(result.guide, buffer)
st.download_button("Download the guide (.pt)", buffer.getvalue(), file_name=f"gtl_guide_{arch}.pt",
                   key="gtl_download", help="torch.load → {parameter name: guide tensor}, shaped like the parameter")
