import streamlit as st

from app_pages import collect, ui
from tl_core import backbones, contract, data, glossary, i18n, userdata
from tl_core.experiments import layers
from tl_core.i18n import tr
from tl_core.plots import layers as figures

L = layers.LayersConfig

link = ui.page(tr("What layers learn"), "lay_",
               tr("Zeiler & Fergus looked inside a trained network: **early layers** respond to edges, colours and "
                  "textures (useful for any image), **late layers** to parts and whole objects of the training "
                  "classes. That is why transfer learning freezes the early layers. Here: the first layer's filters, "
                  "one image through every stage, the patches of a dataset that each stage likes most, and how far "
                  "each stage's weights move when the whole network is fine-tuned."), settings=tr("Settings"))

with st.sidebar:
    name = ui.widget(L, "backbone", "lay_")
    available, note = backbones.weights_status(name)
    if available:
        st.caption(tr("Weights: {note}", note=note))
    else:
        st.warning(tr("No pretrained weights here: {note}", note=note))
    dataset = ui.widget(L, "dataset", "lay_", help="\n".join(f"- **{k}**: {tr(data.DATASETS[k])}"
                                                             for k in contract.spec(L, "dataset").choices))
    picked = ui.widgets(L, ("shots", "epochs", "image_size", "seeds"), "lay_")
picked.update(ui.more_settings(L, ("val_per_class",), "lay_"))

link.report()
if not available:
    st.stop()
cfg = L(backbone=name, dataset=dataset, **picked)
shots, seeds, size = cfg.shots, cfg.seeds, cfg.image_size
try:
    contract.validate(cfg)
except ValueError as err:
    st.warning(tr("{problem}. Adjust the settings in the sidebar.", problem=err))
    st.stop()


@st.cache_resource(max_entries=4, show_spinner=tr("Loading the backbone…"))
def model(backbone: str, weights: str):
    return backbones.create(backbone, weights, seed=0)


results = st.session_state.setdefault("lay_results", {})

st.subheader(tr("1 · The first layer's filters"))
filters_slot = st.container()   # drawn once the run below is known: with its fine-tuned row when there is one


def draw_filters(result) -> None:
    shown = {tr("ImageNet-pretrained"): layers.filters(model(name, "pretrained")),
             tr("random init"): layers.filters(model(name, "scratch"))}
    if result is not None:   # the result names its panel "fine-tuned on <dataset>"
        tuned = f"fine-tuned on {result.config.dataset}"
        shown.update({tr("fine-tuned on {dataset}", dataset=result.config.dataset) if k == tuned else k: v
                      for k, v in result.filters.items() if k.startswith("fine-tuned")})
    ui.chart(figures.filters(shown), "lay_filters", filters_slot)
    if result is None:
        filters_slot.caption(tr("Pretrained kernels are colour blobs and oriented edges; random ones are noise. "
                                "Fine-tune below to add the same kernels after training on your data."))
    else:
        filters_slot.caption(tr("After full fine-tuning the first stage's weights moved {share} of their size (mean "
                                "over seeds): the tiles look the same.",
                                share=i18n.percent(result.to_json()["relative_change"][0], 2)))


st.subheader(tr("2 · One image through every stage"))
ds = data.load(dataset, size)
builtin, upload, cam = st.tabs([tr("From the dataset"), tr("Upload an image"), tr("Webcam")])
index = builtin.slider(tr("Image"), 0, len(ds) - 1, 0, key="lay_image", help=tr("an image of the chosen dataset"))
image, caption = ds.images[index], tr("{dataset} image {index} ({label})", dataset=dataset, index=index,
                                      label=ds.classes[int(ds.labels[index])])
for f in (upload.file_uploader(tr("An image"), type=collect.IMAGE_TYPES, key="lay_upload"),
          cam.camera_input(tr("Take a photo"), key="lay_cam")):
    if f is not None:
        try:
            image, caption = userdata.to_input(f.getvalue(), size)[0], f.name
        except ValueError as err:
            st.error(f"{f.name}: {err}")
maps = {tr("pretrained"): layers.activation_maps(model(name, "pretrained"), image),
        tr("scratch (random)"): layers.activation_maps(model(name, "scratch"), image)}
ui.chart(figures.activation_grid(image.numpy(), maps), "lay_maps")
st.caption(tr("{image}. Each panel: a stage's 4 most active channels; the maps get coarser with depth (size under "
              "each name). Any convolution keeps the image's edges at first, random or not; compare how the later "
              "stages of the two models respond.", image=caption))

st.subheader(tr("3 · Full fine-tuning: what each stage learns on your data, and how far it moves"))
result = ui.run_button("lay", tr("Fine-tune and measure"), "layers", cfg, results=results)
draw_filters(result)
if result is None:
    st.info(tr("Press **{button}**: every stage of {backbone} trains on {shots} {dataset} images per class, "
               "{seeds} seeds.", button=tr("Fine-tune and measure"), backbone=name, shots=shots, dataset=dataset,
               seeds=seeds))
    st.stop()
ui.verdict(result.verdict())
out = result.to_json()
st.caption(tr("Validation accuracy after fine-tuning {accuracy} ± {std} · {device} · {seconds} s",
              accuracy=i18n.percent(out["val_acc"]), std=i18n.percent(out["val_acc_std"]), device=result.device,
              seconds=i18n.number(result.seconds, 0)),
           help=glossary.help_for("stage", "10th–90th percentile", "claims rule", "paired"))   # the chart's band
ui.chart(figures.relative_change(out), "lay_change")
ui.chart(figures.strongest_patches(result.patches), "lay_patches")
st.caption(tr("Each row: the dataset images where one unit of the stage's most active channel fired hardest, cut "
              "to what that unit sees (its receptive field, measured by a gradient). Early rows: small edge and "
              "colour snippets; late rows: nearly whole images."))
