import streamlit as st

from app_pages import ui
from tl_core import backbones, contract, data
from tl_core.experiments import inside
from tl_core.plots import inside as figures

C = inside.InsideConfig

link = ui.page("Inside the model", "in_",
               "The decks say early layers hold **general** knowledge (edges, colours) and deep layers "
               "**task-specific** knowledge. Here that is measured, each view with a number behind it: **where** three "
               "models look (Grad-CAM), **how the classes separate** in a stage's features (a 2-D map and a linear "
               "probe), the probe at **every depth** for ImageNet-pretrained, random and fine-tuned weights (Yosinski "
               "et al. 2014), and **which stages' representations changed** under fine-tuning (linear CKA beside "
               "‖w − w₀‖/‖w₀‖).",
               settings="Settings")

with st.sidebar:
    name = ui.widget(C, "backbone", "in_")
    available, note = backbones.weights_status(name)
    (st.caption if available else st.warning)(("Weights: " if available else "No pretrained weights here: ") + note)
    dataset = ui.widget(C, "dataset", "in_", help="\n".join(f"- **{k}**: {data.DATASETS[k]}"
                                                            for k in contract.spec(C, "dataset").choices))
    picked = ui.widgets(C, ("shots", "epochs", "image_size", "seeds", "cam", "embedding"), "in_")
    body = list(backbones.stage_names(name))[:-1]
    if st.session_state.get("in_stage", inside.LAST) not in [inside.LAST, *body]:
        st.session_state["in_stage"] = inside.LAST           # a stage of another backbone
    stage = ui.widget(C, "stage", "in_", options=[inside.LAST, *body],
                      fmt=lambda s: f"last ({body[-1]})" if s == inside.LAST else s)

link.report()
if not available:
    st.stop()
cfg = C(backbone=name, dataset=dataset, stage=stage, **picked)
try:
    contract.validate(cfg)
except ValueError as err:
    st.warning(f"{err}. Adjust the settings in the sidebar.")
    st.stop()

result = ui.run_button("in", "Train and look inside", "inside", cfg,
                       results=st.session_state.setdefault("in_results", {}),
                       button_key="in_train", start="Loading the backbone and the images…")
if result is None:
    st.info(f"Press **Train and look inside**: {name} is fine-tuned fully on {cfg.shots} {dataset} images per class "
            f"({cfg.seeds} seeds; the first also as a feature extractor and from scratch, for Grad-CAM), then every "
            f"stage's features are probed.")
    st.stop()
ui.verdict(result.verdict())
out = result.to_json()
st.caption(f"Fine-tuned validation accuracy {out['val_acc']:.1%} ± {out['val_acc_std']:.1%} · probes fitted on "
           f"{cfg.probe_shots} images per class, scored on {cfg.val_per_class} held-out ones · {result.device} · "
           f"{result.seconds:.0f} s")

st.subheader("1 · Where it looks")
cam = out["cam"]
if result.cam_images is not None and len(result.cam_images):
    ui.chart(figures.cam_grid(result.cam_images, result.cam_maps, result.cam_pred, result.cam_true, out["classes"],
                              cam), "in_cam_chart")
    agree = cam["agreement_with_finetuned"]
    st.caption(f"Each model's map is for the class it predicted. Map agreement with the fine-tuned model (mean Pearson "
               f"correlation over these images): feature extraction {agree['feature_extraction']:.2f}, scratch "
               f"{agree['scratch']:.2f}. Grad-CAM reads {cam['stage']} ({cam['map_size'][0]}×{cam['map_size'][1]} at "
               f"{cam['image_size']} px); larger images give finer maps.")
else:
    st.info(cam.get("note", "No Grad-CAM in this run."))

st.subheader("2 · How the classes separate")
ui.chart(figures.embedding_map(out["embedding"], out["classes"]), "in_map_chart")
st.caption("Each point is one validation image, coloured by its class; the number is a linear probe's accuracy on "
           "the full features (the 2-D picture can hide or exaggerate what a probe finds). Change the stage or the "
           "method (PCA or UMAP) in the sidebar.")

st.subheader("3 · General → specific, in numbers")
ui.chart(figures.probe_by_depth(out), "in_probe_chart")
gaps = ", ".join(f"{s['stage']} {s['pretrained_vs_random_gap'] * 100:+.0f}" for s in out["by_stage"]
                 if s["pretrained_vs_random_gap"] is not None)
st.caption(f"Pretrained minus random probe accuracy per stage, in points: {gaps}. Checked at the defaults on textures "
           "and on digits (3 seeds each): in the late half of the stages pretrained features beat random ones by the "
           "claims rule, in the early half they tie: random convolutions still keep what the pixels say, depth is "
           "where pretraining pays (microscopy is easy enough for both to tie).")

st.subheader("4 · Which representations changed")
ui.chart(figures.cka_by_stage(out), "in_cka_chart")
st.caption("Linear CKA compares the pretrained and the fine-tuned model's features of the same held-out images "
           "(1 = the same up to a rotation and scale). Checked at the defaults on textures, digits and microscopy: "
           "fine-tuning changed the late stages' representation more than the early ones' by the claims rule, while "
           f"the weights themselves moved by a few percent at most. Late stages here: {', '.join(out['late_stages'])}.")
