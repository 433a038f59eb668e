from pathlib import Path

import streamlit as st

from app_pages import ui
from tl_core import i18n, run_views, serve
from tl_core.i18n import N_, tr
from tl_core.plots import runs as figures

# the runs table's columns as headed on the page (the table's keys stay the code's)
COLUMNS = {"id": N_("id"), "label": N_("label"), "experiment": N_("experiment"), "from": N_("from"),
           "status": N_("status"), "backbone": N_("backbone"), "dataset": N_("dataset"), "result": N_("result"),
           "seconds": N_("seconds"), "device": N_("device"), "when": N_("when")}
FILTERS = {"dataset": N_("Dataset"), "backbone": N_("Backbone")}   # run_views.FILTER_FIELDS' labels


def any_or(value: str) -> str:
    """A filter's choice as shown: "any" in words, a kind or a config value as recorded."""
    return tr("any") if value == "any" else value


link = ui.page(tr("Runs"), "runs_",
               tr("Every run trained on any page (and on the command line) is kept here, also after a restart. "
                  "Pick several to see their curves on the same axes and exactly which settings differ."),
               settings=tr("Filter runs"))
db = ui.history()
if db is None:
    st.stop()

me, server = ui.session_id(), serve.shared()
with st.sidebar:
    admin = server and serve.teacher() and serve.admin(st.text_input(
        tr("Teacher token"), type="password", key=ui.TEACHER_KEY,
        help=tr("the server's TL_ADMIN_TOKEN: every session's runs")))
    admin = admin or (server and ui.is_teacher())   # given earlier in this session, on this page
    everything = run_views.visible(db.runs(), me, server, admin)
    kind = st.selectbox(tr("Experiment"), ["any", *sorted({r.kind for r in everything})], key="runs_kind",
                        bind=ui.URL, format_func=any_or)
    filters = {f: st.selectbox(tr(FILTERS[f]) if f in FILTERS else f.capitalize(),
                               ["any", *run_views.config_values(everything, f)], key=f"runs_{f}", bind=ui.URL,
                               format_func=any_or) for f in run_views.FILTER_FIELDS}
    mine = st.toggle(tr("Only runs of this browser session"), key="runs_mine")
runs = run_views.visible(db.runs(kind=None if kind == "any" else kind, session=me if mine else None,
                             **{f: v for f, v in filters.items() if v != "any"}), me, server, admin)
st.caption(tr("{n} of {total} runs · kept on this computer, also after a restart (read-only)", n=len(runs),
              total=len(everything)) if db.readonly else
           tr("{n} of {total} runs · kept on this computer, also after a restart", n=len(runs), total=len(everything)),
           help=tr("The history is one SQLite file in Transfer Lab's data folder on the computer running the app; "
                   "whoever starts it can set the environment variable `TL_DATA_DIR` to keep it in another folder."))
if server:
    st.caption(tr("The teacher's token: every session's runs, to label and delete.") if admin else
               tr("A shared server: you see every session's runs of the built-in experiments, and your own runs on "
                  "your uploads; you label and delete only your own runs (the teacher's token manages all)."))
manages = lambda run: not server or admin or run.session == me  # noqa: E731 - label, delete, take its model
if admin:   # the teacher: every run queued or training now, whoever asked for it, with a Stop each
    srv = ui.shared_runs()
    flying = srv.jobs()
    st.subheader(tr("Training now"))
    if not flying:
        st.caption(tr("No run is queued or training on this server."))
    for job in flying:
        left, right = st.columns([6, 1], vertical_alignment="center")
        state = (tr("training, {percent}", percent=i18n.percent(job.fraction, 0)) if job.state == "running" else
                 tr("waiting for its turn"))
        on = ", ".join(str(job.config[k]) for k in ("backbone", "dataset") if job.config.get(k))
        fill = dict(run=f"**{job.kind}**" + (f" ({on})" if on else ""), state=state, n=len(job.waiters),
                    who=job.session[-8:] or tr("the command line"))
        left.write(tr("{run} · {state} · {n} session following · asked by `{who}`", **fill) if len(job.waiters) == 1
                   else tr("{run} · {state} · {n} sessions following · asked by `{who}`", **fill))
        if right.button(tr("Stop"), key=f"runs_stop_{job.id}", help=tr("stop this run for every session following it")):
            st.toast(tr("Stopped.") if srv.stop_now(job.id) else tr("It had already ended."))
if not runs:
    st.info(tr("No runs here yet. Train on any page (or `python -m tl_core toy`) and it appears in this list."))
    link.report()
    st.stop()

st.dataframe(figures.rows(runs), hide_index=True, key="runs_table",
             column_config={k: tr(v) for k, v in COLUMNS.items()})

by_id = {r.id: r for r in runs}   # by default, the newest finished runs of one experiment
picked = st.multiselect(tr("Compare runs"), list(by_id), default=figures.default_pick(runs), key="runs_pick",
                        format_func=lambda i: figures.describe(by_id[i]))
