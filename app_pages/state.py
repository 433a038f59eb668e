from dataclasses import asdict

import pandas as pd
import streamlit as st

from app_pages import ui
from tl_core import backbones, data, plots, state


def remembered(key: str) -> dict:
    return st.session_state.setdefault(key, {})


def keep(store: dict, key, value, most: int = 4):
    """Remember value; drop the oldest beyond `most` (built models can weigh hundreds of MB each)."""
    store[key] = value
    while len(store) > most:
        store.pop(next(iter(store)))
    return value


st.title("State-dict workshop")
link = ui.LinkSettings("sd_")
st.markdown("How weights travel in PyTorch: `model.state_dict()` is a dict **name → tensor**; `torch.save` writes "
            "it, `model.load_state_dict(sd)` copies it into a model *of the same architecture*. Inspect a lab model "
            "or your own file, download it whole, encoder only or head only, and load it into another architecture "
            "to see which keys are **missing**, **unexpected** or **shape-mismatched**, instead of a traceback.")

files, bad = remembered("sd_files"), remembered("sd_bad")     # uploads read safely, survive reruns and page switches
labs, reports, runs = remembered("sd_labs"), remembered("sd_reports"), remembered("sd_runs")

st.header("1 · Weights to work with")
left, right = st.columns(2)
upload = right.file_uploader(f"Upload a state_dict (.pt, .pth or .safetensors, up to {state.MAX_MB} MB)",
                             type=["pt", "pth", "safetensors"], key="sd_upload",
                             help="Read safely: torch.load(weights_only=True) takes tensors only; a file that "
                                  "carries pickled code or a whole saved model is refused.")
if upload is not None and upload.file_id not in bad and (upload.name, upload.size) not in files:
    try:
        files[(upload.name, upload.size)] = state.read(upload.getvalue(), upload.name)
        st.session_state["sd_source"] = "uploaded file"
    except ValueError as err:
        bad[upload.file_id] = str(err)
if upload is not None and upload.file_id in bad:
    right.error(bad[upload.file_id])
sources = ["lab model"] + (["uploaded file"] if files else [])
source = left.radio("Source", sources, index=len(sources) - 1, key="sd_source", horizontal=True)
if source == "lab model":
    arch = left.selectbox("Lab model", list(backbones.REGISTRY), key="sd_arch", index=list(backbones.REGISTRY).index("shapes_cnn"),
                          bind=ui.URL, help="Each name is a backbone of the fine-tuning lab's registry.")
    available, note = backbones.weights_status(arch)
    weights = left.radio("Weights", ["pretrained", "scratch"] if available else ["scratch"], key="sd_weights", bind=ui.URL,
                         horizontal=True, help=note)
    part = left.radio("Part", list(state.PARTS), key="sd_part", bind=ui.URL, horizontal=True,
                      captions=["every stage", "every stage but the head", "the head only"])
    if (arch, weights) not in labs:
        try:
            with st.spinner(f"Building {arch}…"):
                keep(labs, (arch, weights), state.parts(arch, weights), most=2)
        except ValueError as err:  # e.g. its weights went missing from this machine
            st.error(str(err))
            st.stop()
    sd, name, notes = labs[(arch, weights)][part], f"{arch}_{weights}_{part}", []
    ins = state.inspect(sd, name, state.lab_groups(arch))
    fmt = left.radio("Download format", list(state.FORMATS), key="sd_format", bind=ui.URL, horizontal=True)
    for col, p in zip(left.columns(3), state.PARTS):
        col.download_button(f"Download {p}", lambda sd=labs[(arch, weights)][p], fmt=fmt: state.to_bytes(sd, fmt),
                            f"{arch}_{weights}_{p}.{fmt}", key=f"sd_download_{p}", on_click="ignore")
else:
    picked = left.selectbox("Uploaded file", list(files), key="sd_file", format_func=lambda k: f"{k[0]} ({k[1]:,} bytes)")
    f = files[picked]
    sd, name, notes = f.state, f.name, f.notes
    ins = state.inspect(sd, name, notes=notes)
source_id = ("lab", arch, weights, part) if source == "lab model" else ("file", *picked)
for note in notes:
    st.info(f"Note: {note}.")

