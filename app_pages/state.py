import streamlit as st

from app_pages import load_view, ui
from tl_core import backbones, contract, data, i18n, safeio, state
from tl_core.experiments import finetune
from tl_core.i18n import N_, tr
from tl_core.plots import finetune as ft_figures
from tl_core.plots import state as sd_figures

link = ui.page(tr("State-dict workshop"), "sd_",
               tr("How weights travel in PyTorch: `model.state_dict()` is a dict **name → tensor**; `torch.save` "
                  "writes it, `model.load_state_dict(sd)` copies it into a model *of the same architecture*. Inspect "
                  "a lab model or your own file, download it whole, encoder only or head only, and load it into "
                  "another architecture to see which keys are **missing**, **unexpected** or "
                  "**shape-mismatched**, instead of a traceback."))
# uploads read safely (by content hash, oldest first), which upload is which file, built models, reports and runs:
# they survive reruns and page switches
files, ids, bad, labs, reports, runs = (st.session_state.setdefault(f"sd_{k}", {})
                                        for k in ("files", "ids", "bad", "labs", "reports", "runs"))

st.header(tr("1 · Weights to work with"))
left, right = st.columns(2)
upload = right.file_uploader(tr("Upload a state_dict (.pt, .pth or .safetensors, up to {mb} MB)", mb=state.MAX_MB),
                             type=["pt", "pth", "safetensors"], key="sd_upload",
                             help=tr("Read safely: torch.load(weights_only=True) takes tensors only; a file that "
                                     "carries pickled code or a whole saved model is refused."))
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
            right.info(tr("Dropped {files} (the oldest uploads) to keep this session's uploaded weights under "
                          "{mb} MB: upload it again to use it.", files=", ".join(dropped), mb=f"{state.KEPT_MB:g}")
                       if len(dropped) > 1 else
                       tr("Dropped {files} (the oldest upload) to keep this session's uploaded weights under "
                          "{mb} MB: upload it again to use it.", files=", ".join(dropped), mb=f"{state.KEPT_MB:g}"))
    except ValueError as err:
        bad[upload.file_id] = str(err)
    del raw
if upload is not None and upload.file_id in bad:
    right.error(bad[upload.file_id])
# the options are keys (sd_source is set to "uploaded file" above), shown in words: each option's words made in this
# run (a format_func called later, outside the run, gives the same words)
sources = {k: tr(k) for k in [N_("lab model")] + ([N_("uploaded file")] if files else [])}
source = left.radio(tr("Source"), list(sources), index=len(sources) - 1, key="sd_source", horizontal=True,
                    format_func=sources.get)
if source == "lab model":
    arch = left.selectbox(tr("Lab model"), backbones.IMAGE, key="sd_arch", index=backbones.IMAGE.index("shapes_cnn"),
                          bind=ui.URL, help=tr("Each name is a backbone of the fine-tuning lab's registry."))
    available, note = backbones.weights_status(arch)
    weights = left.radio(tr("Weights"), ["pretrained", "scratch"] if available else ["scratch"], key="sd_weights",
                         bind=ui.URL, horizontal=True, help=note)
    part = left.radio(tr("Part"), list(state.PARTS), key="sd_part", bind=ui.URL, horizontal=True,
                      captions=[tr("every stage"), tr("every stage but the head"), tr("the head only")])
    if (arch, weights) not in labs:
        try:
            with st.spinner(tr("Building {arch}…", arch=arch)):
                ui.keep(labs, (arch, weights), state.parts(arch, weights), most=2)
        except ValueError as err:  # e.g. its weights went missing from this machine
            st.error(str(err))
            st.stop()
    sd, name, notes = labs[(arch, weights)][part], f"{arch}_{weights}_{part}", []
    ins = state.inspect(sd, name, state.lab_groups(arch))
    fmt = left.radio(tr("Download format"), list(state.FORMATS), key="sd_format", bind=ui.URL, horizontal=True)
    for col, p in zip(left.columns(3), state.PARTS):
        col.download_button(tr("Download {part}", part=p),
                            lambda sd=labs[(arch, weights)][p], fmt=fmt: state.to_bytes(sd, fmt),
                            f"{arch}_{weights}_{p}.{fmt}", key=f"sd_download_{p}", on_click="ignore")
else:
    shown = {k: tr("{name} ({size} bytes)", name=f.name, size=i18n.number(f.size, 0)) for k, f in files.items()}
    picked = left.selectbox(tr("Uploaded file"), list(files), key="sd_file", format_func=shown.get)
    sd, name, notes = files[picked].state, files[picked].name, files[picked].notes
    ins = state.inspect(sd, name, notes=notes)
source_id = ("lab", arch, weights, part) if source == "lab model" else ("file", picked)   # picked: a content hash
for note in notes:
    st.info(tr("Note: {note}.", note=note))

