import time

import streamlit as st

from app_pages import ui
from tl_core import store
from tl_core.plots import runs as figures

def column(run: store.Run) -> str:
    """A table column per run: the id keeps two runs with the same label apart."""
    return f"#{run.id} {run.label}" if run.label else f"#{run.id} {run.kind}"


def describe(run: store.Run) -> str:
    parts = [run.name, run.config.get("backbone"), run.config.get("dataset"), store.headline(run), run.status]
    return " · ".join(str(p) for p in parts if p)


link = ui.page("Runs", "runs_",
               "Every run trained on any page (and on the command line) is kept here, also after a restart. "
               "Pick several to see their curves on the same axes and exactly which settings differ.", settings="Filter runs")
db = ui.history()
if db is None:
    st.stop()

with st.sidebar:
    everything = db.runs()
    kind = st.selectbox("Experiment", ["any", *sorted({r.kind for r in everything})], key="runs_kind", bind=ui.URL)
    filters = {f: st.selectbox(f.capitalize(), ["any", *store.config_values(everything, f)], key=f"runs_{f}", bind=ui.URL)
               for f in store.FILTER_FIELDS}
    mine = st.toggle("Only runs of this browser session", key="runs_mine")
runs = db.runs(kind=None if kind == "any" else kind, session=ui.session_id() if mine else None,
               **{f: v for f, v in filters.items() if v != "any"})
st.caption(f"{len(runs)} of {len(everything)} runs · history in `{db.path}` (set `TL_DATA_DIR` to keep it elsewhere)")
if not runs:
    st.info("No runs here yet. Train on any page (or `python -m tl_core toy`) and it appears in this list.")
    link.report()
    st.stop()

st.dataframe(
    [{"id": r.id, "label": r.label, "experiment": r.kind, "status": r.status,
      "backbone": r.config.get("backbone", ""), "dataset": r.config.get("dataset", ""), "result": store.headline(r),
      "seconds": round(r.seconds, 1) if r.seconds is not None else None, "device": r.device,
      "when": time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created))} for r in runs],
    hide_index=True, key="runs_table")

by_id = {r.id: r for r in runs}
newest_finished = [r.id for r in runs if r.status == "finished" and r.curves][:2]
picked = st.multiselect("Compare runs", list(by_id), default=newest_finished, key="runs_pick",
                        format_func=lambda i: describe(by_id[i]))
link.report()
if not picked:
    st.info("Pick one or more runs above to compare them.")
    st.stop()
chosen = db.many(picked)

curve_names = list(dict.fromkeys(c for r in chosen for c in r.curves))
if curve_names:
    # curves every picked run has come first, each run's in the order its result named them (the telling ones first)
    shared = sorted(curve_names, key=lambda c: -sum(c in r.curves for r in chosen))
    left, right = st.columns(2)
    curve = left.selectbox("Curve", shared, key="runs_curve")
    changed = store.what_changed(chosen)
    fields = ["run", *changed, *[f for f in store.flat_config({"kind": "", **chosen[0].config}) if f not in changed]]
    color_by = right.selectbox("Colour by", fields, index=1 if changed else 0, key="runs_color",
                               help="runs that share this setting share a colour")
    ui.chart(figures.compare_runs(chosen, curve, color_by), "runs_compare")
else:
    st.info("These runs have no per-epoch curves: a sweep keeps a grid of final accuracies (see the metrics "
            "below), and a run stopped before its first epoch or interrupted has none.")

st.subheader("What changed")
changed = store.what_changed(chosen)
if len(chosen) < 2:
    st.caption("Pick two or more runs to see the settings that differ.")
elif changed:
    st.dataframe([{"setting": k, **{column(r): str(v) for r, v in zip(chosen, vals)}}
                  for k, vals in changed.items()], hide_index=True, key="runs_changed")
else:
    st.info("These runs have identical settings: any difference in their curves is seed noise or the device.")

common = [m for m in chosen[0].metrics if all(m in r.metrics for r in chosen)]
if common:
    st.dataframe([{"metric": m, **{column(r): r.metrics[m] for r in chosen}} for m in common], hide_index=True,
                 key="runs_metrics")
for r in chosen:
    if r.status in ("interrupted", "failed", "stopped", "diverged"):
        st.warning(f"{r.name} is **{r.status}**: {r.message or 'no curves after that point'}")

st.subheader("Export and manage")
cols = st.columns(3)
cols[0].download_button("CSV: metrics and curves", lambda: store.to_csv(chosen), file_name="transfer-lab-runs.csv",
                        mime="text/csv", key="runs_csv", on_click="ignore", icon=":material/table:")
cols[1].download_button("JSON: everything", lambda: store.to_json(chosen), file_name="transfer-lab-runs.json",
                        mime="application/json", key="runs_json", on_click="ignore", icon=":material/data_object:")
with cols[2].popover("Label or delete"):
    target = st.selectbox("Run", picked, format_func=lambda i: by_id[i].name, key="runs_target")
    label = st.text_input("Label", value=by_id[target].label, key="runs_label", max_chars=80)
    if st.button("Save label", key="runs_save_label"):
        db.rename(target, label)
        st.rerun()
    sure = st.checkbox(f"Yes, delete the {len(picked)} picked run(s)", key="runs_sure")
    if st.button("Delete picked runs", key="runs_delete", disabled=not sure, type="primary"):
        db.delete(picked)
        st.session_state.pop("runs_pick", None)
        st.rerun()
