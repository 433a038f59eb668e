import streamlit as st

from app_pages import ui
from tl_core import backbones, contract, data, glossary, i18n
from tl_core.experiments import inside
from tl_core.i18n import N_, tr
from tl_core.plots import inside as figures

C = inside.InsideConfig


def _r(v: float) -> str:
    """A correlation as this language writes it (no correlation: nan, as before)."""
    return i18n.number(v, 2) if v == v else f"{v:.2f}"


link = ui.page(tr("Inside the model"), "in_",
               tr("The decks say early layers hold **general** knowledge (edges, colours) and deep layers "
                  "**task-specific** knowledge. Here that is measured, each view with a number behind it: **where** "
                  "three models look (Grad-CAM), **how the classes separate** in a stage's features (a 2-D map and a "
                  "linear probe), the probe at **every depth** for ImageNet-pretrained, random and fine-tuned weights "
                  "(Yosinski et al. 2014), and **which stages' representations changed** under fine-tuning (linear "
                  "CKA beside ‖w − w₀‖/‖w₀‖)."),
               settings=tr("Settings"), help=glossary.help_for("Grad-CAM", "linear probe", "CKA"))

with st.sidebar:
    name = ui.widget(C, "backbone", "in_")
    available, note = backbones.weights_status(name)
    if available:
        st.caption(tr("Weights: {note}", note=note))
    else:
        st.warning(tr("No pretrained weights here: {note}", note=note))
    dataset = ui.widget(C, "dataset", "in_", help="\n".join(f"- **{k}**: {tr(data.DATASETS[k])}"
                                                            for k in contract.spec(C, "dataset").choices))
    picked = ui.widgets(C, ("shots", "epochs", "image_size", "seeds", "cam", "embedding"), "in_")
    body = list(backbones.stage_names(name))[:-1]
    if st.session_state.get("in_stage", inside.LAST) not in [inside.LAST, *body]:
        st.session_state["in_stage"] = inside.LAST           # a stage of another backbone
    shown_in = i18n.language()   # the option's words in this run's language, whichever thread asks (AppTest too)

    def stage_words(s: str) -> str:
        with i18n.using(shown_in):
            return tr("last ({stage})", stage=body[-1]) if s == inside.LAST else s

    stage = ui.widget(C, "stage", "in_", options=[inside.LAST, *body], fmt=stage_words)

link.report()
if not available:
    st.stop()
cfg = C(backbone=name, dataset=dataset, stage=stage, **picked)
try:
    contract.validate(cfg)
except ValueError as err:
    st.warning(tr("{err}. Adjust the settings in the sidebar.", err=err))
    st.stop()

result = ui.run_button("in", tr("Train and look inside"), "inside", cfg,
                       results=st.session_state.setdefault("in_results", {}),
                       button_key="in_train", start=N_("Loading the backbone and the images…"))
if result is None:
    st.info(tr("Press **Train and look inside**: {backbone} is fine-tuned fully on {shots} {dataset} images per class "
               "({seeds} seeds; the first also as a feature extractor and from scratch, for Grad-CAM), then every "
               "stage's features are probed.", backbone=name, shots=cfg.shots, dataset=dataset, seeds=cfg.seeds))
    st.stop()
ui.verdict(result.verdict())
out = result.to_json()
st.caption(tr("Fine-tuned validation accuracy {acc} ± {std} · probes fitted on {probe_shots} images per class, scored "
              "on {val} held-out ones · {device} · {s} s", acc=i18n.percent(out["val_acc"]),
              std=i18n.percent(out["val_acc_std"]), probe_shots=cfg.probe_shots, val=cfg.val_per_class,
              device=result.device, s=f"{result.seconds:.0f}"))

st.subheader(tr("1 · Where it looks"))
cam = out["cam"]
if result.cam_images is not None and len(result.cam_images):
    ui.chart(figures.cam_grid(result.cam_images, result.cam_maps, result.cam_pred, result.cam_true, out["classes"],
                              cam), "in_cam_chart")
    agree = cam["agreement_with_finetuned"]
    st.caption(tr("Each model's map is for the class it predicted. Map agreement with the fine-tuned model (mean "
                  "Pearson correlation over these images): feature extraction {feature}, scratch {scratch}. Grad-CAM "
                  "reads {stage} ({side} at {px} px); larger images give finer maps.",
                  feature=_r(agree["feature_extraction"]), scratch=_r(agree["scratch"]),
                  stage=cam["stage"], side=f"{cam['map_size'][0]}×{cam['map_size'][1]}", px=cam["image_size"]))
else:
    st.info(cam["note"] if "note" in cam else tr("No Grad-CAM in this run."))

st.subheader(tr("2 · How the classes separate"))
ui.chart(figures.embedding_map(out["embedding"], out["classes"]), "in_map_chart")
st.caption(tr("Each point is one validation image, coloured by its class; the number is a linear probe's accuracy on "
              "the full features (the 2-D picture can hide or exaggerate what a probe finds). Change the stage or "
              "the method (PCA or UMAP) in the sidebar."))

st.subheader(tr("3 · General → specific, in numbers"))
ui.chart(figures.probe_by_depth(out), "in_probe_chart")
gaps = ", ".join(f"{s['stage']} {i18n.number(s['pretrained_vs_random_gap'] * 100, 0, signed=True)}"
                 for s in out["by_stage"] if s["pretrained_vs_random_gap"] is not None)
st.caption(tr("Pretrained minus random probe accuracy per stage, in points: {gaps}. Checked at the defaults on "
              "textures and on digits (3 seeds each): in the late half of the stages pretrained features beat random "
              "ones by the claims rule, in the early half they tie: random convolutions still keep what the pixels "
              "say, depth is where pretraining pays (microscopy is easy enough for both to tie).", gaps=gaps))

st.subheader(tr("4 · Which representations changed"))
ui.chart(figures.cka_by_stage(out), "in_cka_chart")
st.caption(tr("Linear CKA compares the pretrained and the fine-tuned model's features of the same held-out images "
              "(1 = the same up to a rotation and scale). Checked at the defaults on textures, digits and "
              "microscopy: fine-tuning changed the late stages' representation more than the early ones' by the "
              "claims rule, while the weights themselves moved by a few percent at most. Late stages here: "
              "{stages}.", stages=", ".join(out["late_stages"])))
