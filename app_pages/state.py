import streamlit as st

from app_pages import load_view, ui
from tl_core import backbones, contract, data, safeio, state
from tl_core.experiments import finetune
from tl_core.plots import finetune as ft_figures
from tl_core.plots import state as sd_figures

link = ui.page("State-dict workshop", "sd_",
               "How weights travel in PyTorch: `model.state_dict()` is a dict **name → tensor**; `torch.save` writes "
               "it, `model.load_state_dict(sd)` copies it into a model *of the same architecture*. Inspect a lab model "
               "or your own file, download it whole, encoder only or head only, and load it into another architecture "
               "to see which keys are **missing**, **unexpected** or **shape-mismatched**, instead of a traceback.")
# uploads read safely (by content hash, oldest first), which upload is which file, built models, reports and runs:
# they survive reruns and page switches
files, ids, bad, labs, reports, runs = (st.session_state.setdefault(f"sd_{k}", {})
                                        for k in ("files", "ids", "bad", "labs", "reports", "runs"))

st.header("1 · Weights to work with")
left, right = st.columns(2)
upload = right.file_uploader(f"Upload a state_dict (.pt, .pth or .safetensors, up to {state.MAX_MB} MB)",
                             type=["pt", "pth", "safetensors"], key="sd_upload",
                             help="Read safely: torch.load(weights_only=True) takes tensors only; a file that "
                                  "carries pickled code or a whole saved model is refused.")
if upload is not None and upload.file_id not in bad and upload.file_id not in ids:
    # a file is its content (sha256 of the bytes), never its name and size: two students' weights.pt of one
    # architecture and one size are two files, and so are the runs continued from them
    raw = upload.getvalue()
    digest = safeio.content_hash(raw)
    try:
        files[digest] = files.pop(digest, None) or state.read(raw, upload.name)   # the newest last
        ids[upload.file_id] = digest
        st.session_state["sd_source"], st.session_state["sd_file"] = "uploaded file", digest
        dropped = state.keep_within(files, int(state.KEPT_MB * 2**20))
        if dropped:
            right.info(f"Dropped {', '.join(dropped)} (the oldest upload{'s' * (len(dropped) > 1)}) to keep this "
                       f"session's uploaded weights under {state.KEPT_MB:g} MB: upload it again to use it.")
    except ValueError as err:
        bad[upload.file_id] = str(err)
    del raw
if upload is not None and upload.file_id in bad:
    right.error(bad[upload.file_id])
sources = ["lab model"] + (["uploaded file"] if files else [])
source = left.radio("Source", sources, index=len(sources) - 1, key="sd_source", horizontal=True)
if source == "lab model":
    arch = left.selectbox("Lab model", backbones.IMAGE, key="sd_arch", index=backbones.IMAGE.index("shapes_cnn"),
                          bind=ui.URL, help="Each name is a backbone of the fine-tuning lab's registry.")
    available, note = backbones.weights_status(arch)
    weights = left.radio("Weights", ["pretrained", "scratch"] if available else ["scratch"], key="sd_weights",
                         bind=ui.URL, horizontal=True, help=note)
    part = left.radio("Part", list(state.PARTS), key="sd_part", bind=ui.URL, horizontal=True,
                      captions=["every stage", "every stage but the head", "the head only"])
    if (arch, weights) not in labs:
        try:
            with st.spinner(f"Building {arch}…"):
                ui.keep(labs, (arch, weights), state.parts(arch, weights), most=2)
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
    picked = left.selectbox("Uploaded file", list(files), key="sd_file",
                            format_func=lambda k: f"{files[k].name} ({files[k].size:,} bytes)")
    sd, name, notes = files[picked].state, files[picked].name, files[picked].notes
    ins = state.inspect(sd, name, notes=notes)
source_id = ("lab", arch, weights, part) if source == "lab model" else ("file", picked)   # picked: a content hash
for note in notes:
    st.info(f"Note: {note}.")

