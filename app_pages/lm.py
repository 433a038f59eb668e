import streamlit as st

from app_pages import ui
from tl_core import causal_lm, contract, i18n, names, text
from tl_core.experiments import lm as exp
from tl_core.experiments import lm_pretrain as pre
from tl_core.i18n import N_, tr
from tl_core.plots import lm as figures

link = ui.page(tr("Language models"), "lm_",
               tr("Today's language models are the prime example of transfer learning: **pretrained** on huge "
                  "amounts of unlabelled text to predict the next word, then **adjusted** for a task. **SmolLM2-135M** "
                  "(134 M weights, 30 layers) is such a model, here offline. See what pretraining taught it, watch a "
                  "small GPT pretrain, then adjust the real one for a task at a few examples per topic."),
               settings=tr("Task settings"))
missing = causal_lm.available()
# what each side of the next-word comparison is called: its metric and its continuation
SIDES = {"pretrained": (N_("Perplexity on held-out text, pretrained"),
                        N_("**Continues (pretrained):** {prompt}**{continuation}**")),
         "random": (N_("Perplexity on held-out text, random weights"),
                    N_("**Continues (random weights):** {prompt}**{continuation}**"))}

with st.sidebar:
    topics = text.topics()
    picked = ui.widgets(exp.LMConfig, ("classes", "methods", "shots", "layers", "rank", "seeds", "epochs"), "lm_",
                        classes={"options": list(topics), "fmt": lambda t: f"{t} ({topics[t]})"},
                        # one checkbox per method, in words (the link keeps the keys, as the lecture's does)
                        methods={"help": "; ".join(f"{names.condition(m)}: {tr(exp.SHORT[m])}" for m in exp.SHORT)})
    st.header(tr("The small GPT"))
    picked_pre = ui.widgets(pre.PretrainConfig, ("steps", "tune", "seeds"), "lm_pre_")
picked.update(ui.more_settings(exp.LMConfig, ("val_per_class", "max_length", "lr", "layer_lr", "lora_lr"), "lm_"))
link.report()

st.header(tr("1 · What pretraining taught it"))
if missing:
    st.warning(tr("The pretrained model is not installed here: {why}.", why=missing))
else:
    if not causal_lm.converted():
        st.caption(tr("The first run converts the model's 4-bit file once; later runs read the converted weights."))
    prompt = st.text_input(tr("Prompt"), exp.PROMPT, key="lm_next_prompt", max_chars=causal_lm.CONTEXT * 8,
                           help=tr("The model reads it and gives the next token's probabilities"))
    next_cfg = exp.NextConfig(prompt=prompt)
    try:
        contract.validate(next_cfg)
    except ValueError as err:
        st.warning(f"{str(err)[:1].upper()}{str(err)[1:]}.")
        next_cfg = None
    if next_cfg is not None:
        nxt = ui.run_button("lm_next", tr("Next word"), "lm-next", next_cfg,
                            results=st.session_state.setdefault("lm_next_results", {}), button_key="lm_next_go",
                            start=N_("Reading the prompt…"))
        if nxt is None:
            st.info(tr("Press **Next word**: the pretrained model and the same architecture with random weights "
                       "read the prompt (a few seconds)."))
        else:
            out = nxt.to_json()
            ui.verdict(nxt.verdict())
            ui.chart(figures.next_word(out), "lm_next_chart")
            for col, kind in zip(st.columns(2), ("pretrained", "random")):
                metric, continues = SIDES[kind]
                col.metric(tr(metric), i18n.number(out["perplexity"][kind], 1), border=True)
                col.markdown(tr(continues, prompt=out["next_word"]["prompt"], continuation=out["continuation"][kind]))

st.header(tr("2 · Pretraining you can watch"))
st.markdown(tr("A GPT of 0.8 M weights reads characters and learns to predict the next one, on the Python "
               "Language Reference and conversation lines (about half a million characters, shipped offline). Then "
               "it learns the task's topics from a few sentences each, against the same GPT from random weights."))
pre_cfg = pre.PretrainConfig(**{**picked_pre, "classes": picked["classes"], "shots": picked["shots"]})
try:
    contract.validate(pre_cfg)
except ValueError as err:
    st.warning(tr("{error}. Adjust the settings in the sidebar.", error=err))
    pre_cfg = None
got = pre_cfg and ui.run_button("lm_pre", tr("Pretrain and fine-tune"), "lm-pretrain", pre_cfg,
                                results=st.session_state.setdefault("lm_pre_results", {}), button_key="lm_pre_go",
                                start=N_("Reading the corpus…"))
if got:
    out = got.to_json()
    ui.verdict(got.verdict())
    left, right = st.columns([3, 2])
    with left:
        ui.chart(figures.pretrain_loss(out), "lm_pre_loss")
    right.markdown(tr("**Samples after “The ”, as it trains**"))
    right.dataframe([{tr("step"): s["step"], tr("sample"): s["text"].replace("\n", " ↵ ")} for s in out["samples"]],
                    hide_index=True, height=380)
    ui.chart(figures.transfer(out), "lm_pre_transfer")
    p = out["pretraining"]
    st.caption(tr("{weights} weights · {chars} characters of corpus · pretraining {pre} s · whole run {s} s on "
                  "{device}", weights=i18n.number(p["parameters"], 0), chars=i18n.number(p["corpus_chars"], 0),
                  pre=f"{p['seconds']:.0f}", s=f"{got.seconds:.0f}", device=got.device))

st.header(tr("3 · Adjusting it for a task"))
if missing:
    st.warning(tr("The pretrained model is not installed here: {why}.", why=missing))
    st.stop()
cfg = exp.LMConfig(**picked)
try:
    contract.validate(cfg)
except ValueError as err:
    st.warning(tr("{error}. Adjust the settings in the sidebar.", error=err))
    st.stop()
res = ui.run_button("lm", tr("Compare methods"), "lm", cfg, results=st.session_state.setdefault("lm_results", {}),
                    button_key="lm_go", start=N_("Reading the model…"))
if res is None:
    st.info(tr("Press **Compare methods**: frozen features, LoRA, the last layers, random weights and prompting, "
               "each over the seeds."))
    st.stop()
out = res.to_json()
ui.verdict(res.verdict())
ui.chart(figures.methods(out), "lm_methods_chart")
st.dataframe([{tr("method"): m["label"],
               tr("accuracy"): f"{i18n.percent(m['val_acc_mean'], 0)} ± {i18n.percent(m['val_acc_std'], 0)}",
               tr("weights trained"): i18n.percent(m["trainable_fraction"], 3),
               tr("bytes saved"): f"{i18n.number(m['bytes_saved'] / 1e6, 2)} MB",
               tr("s / epoch"): (tr("no training") if m["seconds_per_epoch"] is None
                                 else i18n.number(m["seconds_per_epoch"], 2)),
               tr("perplexity after"): i18n.number(m["perplexity_after"], 1)} for m in out["methods"]],
             hide_index=True)
st.caption(tr("Bytes saved: what a fine-tuned copy must store beside the shared pretrained model (fp32). Perplexity "
              "before: {perplexity} (pretrained) · {s} s on {device}",
              perplexity=i18n.number(out["base_perplexity"].get("pretrained", float("nan")), 1),
              s=f"{res.seconds:.0f}", device=res.device))
