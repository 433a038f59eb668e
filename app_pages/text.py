import streamlit as st

from app_pages import ui
from tl_core import backbones, contract, i18n, names, text
from tl_core.experiments import text as exp
from tl_core.i18n import N_, tr
from tl_core.plots import text as figures

C = exp.TextConfig
# the tokenizer's example: English, as the encoder's pretraining and the topics' sentences are
EXAMPLE = "Transfer learning reuses what a model has already learnt."

link = ui.page(tr("Transfer for text"), "text_",
               tr("Language models transfer too. **all-MiniLM-L6-v2** (a 6-layer BERT-family encoder, 22 M "
                  "parameters) was pretrained on masked-word prediction and sentence pairs; here it learns to tell "
                  "*topics* apart from a few labelled sentences each. Compare **feature extraction** (encoder frozen, "
                  "a new linear head on its sentence embeddings, computed once), **fine-tuning** the last k layers or "
                  "all of them, and the **same model from scratch** (random weights, the tokenizer kept)."),
               settings=tr("Text settings"))

with st.sidebar:
    topics = text.topics()
    picked = ui.widgets(C, ("classes", "conditions", "layers", "shots", "seeds", "epochs", "lr", "encoder_lr",
                            "max_length"), "text_",
                        classes={"options": list(topics),   # the topic's name itself: what a link carries
                                 "help": tr("chatterbot-corpus conversation lines labelled by topic; sentences per "
                                            "topic: {counts}",
                                            counts=", ".join(f"{t} {n}" for t, n in topics.items()))})
    st.caption(tr("Fine-tuning and scratch train 22 M weights: the slow part on a CPU. Feature extraction trains "
                  "only the head, on embeddings computed once."))
picked.update(ui.more_settings(C, ("val_per_class",), "text_"))

link.report()
cfg = C(**picked)

st.subheader(tr("What the tokenizer does"))
left, right = st.columns([3, 2])
sentence = left.text_area(tr("A sentence"), value=EXAMPLE, key="text_sentence", height=90,
                          max_chars=text.MAX_COUNT_CHARS,
                          help=tr("Word pieces and ids; the model reads at most {n} tokens", n=text.MAX_TOKENS))
upload = right.file_uploader(tr("…or a .txt file (its first {kb} KB are read)", kb=text.MAX_UPLOAD_BYTES // 1024),
                             type=["txt"], key="text_upload")
try:
    if upload is not None:
        # decoded once per upload (a prefix of MAX_UPLOAD_BYTES), not on every rerun; tokens are cached by content
        kept = st.session_state.get("text_upload_read")
        if kept is None or kept[0] != upload.file_id:
            try:
                kept = (upload.file_id, *text.read_upload(upload.getvalue(), upload.name), "")
            except ValueError as err:
                kept = (upload.file_id, "", "", str(err))
            st.session_state["text_upload_read"] = kept
        if kept[3]:
            raise ValueError(kept[3])
        sentence = kept[1]
        if kept[2]:
            st.info(kept[2])
    tok = text.tokens(sentence)
except ValueError as err:
    st.warning(f"{err}.")
    tok = None
if tok is not None:
    if tok.truncated:
        fill = dict(n=i18n.number(tok.total, 0), most=text.MAX_TOKENS)
        st.warning(tr("This text makes {n} tokens; the model reads at most {most}, so it is cut to the first {most} "
                      "here.", **fill) if tok.counted_all else
                   tr("This text makes {n} or more tokens; the model reads at most {most}, so it is cut to the first "
                      "{most} here.", **fill))
    st.dataframe({tr("word piece"): tok.pieces[:64], "id": tok.ids[:64]}, height=150, hide_index=False)
    st.caption(tr("{n} tokens (the first 64 shown): [CLS] starts every sentence, [SEP] ends it, ## marks a piece that "
                  "continues a word.", n=len(tok.ids)) if len(tok.ids) > 64 else
               tr("{n} tokens: [CLS] starts every sentence, [SEP] ends it, ## marks a piece that continues a word.",
                  n=len(tok.ids)))

st.subheader(tr("Feature extraction vs fine-tuning vs scratch"))
try:
    contract.validate(cfg)
except ValueError as err:
    st.warning(tr("{err}. Adjust the settings in the sidebar.", err=err))
    st.stop()
result = ui.run_button("text", tr("Train"), "text", cfg, results=st.session_state.setdefault("text_results", {}),
                       button_key="text_train", start=N_("Reading the encoder and the sentences…"))
if result is None:
    st.info(tr("Choose topics and conditions in the sidebar and press **Train** (feature extraction alone is the "
               "fastest condition)."))
    st.stop()
ui.verdict(result.verdict())
out = result.to_json()
for col, (c, s) in zip(st.columns(len(out["conditions"])), out["conditions"].items()):
    col.metric(names.shown(s["label"], exp.LABELS, c, k=out["config"]["layers"]), i18n.percent(s["val_acc"]),
               tr("± {std} over {n} seeds", std=i18n.percent(s["val_acc_std"]), n=len(s["val_acc_seeds"])),
               delta_color="off", delta_arrow="off", border=True)
st.caption(tr("{device} · {s} s (frozen stages' features: {cached} s, computed once for every seed) · stages: "
              "{stages}", device=result.device, s=i18n.number(result.seconds, 1),
              cached=i18n.number(result.cached_seconds, 1), stages=", ".join(result.stage_names)))
ui.chart(figures.curves(out), "text_curves")

st.subheader(tr("Nearest training sentences, before and after fine-tuning"))
if tok is not None and result.train_texts:
    tuned = result.tuned_model()
    cols = st.columns(2)
    for col, (title, model) in zip(cols, [(tr("pretrained encoder"), backbones.pretrained_text_model()),
                                          (tr("after fine-tuning ({condition}, seed {seed})",
                                              condition=names.shown(result.config.label(result.tuned[0]), exp.LABELS,
                                                                    result.tuned[0], k=result.config.layers),
                                              seed=result.config.seed)
                                           if tuned else "", tuned)]):
        if model is None:
            col.info(tr("Add **{last_k}** or **{full}** to the conditions to see the embeddings after fine-tuning.",
                        last_k=names.condition("last_k"), full=names.condition("full")))
            continue
        col.markdown(f"**{title}**")
        col.dataframe(text.nearest(model, sentence, result.train_texts, result.train_labels), hide_index=True,
                      column_config={"similarity": st.column_config.NumberColumn(format="%.2f")})

st.subheader(tr("Shots sweep"))
sweep_shots = ui.widget(exp.TextSweepConfig, "shots", "text_sweep_", st)
link.report()  # again: the sweep's settings are drawn only once the page has a result
sweep_cfg = exp.TextSweepConfig(**{**contract.record(cfg), "classes": cfg.classes, "conditions": cfg.conditions,
                                   "shots": sweep_shots})
sw = ui.run_button("text_sweep", tr("Run sweep"), "text-sweep", sweep_cfg,
                   results=st.session_state.setdefault("text_sweeps", {}), button_key="text_sweep",
                   start=N_("Sweeping…"), disabled=not sweep_shots)
if sw is not None:
    ui.verdict(sw.verdict())
    labels = {c: sw.config.label(c) for c in sw.config.conditions}
    ui.chart(figures.shots_sweep(sw.to_json(), labels), "text_sweep_plot")
    st.caption(tr("{n} runs in {s} s on {device}.", n=len(sw.runs), s=i18n.number(sw.seconds, 1), device=sw.device))
