"""The practitioner's kit on the pages: a backbone's model card in the sidebar, the lab's trained model as an
export bundle (model.pt, model.onnx checked against torch, model.json, predict.py), and augmentation's cost, preview
and with/without comparison. A widget group, not a page (app.py does not list it); the numbers come from
tl_core.card, tl_core.export, tl_core.augment and the lab's experiment."""
from dataclasses import replace

import streamlit as st

from app_pages import ui
from tl_core import augment, card, export, finetuning, i18n, lab_cost
from tl_core.experiments import finetune
from tl_core.i18n import tr
from tl_core.plots import augment as augment_plots

S = st.session_state


def model_card(name: str, size: int, where=None) -> None:
    """The card of backbone `name` at `size` px: parameters, size on disk, CPU ms per image (measured here once
    per backbone and size), input and normalisation, where the weights come from."""
    with (where or st.sidebar).expander(tr("Model card: {name} at {size} px", name=name, size=size)):
        try:
            rows = card.card(name, size).rows()
        except ValueError as err:   # a size the backbone does not take: the settings say so already
            st.caption(str(err))
            return
        st.markdown("\n".join(f"- **{what}**: {value}" for what, value in rows))


def download_model(result, key: str, label: str = "", clf=None) -> None:
    """A download of `result`'s trained model (a FinetuneResult's first run; `clf`: its export.Classifier when
    the page has it) as the export zip, exported once per result, with its ONNX parity figure; a failed export
    (e.g. parity) is one line on the page. `label`: the button's words, translated (default: "Download the
    trained model")."""
    label = label or tr("Download the trained model")
    kept = S.get(key)
    if kept is None or kept[0] is not result:
        def made(clf=clf):
            clf = clf or export.from_result(result)
            return result, export.to_zip(clf), export.parity_line(clf)
        try:   # once per result for every session showing it (a result tl_core.serve shares)
            kept = S[key] = ui.once(result, "export", made)
        except ValueError as err:
            st.error(tr("Export: {err}", err=err))
            return
    st.download_button(tr("{label} (.zip: model.pt, model.onnx, model.json, predict.py)", label=label), kept[1],
                       file_name="transfer_lab_model.zip", mime="application/zip", key=f"{key}_button",
                       on_click="ignore", icon=":material/download:")
    st.caption(tr("{parity}. Run it with `python predict.py [--onnx] photo.jpg` beside the files, or "
                  "`python -m tl_core predict --model model.pt [--onnx] photo.jpg`.", parity=kept[2]))


def augmentation(cfg, key: str, dataset=None, data_id: str = "") -> None:
    """With cfg.augment on: how much slower the run becomes (the cost model on this machine's measured figures) and
    a preview of augmented training images; `dataset()` gives the user's own images (data_id names them)."""
    if not cfg.augment:
        return
    kept, made_for = S.get(key), (cfg, data_id, i18n.language())   # the preview's words are in the page's language
    if kept is None or kept[0] != made_for:
        try:
            images = dataset() if dataset is not None else None
            cost, (train, _) = lab_cost.augment_cost(cfg, images), finetuning.first_split(cfg.resolve(), images)
        except ValueError as err:   # settings the run itself refuses: its button says why
            st.caption(tr("Augmentation: {err}", err=err))
            return
        kept = S[key] = (made_for, cost, augment_plots.preview_of(train, cfg.augment, seed=cfg.seed))
    cost, fig = kept[1], kept[2]
    st.info(tr("**Augmentation ({what}): this run takes about {ratio}× the time of the same run without it.** "
               "Augmented images are new every epoch, so the frozen stages' features cannot be cached: the frozen "
               "stages run on the {n_train} training images in each of the {epochs} epochs ({ms} ms per image, and "
               "{augment_ms} ms to augment one, measured on this machine; `bench/augment_cost.py` measures the "
               "ratio of real runs). Validation images are never augmented.",
               what=augment.words(cfg.augment), ratio=i18n.number(cost["ratio"], 1), n_train=cost["n_train"],
               epochs=cost["epochs"], ms=i18n.number(cost["ms_per_image"], 1),
               augment_ms=i18n.number(cost["augment_ms_per_image"], 2)), icon=":material/speed:")
    with st.expander(tr("Preview: augmented training images")):
        ui.chart(fig, f"{key}_grid", st)


def _plain(key):
    """A results key with augmentation off in its config (a lab config, or a tuple holding one)."""
    if isinstance(key, finetune.FinetuneConfig):
        return replace(key, augment=())
    return tuple(_plain(k) for k in key) if isinstance(key, tuple) else key


def augment_compare(result, results: dict, key, chart_key: str) -> None:
    """The curves of `result` and of the session's run alike but for augmentation, with the claim between them and
    both runs' measured times; without such a run, how to get one."""
    twins = [r for k, r in results.items() if k != key and _plain(k) == _plain(key)
             and bool(r.config.augment) != bool(result.config.augment)]
    if not twins:
        st.caption(tr("With and without augmentation: train these settings once with **Augmentation** on and once "
                      "off; both runs' curves are then drawn here together (the Runs page overlays any two runs too)."))
        return
    plain, augmented = (twins[-1], result) if result.config.augment else (result, twins[-1])
    a, b = augmented.to_json(), plain.to_json()
    ui.verdict(augment.augment_verdict(b, a))
    ui.chart(augment_plots.compare(b, a), chart_key)
    st.caption(tr("Measured: {with_s} s with augmentation, {without_s} s without ({ratio}×; the run without may "
                  "have reused frozen features or scratch runs trained before).",
                  with_s=i18n.number(augmented.seconds, 1), without_s=i18n.number(plain.seconds, 1),
                  ratio=i18n.number(augmented.seconds / max(plain.seconds, 1e-9), 1)))


def own_run_note(result) -> None:
    """Your own images' run in one line (device, time, frozen stages, weights, augmentation, the validation split),
    and a warning when its validation images are so few that one image moves a class's accuracy a lot."""
    frozen = ", ".join(result.stage_names[:result.frozen]) or tr("none")
    st.caption(tr("{device} · {s} s · frozen: {frozen} · {note} · augmentation: {what} · validation: {share} of each "
                  "class, a new split per seed", device=result.device, s=i18n.number(result.seconds, 1),
                  frozen=frozen, note=result.weights_note, what=augment.words(result.config.augment),
                  share=i18n.percent(result.config.val_fraction, 0)))
    n_val = result.runs[0].confusion.sum(1)  # validation images per class
    if n_val.min() < 5:
        counts = ", ".join(f"{c}: {int(n)}" for c, n in zip(result.classes, n_val))
        st.warning(tr("Only {n} validation images ({counts}): one image is {share} of a class's accuracy, so read "
                      "the seeds' band, not one number. More images per class give a steadier measure.",
                      n=int(n_val.sum()), counts=counts,
                      share=i18n.percent(1 / max(int(n_val[n_val > 0].min()), 1), 0)))