st.header("2 · Inspect")
m = st.columns(3)
m[0].metric("Tensors (keys)", f"{len(ins.rows):,}")
m[1].metric("Values stored", f"{ins.total_elements:,}")
m[2].metric("Size", f"{ins.total_bytes / 2**20:.2f} MB")
ui.chart(sd_figures.state_groups(ins), "sd_groups_plot")
st.dataframe(ins.table(), key="sd_keys_table", hide_index=True, height=320)

st.header("3 · Load into an architecture")
c = st.columns([2, 1.4, 1, 1, 0.8])
into = c[0].selectbox("Architecture", list(backbones.REGISTRY), key="sd_load_arch", bind=ui.URL,
                      index=list(backbones.REGISTRY).index("shapes_cnn"), help="\n".join(
                      f"- **{k}**: {v}" for k, v in contract.spec(state.LoadConfig, "arch").choice_help.items()))
classes = c[1].number_input("Head classes (0 = its own)", 0, 10_000, 0, key="sd_load_num_classes", bind=ui.URL)
strip = c[2].text_input("Strip prefix", key="sd_load_strip_prefix", bind=ui.URL, placeholder="module.")
add = c[3].text_input("Add prefix", key="sd_load_add_prefix", bind=ui.URL, placeholder="encoder.")
strict = c[4].toggle("strict", True, key="sd_load_strict", bind=ui.URL, help="strict: every key must match in name and "
                     "shape, or nothing loads. Off: what matches loads, the rest keeps its initial (scratch) values.")
link.report()
cfg = state.LoadConfig(into, int(classes) or None, strict, strip.strip(), add.strip())
if st.button("Load", type="primary", key="sd_load", disabled=(source_id, cfg) in reports):
    try:
        ui.keep(reports, (source_id, cfg), state.load_into(sd, cfg, name, notes))
    except ValueError as err:
        st.error(str(err))
report = reports.get((source_id, cfg))
if report is None:
    st.info("Choose an architecture and press **Load**: the report lists missing, unexpected and mismatched keys.")
    st.stop()
load_view.show(report)   # the outcome, its hints, the missing, unexpected and mismatched keys

if report.model is None or into not in backbones.IMAGE:
    st.stop()
st.header("4 · Continue fine-tuning")
c, n, datasets = st.columns(4), len(backbones.stage_names(into)), list(data.DATASETS)
ft = finetune.FinetuneConfig(
    backbone=into, weights="pretrained", shots=10, image_size=32, lr=1e-3,
    dataset=c[0].selectbox("Dataset", datasets, index=datasets.index("textures"), key="sd_ft_dataset", bind=ui.URL),
    epochs=c[1].slider("Epochs", 1, 15, 4, key="sd_ft_epochs", bind=ui.URL),
    seeds=c[2].slider("Seeds (for the band)", 2, 5, 2, key="sd_ft_seeds", bind=ui.URL),
    freeze=str(c[3].slider("Frozen stages", 0, n - 1, 0, key="sd_ft_freeze", bind=ui.URL,
                           help=f"0 = every stage trains from the loaded weights; {n - 1} = only the head")))
st.caption(f"The fine-tuning lab's run from the weights of {name} instead of the registry's: {ft.shots} images per "
           f"class at {ft.image_size} px, Adam lr {ft.lr}, a new head when the class count differs, frozen stages "
           "cached.")
# the weights travel with the run request as safetensors bytes: a lab model by its name, an upload by its content
weights_id = ("lab:" + "/".join(source_id[1:])) if source == "lab model" else f"sha256:{picked}"
result = ui.run_button("sd_ft", "Continue fine-tuning", "continue", ft, results=runs, key=(source_id, cfg, ft),
                       button_key="sd_ft_run", start="Preparing data and the loaded model…",
                       extra={"init": name, "load": contract.record(cfg)},
                       inputs={"init": (weights_id, lambda: state.to_bytes(sd, "safetensors"))})
ui.keep(runs)   # each result carries its trained weights
if result is not None:
    st.success(f"Validation accuracy after {ft.epochs} epochs: {', '.join(f'{r.val_acc:.0%}' for r in result.runs)} "
               f"(one per seed; {result.seconds:.1f} s on {result.device}; {result.weights_note}).")
    ui.chart(ft_figures.curves(result.to_json()), "sd_ft_curves")
