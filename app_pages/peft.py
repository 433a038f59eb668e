import streamlit as st

from app_pages import ui
from tl_core import contract, data, glossary, peft_methods, text
from tl_core.experiments import peft
from tl_core.plots import peft as figures

P = peft.PeftConfig

link = ui.page("Parameter-efficient fine-tuning", "peft_",
               "Fine-tuning at scale means training **1% of the weights** or less. **LoRA** freezes every weight "
               "matrix W and learns a low-rank update beside it, W + (α/r)·B·A with B·A of rank r (Hugging Face "
               "`peft`); **BitFit** trains only the biases. Both beside **head only** (feature extraction), the "
               "**last stages** (partial), **full** fine-tuning and **scratch**, over seeds: the accuracy each "
               "reaches, what it trains, saves and keeps in Adam's state, and what it **forgets** — the fine-tuned "
               "body under the *original* ImageNet head against the original model, on images no method trained on "
               "(for text: sentence embeddings before vs after).", settings="PEFT settings")

with st.sidebar:
    modality = ui.widget(P, "modality", "peft_", captions=list(peft_methods.MODALITIES.values()))
    if modality == "image":
        picked = {"dataset": ui.widget(P, "dataset", "peft_", options=list(data.DATASETS), value="textures",
                                       help="\n".join(f"- **{k}**: {v}" for k, v in data.DATASETS.items())),
                  "image_size": ui.widget(P, "image_size", "peft_")}
    else:
        topics = text.topics()
        picked = {"topics": ui.widget(P, "topics", "peft_", options=list(topics),
                                      fmt=lambda t: f"{t} ({topics[t]})")}
    picked |= ui.widgets(P, ("methods", "ranks", "scope", "shots", "epochs", "seeds"), "peft_",
                         scope={"captions": list(peft_methods.SCOPES.values())})
    st.caption("Full fine-tuning and scratch train every weight: the slow part on a CPU. Head only, LoRA and BitFit "
               "on the last stages run the frozen stages once.")
rates = ("lr", "adapter_lr", "full_lr") if modality == "image" else ("lr", "adapter_lr", "encoder_lr", "layers")
more = ui.more_settings(P, (*rates, "lora_scale", "batch_size", "val_per_class",
                            *(("probe_size",) if modality == "image" else ())), "peft_")

link.report()
cfg = P(modality=modality, **picked, **more)
try:
    contract.validate(cfg)
except ValueError as err:
    st.warning(f"{err}. Adjust the settings in the sidebar.")
    st.stop()
st.caption(f"LoRA's targets: {peft.targets_text(cfg)}. BitFit: the biases of the same stages"
           f"{' (BatchNorm shifts; its statistics stay as pretrained)' if modality == 'image' else ''}.",
           help=glossary.help_for("LoRA", "BitFit", "forgetting", "top-1 agreement", "CKA"))
result = ui.run_button("peft", "Train", "peft", cfg, results=st.session_state.setdefault("peft_results", {}),
                       button_key="peft_train", start="Preparing data, the pretrained model and the frozen stages…")
if result is None:
    st.info("Choose methods and ranks in the sidebar and press **Train** (fewer seeds or methods are faster).")
    st.stop()
ui.verdict(result.verdict())
out = result.to_json()
st.dataframe(peft.table(out), hide_index=True, key="peft_table")
st.caption(f"{result.device} · {result.seconds:.1f} s (frozen stages' features: {result.cached_seconds:.1f} s, once "
           f"for every method and seed) · saved: the adapter or the trained tensors alone, serialised with "
           f"safetensors, of the full state_dict · Adam state: its tensors measured after training")
ui.chart(figures.accuracy_vs_forgetting(out), "peft_forgetting")
ui.chart(figures.accuracy_vs_fraction(out), "peft_fraction")
if out["merge_max_abs_diff"] is not None:
    st.success(f"LoRA merged into the weights (`merge_and_unload()`, a plain "
               f"{'timm' if modality == 'image' else 'BERT'} model) predicts as the adapter does: the largest "
               f"difference of any probability is {out['merge_max_abs_diff']:.1e}. The adapter saved alone loaded "
               f"back into a fresh pretrained backbone: {out['reload_max_abs_diff']:.1e}.")
    cols = st.columns(max(len(result.adapters()), 1))
    for col, (condition, raw) in zip(cols, result.adapters().items()):
        col.download_button(f"Download the {peft.label(condition)} adapter ({len(raw) / 1024:.0f} kB)", raw,
                            f"{cfg.backbone}_{cfg.dataset}_{condition}.safetensors", key=f"peft_dl_{condition}",
                            on_click="ignore", icon=":material/download:")
    st.caption("Open an adapter file in the **State-dict workshop** to see its keys, shapes and size: LoRA's A and B "
               "matrices and the head, nothing else.")