st.header("2 · Inspect")
m = st.columns(3)
m[0].metric("Tensors (keys)", f"{len(ins.rows):,}")
m[1].metric("Values stored", f"{ins.total_elements:,}")
m[2].metric("Size", f"{ins.total_bytes / 2**20:.2f} MB")
ui.chart(plots.state_groups(ins), "sd_groups_plot")
table = pd.DataFrame(ins.rows).assign(shape=lambda d: d["shape"].map(lambda s: " × ".join(map(str, s)) or "scalar"))
st.dataframe(table[["key", "shape", "dtype", "elements", "module"]], key="sd_keys_table", hide_index=True, height=320)

st.header("3 · Load into an architecture")
c = st.columns([2, 1.4, 1, 1, 0.8])
into = c[0].selectbox("Architecture", list(state.ARCHITECTURES), key="sd_into", bind=ui.URL,
                      index=list(state.ARCHITECTURES).index("shapes_cnn"))
classes = c[1].number_input("Head classes (0 = its own)", 0, 10_000, 0, key="sd_classes", bind=ui.URL)
strip = c[2].text_input("Strip prefix", key="sd_strip", bind=ui.URL, placeholder="module.")
add = c[3].text_input("Add prefix", key="sd_add", bind=ui.URL, placeholder="encoder.")
strict = c[4].toggle("strict", True, key="sd_strict", bind=ui.URL, help="strict: every key must match in name and shape, or nothing "
                     "loads. Off: what matches loads, the rest keeps its initial (scratch) values.")
link.report()
cfg = state.LoadConfig(into, int(classes) or None, strict, strip.strip(), add.strip())
if st.button("Load", type="primary", key="sd_load", disabled=(source_id, cfg) in reports):
    try:
        keep(reports, (source_id, cfg), state.load_into(sd, cfg, name, notes))
    except ValueError as err:
        st.error(str(err))
report = reports.get((source_id, cfg))
if report is None:
    st.info("Choose an architecture and press **Load**: the report lists missing, unexpected and mismatched keys.")
    st.stop()
{"loaded": st.success, "partial": st.warning, "refused": st.error}[report.outcome](report.message())
for hint in report.hints:
    st.info(f"Hint: {hint}.")
lists = [("Missing", "in the model, not in the file", pd.DataFrame({"key": report.missing})),
         ("Unexpected", "in the file, not in the model", pd.DataFrame({"key": report.unexpected})),
         ("Shape-mismatched", "same name, another shape", pd.DataFrame(report.mismatched, columns=["key", "file_shape", "model_shape"]))]
for col, (title, what, df) in zip(st.columns(3), lists):
    col.metric(f"{title} ({what})", len(df))
    if len(df):
        col.dataframe(df.astype(str), key=f"sd_report_{title.lower()}", hide_index=True, height=min(260, 38 + 35 * len(df)))
    else:
        col.caption("none")

if report.model is None or into not in backbones.REGISTRY:
    st.stop()
st.header("4 · Continue fine-tuning")
c = st.columns(3)
ft = state.ContinueConfig(dataset=c[0].selectbox("Dataset", list(data.DATASETS), index=list(data.DATASETS).index("textures"),
                                                 key="sd_ft_dataset", bind=ui.URL),
                          epochs=c[1].slider("Epochs", 1, 15, 4, key="sd_ft_epochs", bind=ui.URL),
                          seeds=c[2].slider("Seeds (for the band)", 2, 5, 2, key="sd_ft_seeds", bind=ui.URL))
st.caption(f"{ft.shots} images per class at {ft.image_size} px, every stage trains from the loaded weights (Adam, lr "
           f"{ft.lr}); a new head when the class count differs.")
if st.button("Continue fine-tuning", key="sd_ft_run", disabled=(source_id, cfg, ft) in runs):
    bar = st.progress(0.0, text="Preparing…")
    try:
        with ui.recording("continue", {**asdict(ft), "arch": into, "weights_from": name, "load": asdict(cfg)}) as rec:
            keep(runs, (source_id, cfg, ft), state.continue_finetune(report.model, into, ft,
                                                                     progress=lambda f, m: bar.progress(min(f, 1.0), text=m)))
            rec["result"] = runs[(source_id, cfg, ft)].to_json()
    except ValueError as err:
        st.error(str(err))
    bar.empty()
run = runs.get((source_id, cfg, ft))
if run is not None:
    accs = ", ".join(f"{a:.0%}" for a in run.val_acc)
    st.success(f"Validation accuracy after {ft.epochs} epochs: {accs} (one per seed; {run.seconds:.1f} s on {run.device})"
               + (" — with a new head for " + ", ".join(run.classes) if run.new_head else ""))
    ui.chart(plots.continue_curves(run), "sd_ft_curves")