st.header(tr("2 · Inspect"))
m = st.columns(3)
m[0].metric(tr("Tensors (keys)"), i18n.number(len(ins.rows), 0))
m[1].metric(tr("Values stored"), i18n.number(ins.total_elements, 0))
m[2].metric(tr("Size"), tr("{n} MB", n=i18n.number(ins.total_bytes / 2**20, 2)))
ui.chart(sd_figures.state_groups(ins), "sd_groups_plot")
st.dataframe(ins.table(), key="sd_keys_table", hide_index=True, height=320)

st.header(tr("3 · Load into an architecture"))
c = st.columns([2, 1.4, 1, 1, 0.8])
into = c[0].selectbox(tr("Architecture"), list(backbones.REGISTRY), key="sd_load_arch", bind=ui.URL,
                      index=list(backbones.REGISTRY).index("shapes_cnn"), help="\n".join(
                      f"- **{k}**: {tr(v)}" for k, v in contract.spec(state.LoadConfig, "arch").choice_help.items()))
classes = c[1].number_input(tr("Head classes (0 = its own)"), 0, 10_000, 0, key="sd_load_num_classes", bind=ui.URL)
strip = c[2].text_input(tr("Strip prefix"), key="sd_load_strip_prefix", bind=ui.URL, placeholder="module.")
add = c[3].text_input(tr("Add prefix"), key="sd_load_add_prefix", bind=ui.URL, placeholder="encoder.")
strict = c[4].toggle(tr("strict"), True, key="sd_load_strict", bind=ui.URL,
                     help=tr("strict: every key must match in name and shape, or nothing loads. Off: what matches "
                             "loads, the rest keeps its initial (scratch) values."))
link.report()
cfg = state.LoadConfig(into, int(classes) or None, strict, strip.strip(), add.strip())
if st.button(tr("Load"), type="primary", key="sd_load", disabled=(source_id, cfg) in reports):
    try:
        ui.keep(reports, (source_id, cfg), state.load_into(sd, cfg, name, notes))
    except ValueError as err:
        st.error(str(err))
report = reports.get((source_id, cfg))
if report is None:
    st.info(tr("Choose an architecture and press **Load**: the report lists missing, unexpected and mismatched "
               "keys."))
    st.stop()
load_view.show(report)   # the outcome, its hints, the missing, unexpected and mismatched keys

if report.model is None or into not in backbones.IMAGE:
    st.stop()
st.header(tr("4 · Continue fine-tuning"))
c, n, datasets = st.columns(4), len(backbones.stage_names(into)), list(data.DATASETS)
ft = finetune.FinetuneConfig(
    backbone=into, weights="pretrained", shots=10, image_size=32, lr=1e-3,
    dataset=c[0].selectbox(tr("Dataset"), datasets, index=datasets.index("textures"), key="sd_ft_dataset", bind=ui.URL),
    epochs=c[1].slider(tr("Epochs"), 1, 15, 4, key="sd_ft_epochs", bind=ui.URL),
    seeds=c[2].slider(tr("Seeds (for the band)"), 2, 5, 2, key="sd_ft_seeds", bind=ui.URL),
    freeze=str(c[3].slider(tr("Frozen stages"), 0, n - 1, 0, key="sd_ft_freeze", bind=ui.URL,
                           help=tr("0 = every stage trains from the loaded weights; {n} = only the head", n=n - 1))))
st.caption(tr("The fine-tuning lab's run from the weights of {name} instead of the registry's: {shots} images per "
              "class at {size} px, Adam lr {lr}, a new head when the class count differs, frozen stages cached.",
              name=name, shots=ft.shots, size=ft.image_size, lr=ft.lr))
# the weights travel with the run request as safetensors bytes: a lab model by its name, an upload by its content
weights_id = ("lab:" + "/".join(source_id[1:])) if source == "lab model" else f"sha256:{picked}"
result = ui.run_button("sd_ft", tr("Continue fine-tuning"), "continue", ft, results=runs, key=(source_id, cfg, ft),
                       button_key="sd_ft_run", start=N_("Preparing data and the loaded model…"),
                       extra={"init": name, "load": contract.record(cfg)},
                       inputs={"init": (weights_id, lambda: state.to_bytes(sd, "safetensors"))})
ui.keep(runs)   # each result carries its trained weights
if result is not None:
    st.success(tr("Validation accuracy after {epochs} epochs: {accs} (one per seed; {s} s on {device}; {note}).",
                  epochs=ft.epochs, accs=", ".join(i18n.percent(r.val_acc, 0) for r in result.runs),
                  s=i18n.number(result.seconds, 1), device=result.device, note=result.weights_note))
    ui.chart(ft_figures.curves(result.to_json()), "sd_ft_curves")