link.report()
if not picked:
    st.info(tr("Pick one or more runs above to compare them."))
    st.stop()
chosen = run_views.visible(db.many(picked), me, server, admin)
unlike = run_views.unlike(chosen)
if unlike:
    st.warning(unlike)
mixed = len({r.kind for r in chosen}) > 1   # other experiments: never on one chart

curve_names = list(dict.fromkeys(c for r in chosen for c in r.curves))
if curve_names and not mixed:
    # curves every picked run has come first, each run's in the order its result named them (the telling ones first)
    shared = sorted(curve_names, key=lambda c: -sum(c in r.curves for r in chosen))
    left, right = st.columns(2)
    curve = left.selectbox(tr("Curve"), shared, key="runs_curve", format_func=figures.curve_name)
    changed = run_views.what_changed(chosen)
    fields = ["run", *changed,
              *[f for f in run_views.flat_config({"kind": "", **chosen[0].config}) if f not in changed]]
    color_by = right.selectbox(tr("Colour by"), fields, index=1 if changed else 0, key="runs_color",
                               format_func=lambda f: tr("run") if f == "run" else f,
                               help=tr("runs that share this setting share a colour"))
    ui.chart(figures.compare_runs(chosen, curve, color_by), "runs_compare")
elif not mixed:
    st.info(tr("These runs have no per-epoch curves: a sweep keeps a grid of final accuracies (see the metrics "
               "below), and a run stopped before its first epoch or interrupted has none."))

st.subheader(tr("What changed"))
changed = run_views.what_changed(chosen)
if len(chosen) < 2:
    st.caption(tr("Pick two or more runs to see the settings that differ."))
elif changed:
    st.dataframe([{"setting": k, **{figures.column(r): figures.number(v) for r, v in zip(chosen, vals)}}
                  for k, vals in changed.items()], hide_index=True, key="runs_changed",
                 column_config={"setting": tr("setting")})
else:
    st.info(tr("These runs have identical settings: any difference in their curves is seed noise or the device."))

common = [m for m in chosen[0].metrics if all(m in r.metrics for r in chosen)] if not unlike else []
if common:
    st.dataframe([{"metric": figures.curve_name(m),
                   **{figures.column(r): figures.metric(m, r.metrics[m]) for r in chosen}} for m in common],
                 hide_index=True, key="runs_metrics", column_config={"metric": tr("metric")})
for r in chosen:
    if r.status in ("interrupted", "failed", "stopped", "diverged"):
        st.warning(tr("{run} is **{status}**: {message}", run=r.name, status=figures.status(r.status),
                      message=r.message or tr("no curves after that point")))

st.subheader(tr("Export and manage"))
for r in chosen:   # a model file a run saved (CLI --export, an SSL encoder, a GTL guide): its owner's to take
    if r.model_path and manages(r) and Path(r.model_path).is_file():
        st.download_button(tr("Model file of {run} ({file})", run=r.name, file=Path(r.model_path).name),
                           Path(r.model_path).read_bytes,
                           file_name=Path(r.model_path).name, key=f"runs_model_{r.id}", on_click="ignore",
                           icon=":material/download:")
cols = st.columns(3)
cols[0].download_button(tr("CSV: metrics and curves"), lambda: run_views.to_csv(chosen),
                        file_name="transfer-lab-runs.csv", mime="text/csv", key="runs_csv", on_click="ignore",
                        icon=":material/table:")
cols[1].download_button(tr("JSON: everything"), lambda: run_views.to_json(chosen),
                        file_name="transfer-lab-runs.json", mime="application/json", key="runs_json",
                        on_click="ignore", icon=":material/data_object:")
own = [i for i in picked if manages(by_id[i])]
if db.readonly:   # said at the top of the page
    cols[2].caption(tr("A read-only history: runs cannot be labelled or deleted here."))
    st.stop()
with cols[2].popover(tr("Label or delete")):
    if len(own) < len(picked):
        st.caption(tr("{n} of the picked runs are other sessions': only the teacher can label or delete them.",
                      n=len(picked) - len(own)))
    if not own:
        st.stop()
    target = st.selectbox(tr("Run"), own, format_func=lambda i: by_id[i].name, key="runs_target")
    label = st.text_input(tr("Label"), value=by_id[target].label, key="runs_label", max_chars=80)
    owner = None if not server or admin else me    # the store checks it again
    if st.button(tr("Save label"), key="runs_save_label"):
        db.rename(target, label, session=owner)
        st.rerun()
    sure = st.checkbox(tr("Yes, delete the {n} picked run(s)", n=len(own)), key="runs_sure")
    if st.button(tr("Delete picked runs"), key="runs_delete", disabled=not sure, type="primary"):
        db.delete(own, session=owner)
        st.session_state.pop("runs_pick", None)
        st.rerun()
