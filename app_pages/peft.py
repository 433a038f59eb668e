import streamlit as st

from app_pages import ui
from tl_core import contract, data, glossary, i18n, peft_methods, text
from tl_core.experiments import peft
from tl_core.i18n import N_, tr
from tl_core.plots import peft as figures

P = peft.PeftConfig

link = ui.page(tr("Parameter-efficient fine-tuning"), "peft_",
               tr("Fine-tuning at scale means training **1% of the weights** or less. **LoRA** freezes every weight "
                  "matrix W and learns a low-rank update beside it, W + (α/r)·B·A with B·A of rank r (Hugging Face "
                  "`peft`); **BitFit** trains only the biases. Both beside **head only** (feature extraction), the "
                  "**last stages** (partial), **full** fine-tuning and **scratch**, over seeds: the accuracy each "
                  "reaches, what it trains, saves and keeps in Adam's state, and what it **forgets** — the "
                  "fine-tuned body under the *original* ImageNet head against the original model, on images no "
                  "method trained on (for text: sentence embeddings before vs after)."),
               settings=tr("PEFT settings"))

with st.sidebar:
    modality = ui.widget(P, "modality", "peft_", captions=[tr(v) for v in peft_methods.MODALITIES.values()])
    if modality == "image":
        picked = {"dataset": ui.widget(P, "dataset", "peft_", options=list(data.DATASETS), value="textures",
                                       help="\n".join(f"- **{k}**: {tr(v)}" for k, v in data.DATASETS.items())),
                  "image_size": ui.widget(P, "image_size", "peft_")}
    else:
        topics = text.topics()
        picked = {"topics": ui.widget(P, "topics", "peft_", options=list(topics),
                                      fmt=lambda t: f"{t} ({topics[t]})")}
    picked |= ui.widgets(P, ("methods", "ranks", "scope", "shots", "epochs", "seeds"), "peft_",
                         scope={"captions": [tr(v) for v in peft_methods.SCOPES.values()]})
    st.caption(tr("Full fine-tuning and scratch train every weight: the slow part on a CPU. Head only, LoRA and "
                  "BitFit on the last stages run the frozen stages once."))
rates = ("lr", "adapter_lr", "full_lr") if modality == "image" else ("lr", "adapter_lr", "encoder_lr", "layers")
more = ui.more_settings(P, (*rates, "lora_scale", "batch_size", "val_per_class",
                            *(("probe_size",) if modality == "image" else ())), "peft_")

link.report()
cfg = P(modality=modality, **picked, **more)
try:
    contract.validate(cfg)
except ValueError as err:
    st.warning(tr("{err}. Adjust the settings in the sidebar.", err=err))
    st.stop()
st.caption(tr("LoRA's targets: {targets}. BitFit: the biases of the same stages (BatchNorm shifts; its statistics "
              "stay as pretrained).", targets=peft.targets_text(cfg)) if modality == "image" else
           tr("LoRA's targets: {targets}. BitFit: the biases of the same stages.", targets=peft.targets_text(cfg)),
           help=glossary.help_for("LoRA", "BitFit", "forgetting", "top-1 agreement", "CKA"))
result = ui.run_button("peft", tr("Train"), "peft", cfg, results=st.session_state.setdefault("peft_results", {}),
                       button_key="peft_train",
                       start=N_("Preparing data, the pretrained model and the frozen stages…"))
if result is None:
    st.info(tr("Choose methods and ranks in the sidebar and press **Train** (fewer seeds or methods are faster)."))
    st.stop()
ui.verdict(result.verdict())
out = result.to_json()
st.dataframe(peft.table(out), hide_index=True, key="peft_table")
st.caption(tr("{device} · {s} s (frozen stages' features: {cached} s, once for every method and seed) · saved: the "
              "adapter or the trained tensors alone, serialised with safetensors, of the full state_dict · Adam "
              "state: its tensors measured after training", device=result.device, s=i18n.number(result.seconds, 1),
              cached=i18n.number(result.cached_seconds, 1)))
ui.chart(figures.accuracy_vs_forgetting(out), "peft_forgetting")
ui.chart(figures.accuracy_vs_fraction(out), "peft_fraction")
if out["merge_max_abs_diff"] is not None:
    st.success(tr("LoRA merged into the weights (`merge_and_unload()`, a plain {model} model) predicts as the "
                  "adapter does: the largest difference of any probability is {merged}. The adapter saved alone "
                  "loaded back into a fresh pretrained backbone: {reloaded}.",
                  model="timm" if modality == "image" else "BERT", merged=f"{out['merge_max_abs_diff']:.1e}",
                  reloaded=f"{out['reload_max_abs_diff']:.1e}"))
    cols = st.columns(max(len(result.adapters()), 1))
    for col, (condition, raw) in zip(cols, result.adapters().items()):
        col.download_button(tr("Download the {method} adapter ({kb} kB)", method=peft.label(condition),
                               kb=f"{len(raw) / 1024:.0f}"), raw,
                            f"{cfg.backbone}_{cfg.dataset}_{condition}.safetensors", key=f"peft_dl_{condition}",
                            on_click="ignore", icon=":material/download:")
    st.caption(tr("Open an adapter file in the **State-dict workshop** to see its keys, shapes and size: LoRA's A "
                  "and B matrices and the head, nothing else."))
