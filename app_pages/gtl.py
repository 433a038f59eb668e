import io

import streamlit as st

from tl_core import gtl, plots

st.title("Guided Transfer Learning")
st.markdown(
    "Pretraining can learn the weights *and* how far each weight should move later (Nikolić et al., 2023). "
    "**1** Pretrain a base network on the source digits. **2** *Scouts*: copies of the base, each fine-tuned "
    "on an easier sub-problem (a few source digits); all scouts train at once. **3** The *guide* of a weight is "
    "how far the scouts moved it (mean squared change), normalised per layer. **4** Fine-tune on the few-shot "
    "target digits with every update scaled by the guide: 0 = frozen, 1 = free.")

with st.sidebar:
    st.header("GTL settings")
    arch = st.radio("Base network", list(gtl.ARCHS), key="gtl_arch", horizontal=True, help="\n".join(
        f"- **{k}**: {v}" for k, v in gtl.ARCHS.items()))
    target = st.multiselect("Target digits (held out of pretraining)", list(gtl.DIGITS), default=["7", "8", "9"],
                            key="gtl_target")
    scouts = st.slider("Scouts", 2, 64, 16, key="gtl_scouts")
    scout_classes = st.slider("Digits per scout sub-problem", 2, 8, 3, key="gtl_scout_classes")
    scout_epochs = st.slider("Scout epochs", 1, 30, 5, key="gtl_scout_epochs")
    focus = st.selectbox("Focus (per-layer normalisation)", list(gtl.FOCUS), key="gtl_focus",
                         format_func=lambda k: gtl.FOCUS[k])
    temperature = st.select_slider("Temperature (1 = as is, higher = warmer)", [0.25, 0.5, 1.0, 2.0, 4.0],
                                   value=1.0, key="gtl_temperature")
    free = st.select_slider("Binary: free top fraction (0 = off)", [0.0, 0.05, 0.1, 0.25, 0.5], value=0.0,
                            key="gtl_free")
    shots = st.select_slider("Target images per digit (shots)", [1, 2, 5, 10, 20], value=1, key="gtl_shots")
    seeds = st.slider("Seeds (for the band)", 2, 10, 5, key="gtl_seeds")
    epochs = st.slider("Fine-tuning epochs", 10, 200, 60, step=10, key="gtl_epochs")
    st.caption("Changing only target settings (shots, focus, seeds, …) reuses the base and the scouts.")

results = st.session_state.setdefault("gtl_results", {})
cfg = gtl.GTLConfig(arch=arch, target_classes=tuple(sorted(target)), scouts=scouts, scout_classes=scout_classes,
                    scout_epochs=scout_epochs, focus=focus, temperature=temperature, free_fraction=free,
                    shots=shots, seeds=seeds, epochs=epochs)
try:
    cfg.validate()
except ValueError as err:
    st.warning(f"{err}. Adjust the settings in the sidebar.")
    st.stop()
if st.button("Run GTL", type="primary", key="gtl_run", disabled=cfg in results):
    bar = st.progress(0.0, text="Preparing…")
    try:
        results[cfg] = gtl.run(cfg, progress=lambda f, m: bar.progress(min(f, 1.0), text=m))
    except ValueError as err:
        st.error(str(err))
    bar.empty()

result = results.get(cfg)
if result is None:
    st.info("Choose the settings in the sidebar and press **Run GTL** (about 10 s on a laptop CPU). Runs "
            "already made with the same settings are shown at once.")
    st.stop()
out = result.to_json()
kind, sentence = gtl.verdict(result)
{"helped": st.success, "hurt": st.error}.get(kind, st.info)(sentence)
for col, c in zip(st.columns(4), gtl.CONDITIONS):
    col.metric(plots.GTL_LABELS[c], f"{out[c]['val_acc_mean']:.1%}", f"± {out[c]['val_acc_std']:.1%} over {seeds} seeds",
               delta_color="off", delta_arrow="off", border=True)
s = result.scouted
st.caption(f"Base: {arch} pretrained on digits {', '.join(s.source_classes)} ({s.source_val_acc:.1%} on held-out "
           f"source images). {len(s.scouts)} scouts in {s.scout_seconds:.1f} s"
           f"{' (reused from cache)' if result.scouts_cached else ''}. {result.device} · {result.seconds:.1f} s.")
st.plotly_chart(plots.gtl_curves(result), key="gtl_curves_chart")
st.plotly_chart(plots.gtl_final(result), key="gtl_final_chart")

st.subheader("Where the scouts say weights should move")
st.plotly_chart(plots.gtl_heatmaps(result.guide), key="gtl_heatmaps_chart")
left, right = st.columns(2)
left.plotly_chart(plots.gtl_histogram(result.guide), key="gtl_hist_chart")
right.plotly_chart(plots.gtl_layer_means(result.guide), key="gtl_layers_chart")
buffer = io.BytesIO()
gtl.guide_file(result.guide, buffer)
st.download_button("Download the guide (.pt)", buffer.getvalue(), file_name=f"gtl_guide_{arch}.pt",
                   key="gtl_download", help="torch.load → {parameter name: guide tensor}, shaped like the parameter")
