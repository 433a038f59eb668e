import streamlit as st

from app_pages import ui
from tl_core import i18n
from tl_core.experiments import selfsup
from tl_core.i18n import N_, tr
from tl_core.plots import selfsup as figures

S = selfsup.SSLConfig   # the page starts from the config's defaults: a link names only what differs
FLOW = """encoder, decoder = Encoder(features), Decoder(features)
autoencoder = Autoencoder(encoder, decoder)           # pretrain: hide features, reconstruct them
fit(MaskedReconstruction(autoencoder, ...), (pool, pool), loss_fn=masked_mse)

torch.save(autoencoder.encoder.state_dict(), "encoder.pt")     # only the encoder travels

model = DownstreamModel(Encoder(features), nn.Linear(latent, classes))  # same encoder class, new head
model.encoder.load_state_dict(torch.load("encoder.pt", weights_only=True))
fit(model, (x_labelled, y_labelled))                  # frozen (head only) or fine-tuned (all)"""

link = ui.page(tr("Self-supervised pretraining"), "ssl_",
               tr("No labels for pretraining? **Hide part of every input and train a network to fill it in.** "
                  "The encoder that learns this on a large *unlabelled* pool is then reused with a new prediction "
                  "head on a *small* labelled set, and compared with the same network trained from scratch."),
               settings=tr("SSL settings"))

with st.sidebar:
    picked = ui.widgets(S, ("data", "mask_ratio", "labels", "label_counts", "seeds", "pretrain_epochs", "epochs"),
                        "ssl_", data={"captions": [tr(c) for c in selfsup.DATA.values()], "horizontal": False},
                        label_counts={"value": (1, 2, 5, 20)},
                        mask_ratio={"help": tr("genes for expression data, 4×4 patches for digits")})
    st.caption(tr("Pretraining is cached by its settings: changing only the label counts, seeds or downstream "
                  "epochs reuses it."))

link.report()
cfg = S(**{**picked, "label_counts": tuple(sorted(picked["label_counts"]))})
result = ui.run_button("ssl", tr("Pretrain and compare"), "ssl", cfg,
                       results=st.session_state.setdefault("ssl_results", {}), button_key="ssl_run",
                       start=N_("Masking and pretraining on the unlabelled pool…"))
if result is None:
    st.info(tr("Choose the data and mask ratio in the sidebar and press **Pretrain and compare**."))
    st.code(FLOW, language="python")
    st.stop()

ui.verdict(result.verdict())
metrics = st.columns(4)
for col, mode in zip(metrics, selfsup.MODES):
    s = result.summary(mode)
    col.metric(tr(figures.LABELS[mode]), i18n.percent(s["val_acc"]),
               help=tr("± {std} std over {seeds} seeds, {labels} labelled samples per class",
                       std=i18n.percent(s["val_acc_std"]), seeds=cfg.seeds, labels=cfg.labels))
rl = result.pretrained.recon_loss()
metrics[3].metric(tr("Masked MSE, first → last epoch"), i18n.number(rl["last"], 3),
                  i18n.number(rl["last"] - rl["first"], 3, signed=True), delta_color="inverse",
                  help=tr("1.0 = predicting each hidden feature's mean"))

pre, ds = result.pretrained, selfsup.load(cfg.data, cfg.seed)
st.subheader(tr("1 · Pretraining: hide, then reconstruct (no labels)"))
if ds.image_side:
    ui.chart(figures.image_reconstructions(pre.examples, ds.image_side), "ssl_examples")
else:
    ui.chart(figures.expression_reconstructions(pre.examples, ds.feature_order), "ssl_examples")
out = result.to_json()
ui.chart(figures.recon_curve(out), "ssl_recon")
st.caption(tr("One pretraining run on {n} unlabelled samples ({seconds} s on {device}); the loss counts only the "
              "hidden features, with a new random mask every step.", n=i18n.number(len(ds.pool), 0),
              seconds=i18n.number(pre.seconds, 1), device=pre.device))

st.subheader(tr("2 · Downstream: a new head on a few labels"))
ui.chart(figures.label_curve(out), "ssl_curve_plot")
st.markdown(selfsup.finetune_note(result))
st.caption(tr("Each seed draws its own labelled samples from the pool and its own head (and scratch) weights; all "
              "conditions share the draws and a fixed validation set of {n} samples. {runs} downstream runs in "
              "{seconds} s on {device}.", n=len(ds.val), runs=len(result.records),
              seconds=i18n.number(result.seconds, 1), device=result.device))
left, right = st.columns([3, 2])
with left:
    st.markdown(tr("**The deck's flow, as this page runs it**"))
    st.code(FLOW, language="python")
with right:
    st.download_button(tr("Download the encoder only (.pt)"), pre.encoder, file_name=f"ssl_encoder_{cfg.data}.pt",
                       mime="application/octet-stream", key="ssl_download")
    st.caption(tr("`model.encoder.state_dict()`: {size} KiB, Encoder({features}, {hidden}, {latent}). Load it with "
                  "`torch.load(..., weights_only=True)`.", size=i18n.number(len(pre.encoder) / 1024, 0),
                  features=ds.features, hidden=cfg.hidden, latent=cfg.latent))
