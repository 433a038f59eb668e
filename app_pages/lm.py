import streamlit as st

from app_pages import ui
from tl_core import causal_lm, contract, names, text
from tl_core.experiments import lm as exp
from tl_core.experiments import lm_pretrain as pre
from tl_core.i18n import tr
from tl_core.plots import lm as figures

link = ui.page("Language models", "lm_",
               "Today's language models are the prime example of transfer learning: **pretrained** on huge amounts of "
               "unlabelled text to predict the next word, then **adjusted** for a task. **SmolLM2-135M** (134 M "
               "weights, 30 layers) is such a model, here offline. See what pretraining taught it, watch a small GPT "
               "pretrain, then adjust the real one for a task at a few examples per topic.", settings="Task settings")
missing = causal_lm.available()

with st.sidebar:
    topics = text.topics()
    picked = ui.widgets(exp.LMConfig, ("classes", "methods", "shots", "layers", "rank", "seeds", "epochs"), "lm_",
                        classes={"options": list(topics), "fmt": lambda t: f"{t} ({topics[t]})"},
                        # one checkbox per method, in words (the link keeps the keys, as the lecture's does)
                        methods={"help": "; ".join(f"{names.condition(m)}: {tr(exp.SHORT[m])}" for m in exp.SHORT)})
    st.header("The small GPT")
    picked_pre = ui.widgets(pre.PretrainConfig, ("steps", "tune", "seeds"), "lm_pre_")
picked.update(ui.more_settings(exp.LMConfig, ("val_per_class", "max_length", "lr", "layer_lr", "lora_lr"), "lm_"))
link.report()

st.header("1 · What pretraining taught it")
if missing:
    st.warning(f"The pretrained model is not installed here: {missing}.")
else:
    if not causal_lm.converted():
        st.caption("The first run converts the model's 4-bit file once; later runs read the converted weights.")
    prompt = st.text_input("Prompt", exp.PROMPT, key="lm_next_prompt", max_chars=causal_lm.CONTEXT * 8,
                           help="The model reads it and gives the next token's probabilities")
    next_cfg = exp.NextConfig(prompt=prompt)
    try:
        contract.validate(next_cfg)
    except ValueError as err:
        st.warning(f"{str(err)[:1].upper()}{str(err)[1:]}.")
        next_cfg = None
    if next_cfg is not None:
        nxt = ui.run_button("lm_next", "Next word", "lm-next", next_cfg,
                            results=st.session_state.setdefault("lm_next_results", {}), button_key="lm_next_go",
                            start="Reading the prompt…")
        if nxt is None:
            st.info("Press **Next word**: the pretrained model and the same architecture with random weights read "
                    "the prompt (a few seconds).")
        else:
            out = nxt.to_json()
            ui.verdict(nxt.verdict())
            ui.chart(figures.next_word(out), "lm_next_chart")
            for col, kind, title in zip(st.columns(2), ("pretrained", "random"), ("pretrained", "random weights")):
                col.metric(f"Perplexity on held-out text, {title}", f"{out['perplexity'][kind]:,.1f}", border=True)
                col.markdown(f"**Continues ({title}):** {out['next_word']['prompt']}"
                             f"**{out['continuation'][kind]}**")

st.header("2 · Pretraining you can watch")
st.markdown("A GPT of 0.8 M weights reads characters and learns to predict the next one, on the Python Language "
            "Reference and conversation lines (about half a million characters, shipped offline). Then it learns "
            "the task's topics from a few sentences each, against the same GPT from random weights.")
pre_cfg = pre.PretrainConfig(**{**picked_pre, "classes": picked["classes"], "shots": picked["shots"]})
try:
    contract.validate(pre_cfg)
except ValueError as err:
    st.warning(f"{err}. Adjust the settings in the sidebar.")
    pre_cfg = None
got = pre_cfg and ui.run_button("lm_pre", "Pretrain and fine-tune", "lm-pretrain", pre_cfg,
                                results=st.session_state.setdefault("lm_pre_results", {}), button_key="lm_pre_go",
                                start="Reading the corpus…")
if got:
    out = got.to_json()
    ui.verdict(got.verdict())
    left, right = st.columns([3, 2])
    with left:
        ui.chart(figures.pretrain_loss(out), "lm_pre_loss")
    right.markdown("**Samples after “The ”, as it trains**")
    right.dataframe([{"step": s["step"], "sample": s["text"].replace("\n", " ↵ ")} for s in out["samples"]],
                    hide_index=True, height=380)
    ui.chart(figures.transfer(out), "lm_pre_transfer")
    p = out["pretraining"]
    st.caption(f"{p['parameters']:,} weights · {p['corpus_chars']:,} characters of corpus · pretraining "
               f"{p['seconds']:.0f} s · whole run {got.seconds:.0f} s on {got.device}")

st.header("3 · Adjusting it for a task")
if missing:
    st.warning(f"The pretrained model is not installed here: {missing}.")
    st.stop()
cfg = exp.LMConfig(**picked)
try:
    contract.validate(cfg)
except ValueError as err:
    st.warning(f"{err}. Adjust the settings in the sidebar.")
    st.stop()
res = ui.run_button("lm", "Compare methods", "lm", cfg, results=st.session_state.setdefault("lm_results", {}),
                    button_key="lm_go", start="Reading the model…")
if res is None:
    st.info("Press **Compare methods**: frozen features, LoRA, the last layers, random weights and prompting, each "
            "over the seeds.")
    st.stop()
out = res.to_json()
ui.verdict(res.verdict())
ui.chart(figures.methods(out), "lm_methods_chart")
st.dataframe([{"method": m["label"], "accuracy": f"{m['val_acc_mean']:.0%} ± {m['val_acc_std']:.0%}",
               "weights trained": f"{m['trainable_fraction']:.3%}", "bytes saved": f"{m['bytes_saved'] / 1e6:,.2f} MB",
               "s / epoch": "no training" if m["seconds_per_epoch"] is None else f"{m['seconds_per_epoch']:.2f}",
               "perplexity after": f"{m['perplexity_after']:,.1f}"} for m in out["methods"]], hide_index=True)
st.caption(f"Bytes saved: what a fine-tuned copy must store beside the shared pretrained model (fp32). Perplexity "
           f"before: {out['base_perplexity'].get('pretrained', float('nan')):,.1f} (pretrained) · {res.seconds:.0f} s "
           f"on {res.device}")
